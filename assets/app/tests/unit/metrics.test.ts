import assert from "node:assert/strict";
import type { Request, Response } from "express";
import { Gauge, Registry } from "prom-client";
import type { Database, PoolUsage } from "../../src/db/pool";
import type { ReadRouter, ReadRouterMetrics } from "../../src/db/readRouter";
import { boundPort, closeNow, listen } from "../../src/lifecycle";
import { appMetrics, HTTP_DURATION_BUCKETS, metricsHandler, mountedAt, pm2Restarts, processMetrics, routeLabel } from "../../src/metrics";
import { parseMetrics, sampleValue } from "../helpers";

const usage = (u: Partial<PoolUsage>): PoolUsage => ({ limit: 10, busy: 0, idle: 0, waiting: 0, waits: 0, acquireTimeouts: 0, ...u });

/** A Database and a ReadRouter that report fixed state, which the test may change. */
function fakeState() {
  const state = {
    primary: usage({ busy: 3, idle: 2, waiting: 4, waits: 17, acquireTimeouts: 5 }),
    down: false,
    reads: {
      primaryReads: 7,
      replicas: [
        { name: "pi-db-read1", reads: 11, lagSeconds: 2, inReadSet: true, pool: usage({ limit: 6, busy: 1, idle: 4, waits: 1 }) },
        { name: "pi-db-read2", reads: 0, lagSeconds: null, inReadSet: false, pool: null },
      ],
    } as ReadRouterMetrics,
  };
  const db = {
    meter: { usage: () => state.primary },
    breaker: {
      get isDown() {
        return state.down;
      },
    },
  } as unknown as Database;
  const reads = { metrics: () => state.reads } as unknown as ReadRouter;
  return { state, db, reads };
}

async function scrape(registry: Registry) {
  return parseMetrics(await registry.metrics());
}

/** A request as Express leaves it once routing is done. */
function routed(path: string | undefined, mount?: string): Request {
  const req = { method: "GET", ...(path === undefined ? {} : { route: { path } }) } as unknown as Request;
  if (mount !== undefined) mountedAt(mount)(req, {} as Response, () => undefined);
  return req;
}

describe("metrics: route label", () => {
  it("names the matched route pattern, with the router's mount", () => {
    assert.equal(routeLabel(routed("/:id", "/notes")), "/notes/:id");
    assert.equal(routeLabel(routed("/", "/notes")), "/notes");
    assert.equal(routeLabel(routed("/health")), "/health");
    assert.equal(routeLabel(routed("/")), "/");
  });

  it("labels a request no route matched 'unmatched'", () => {
    assert.equal(routeLabel(routed(undefined)), "unmatched");
    assert.equal(routeLabel(routed(undefined, "/notes")), "unmatched");
  });
});

describe("metrics: the app's series", () => {
  it("shows each pool's connections, limit, queue, waits and timeouts, the primary's first", async () => {
    const registry = new Registry();
    const { db, reads } = fakeState();
    appMetrics(registry, db, reads);
    const { samples, types } = await scrape(registry);
    const v = (name: string, labels: Record<string, string>) => sampleValue(samples, name, labels);
    assert.equal(v("pi_cluster_db_pool_connections", { pool: "primary", state: "busy" }), 3);
    assert.equal(v("pi_cluster_db_pool_connections", { pool: "primary", state: "idle" }), 2);
    assert.equal(v("pi_cluster_db_pool_connections", { pool: "pi-db-read1", state: "busy" }), 1);
    assert.equal(v("pi_cluster_db_pool_connections", { pool: "pi-db-read1", state: "idle" }), 4);
    assert.equal(v("pi_cluster_db_pool_limit", { pool: "primary" }), 10);
    assert.equal(v("pi_cluster_db_pool_limit", { pool: "pi-db-read1" }), 6);
    assert.equal(v("pi_cluster_db_pool_waiting", { pool: "primary" }), 4);
    assert.equal(v("pi_cluster_db_pool_waits_total", { pool: "primary" }), 17);
    assert.equal(v("pi_cluster_db_pool_waits_total", { pool: "pi-db-read1" }), 1);
    assert.equal(v("pi_cluster_db_pool_acquire_timeouts_total", { pool: "primary" }), 5);
    // A replica backend without a pool of its own shows no pool series.
    assert.equal(samples.filter((s) => s.labels.pool === "pi-db-read2").length, 0);
    for (const name of ["pi_cluster_db_pool_connections", "pi_cluster_db_pool_limit", "pi_cluster_db_pool_waiting"]) assert.equal(types.get(name), "gauge", name);
    for (const name of ["pi_cluster_db_pool_waits_total", "pi_cluster_db_pool_acquire_timeouts_total"]) assert.equal(types.get(name), "counter", name);
  });

  it("shows the breaker open while the primary is held down, and closed again after", async () => {
    const registry = new Registry();
    const { state, db, reads } = fakeState();
    appMetrics(registry, db, reads);
    assert.equal(sampleValue((await scrape(registry)).samples, "pi_cluster_db_breaker_open", { pool: "primary" }), 0);
    state.down = true;
    assert.equal(sampleValue((await scrape(registry)).samples, "pi_cluster_db_breaker_open", { pool: "primary" }), 1);
    state.down = false;
    assert.equal(sampleValue((await scrape(registry)).samples, "pi_cluster_db_breaker_open", { pool: "primary" }), 0);
  });

  it("counts reads by target, and shows each replica's lag only while it is known, and its place in the read set", async () => {
    const registry = new Registry();
    const { state, db, reads } = fakeState();
    appMetrics(registry, db, reads);
    let { samples, types } = await scrape(registry);
    assert.equal(types.get("pi_cluster_db_reads_total"), "counter");
    assert.equal(sampleValue(samples, "pi_cluster_db_reads_total", { target: "primary" }), 7);
    assert.equal(sampleValue(samples, "pi_cluster_db_reads_total", { target: "pi-db-read1" }), 11);
    assert.equal(sampleValue(samples, "pi_cluster_db_reads_total", { target: "pi-db-read2" }), 0);
    assert.equal(sampleValue(samples, "pi_cluster_replica_lag_seconds", { replica: "pi-db-read1" }), 2);
    assert.equal(samples.filter((s) => s.name === "pi_cluster_replica_lag_seconds" && s.labels.replica === "pi-db-read2").length, 0);
    assert.equal(sampleValue(samples, "pi_cluster_replica_in_read_set", { replica: "pi-db-read1" }), 1);
    assert.equal(sampleValue(samples, "pi_cluster_replica_in_read_set", { replica: "pi-db-read2" }), 0);

    // read1 goes unreachable: its lag series goes, and it leaves the read set.
    state.reads = { primaryReads: 9, replicas: [{ ...state.reads.replicas[0], lagSeconds: null, inReadSet: false }, state.reads.replicas[1]] };
    ({ samples } = await scrape(registry));
    assert.equal(samples.filter((s) => s.name === "pi_cluster_replica_lag_seconds").length, 0);
    assert.equal(sampleValue(samples, "pi_cluster_replica_in_read_set", { replica: "pi-db-read1" }), 0);
    assert.equal(sampleValue(samples, "pi_cluster_db_reads_total", { target: "primary" }), 9);
  });

  it("records a request once in the counter and once in the histogram, with its buckets", async () => {
    const registry = new Registry();
    const { db, reads } = fakeState();
    const metrics = appMetrics(registry, db, reads);
    const req = routed("/:id", "/notes");
    metrics.observeRequest(req, { statusCode: 404 } as Response, performance.now() - 30);
    const { samples, types } = await scrape(registry);
    assert.equal(types.get("pi_cluster_http_requests_total"), "counter");
    assert.equal(types.get("pi_cluster_http_request_duration_seconds"), "histogram");
    assert.equal(sampleValue(samples, "pi_cluster_http_requests_total", { method: "GET", route: "/notes/:id", status: "404" }), 1);
    const buckets = samples.filter((s) => s.name === "pi_cluster_http_request_duration_seconds_bucket");
    assert.deepEqual(buckets.map((s) => s.labels.le), [...HTTP_DURATION_BUCKETS.map(String), "+Inf"]);
    // About 30 ms: not in the 25 ms bucket, in the 50 ms one.
    assert.equal(sampleValue(samples, "pi_cluster_http_request_duration_seconds_bucket", { method: "GET", route: "/notes/:id", le: "0.025" }), 0);
    assert.equal(sampleValue(samples, "pi_cluster_http_request_duration_seconds_bucket", { method: "GET", route: "/notes/:id", le: "0.05" }), 1);
    assert.equal(sampleValue(samples, "pi_cluster_http_request_duration_seconds_count", { method: "GET", route: "/notes/:id" }), 1);
    const sum = sampleValue(samples, "pi_cluster_http_request_duration_seconds_sum", { method: "GET", route: "/notes/:id" })!;
    assert.ok(sum >= 0.03 && sum < 0.05, `sum ${sum} is about 30 ms`);
  });

  it("puts no per-host label on any series", async () => {
    const registry = new Registry();
    const { db, reads } = fakeState();
    appMetrics(registry, db, reads).observeRequest(routed("/health"), { statusCode: 200 } as Response, performance.now());
    const allowed = new Set(["method", "route", "status", "le", "pool", "state", "target", "replica"]);
    const { samples } = await scrape(registry);
    assert.ok(samples.length > 20);
    for (const s of samples) for (const label of Object.keys(s.labels)) assert.ok(allowed.has(label), `${s.name} has label ${label}`);
  });
});

describe("metrics: the process's series", () => {
  it("reads PM2's restart count from the environment PM2 gives its process", () => {
    assert.equal(pm2Restarts({ pm_id: "0", restart_time: "3" }), 3);
    assert.equal(pm2Restarts({ pm_id: "0", restart_time: "0" }), 0);
    assert.equal(pm2Restarts({ restart_time: "3" }), null, "without pm_id PM2 did not start the process");
    assert.equal(pm2Restarts({ pm_id: "0" }), null);
    assert.equal(pm2Restarts({ pm_id: "0", restart_time: "three" }), null);
    assert.equal(pm2Restarts({}), null);
  });

  it("has prom-client's process metrics unprefixed, and PM2's restarts when PM2 started the process", async () => {
    const registry = new Registry();
    processMetrics(registry, { pm_id: "0", restart_time: "2" });
    const { samples, types } = await scrape(registry);
    const started = sampleValue(samples, "process_start_time_seconds");
    assert.ok(started !== undefined && Math.abs(started - (Date.now() / 1000 - process.uptime())) < 2, `process_start_time_seconds ${started}`);
    assert.ok(samples.some((s) => s.name === "nodejs_eventloop_lag_seconds"));
    assert.equal(sampleValue(samples, "pi_cluster_app_pm2_restarts"), 2);
    assert.equal(types.get("pi_cluster_app_pm2_restarts"), "gauge");
  });

  it("shows no restart count when PM2 did not start the process", async () => {
    const registry = new Registry();
    processMetrics(registry, {});
    const { samples } = await scrape(registry);
    assert.ok(samples.some((s) => s.name === "process_start_time_seconds"));
    assert.equal(samples.filter((s) => s.name === "pi_cluster_app_pm2_restarts").length, 0);
  });
});

describe("metrics listener (METRICS_PORT)", () => {
  it("serves GET and HEAD /metrics, 404 elsewhere and 405 for other methods, and closes", async () => {
    const registry = new Registry();
    new Gauge({ name: "pi_cluster_test_gauge", help: "a gauge of the test", registers: [registry] }).set(42);
    const server = await listen(metricsHandler(registry), 0, "127.0.0.1");
    const url = `http://127.0.0.1:${boundPort(server)}`;
    try {
      const got = await fetch(`${url}/metrics`);
      assert.equal(got.status, 200);
      assert.equal(got.headers.get("content-type"), registry.contentType);
      const body = await got.text();
      assert.equal(sampleValue(parseMetrics(body).samples, "pi_cluster_test_gauge"), 42);
      assert.equal((await fetch(`${url}/metrics?from=prometheus`)).status, 200);

      const head = await fetch(`${url}/metrics`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-type"), registry.contentType);
      assert.equal(head.headers.get("content-length"), String(Buffer.byteLength(body)));
      assert.equal(await head.text(), "");

      const other = await fetch(`${url}/other`);
      assert.equal(other.status, 404);
      assert.match(await other.text(), /the metrics are at \/metrics/);
      assert.equal((await fetch(`${url}/`)).status, 404);

      const post = await fetch(`${url}/metrics`, { method: "POST", body: "x" });
      assert.equal(post.status, 405);
      assert.equal(post.headers.get("allow"), "GET, HEAD");
      await post.text();
    } finally {
      await closeNow(server);
    }
    assert.equal(server.listening, false);
    await assert.rejects(fetch(`${url}/metrics`));
  });

  it("answers 500 and logs one line when a series cannot be collected", async () => {
    const registry = new Registry();
    new Gauge({
      name: "pi_cluster_test_broken",
      help: "a gauge whose collect fails",
      registers: [registry],
      collect() {
        throw new Error("state unreadable");
      },
    });
    const logged: string[] = [];
    const server = await listen(metricsHandler(registry, (m) => logged.push(m)), 0, "127.0.0.1");
    try {
      const res = await fetch(`http://127.0.0.1:${boundPort(server)}/metrics`);
      assert.equal(res.status, 500);
      assert.equal(await res.text(), "the metrics could not be collected\n");
      assert.deepEqual(logged, ["GET /metrics -> 500: state unreadable"]);
    } finally {
      await closeNow(server);
    }
  });
});
