import assert from "node:assert/strict";
import type http from "node:http";
import mysql from "mysql2/promise";
import { Database, RECHECK_TIMEOUT_MS, REQUEST_DB_BUDGET_MS, SUSPECT_AFTER_MS } from "../../src/db/pool";
import { boundPort, listen } from "../../src/lifecycle";
import { createApp } from "../../src/server";
import { AUTH, rebootableProxy, testConfig } from "../helpers";
import { ownsTestMariaDb, testMariaDb } from "../setup";

/**
 * The data path against a real MariaDB that restarts, freezes (a power cut) or reboots, under a
 * steady stream of requests through a listening server, as nginx sends them.
 */

/** Longest a request may take: its database budget, plus the app and the loopback. nginx waits 5 s. */
const BOUND_MS = REQUEST_DB_BUDGET_MS + 500;
/** Every request that starts this long after the database answers again must succeed. */
const RECOVERY_MS = 2000;
/** A request the app fails without waiting on the database. */
const FAST_MS = 250;
/**
 * How soon a frozen server is known down: a statement hangs past SUSPECT_AFTER_MS, the recheck
 * it starts fails after RECHECK_TIMEOUT_MS; plus slack for a loaded test machine.
 */
const DETECT_MS = SUSPECT_AFTER_MS + RECHECK_TIMEOUT_MS + 500;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Sample {
  method: string;
  path: string;
  start: number;
  ms: number;
  status: number;
  retryAfter: string | null;
  code?: string;
}

/** `workers` clients in a loop of GET /notes, POST /notes and GET /health, until stopped. */
function load(base: string, workers = 4) {
  const samples: Sample[] = [];
  let running = true;
  const plan = [
    ["GET", "/notes?limit=5"],
    ["POST", "/notes"],
    ["GET", "/health"],
  ] as const;
  const send = async (method: string, path: string) => {
    const start = Date.now();
    const sample: Sample = { method, path, start, ms: 0, status: 0, retryAfter: null };
    try {
      const res = await fetch(base + path, {
        method,
        headers: method === "POST" ? { "content-type": "application/json", ...AUTH } : undefined,
        body: method === "POST" ? JSON.stringify({ title: "through the outage" }) : undefined,
        signal: AbortSignal.timeout(8000),
      });
      sample.status = res.status;
      sample.retryAfter = res.headers.get("retry-after");
      const body = (await res.json().catch(() => undefined)) as { error?: { code?: string } } | undefined;
      sample.code = body?.error?.code;
    } catch {
      sample.status = 0;
    }
    sample.ms = Date.now() - start;
    samples.push(sample);
  };
  const worker = async (offset: number) => {
    for (let i = offset; running; i++) {
      const [method, path] = plan[i % plan.length];
      await send(method, path);
      await sleep(20);
    }
  };
  const done = Promise.all(Array.from({ length: workers }, (_, i) => worker(i)));
  return {
    samples,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

const ok = (s: Sample) => s.status >= 200 && s.status < 300;
const show = (s: Sample) => `${s.method} ${s.path} at +${s.start} took ${s.ms} ms: ${s.status} ${s.code ?? ""} Retry-After ${s.retryAfter}`;

/** What held during the outage; fails the test naming the first request that broke a rule. */
function assertRodeOut(samples: Sample[], backAt: number) {
  for (const s of samples) {
    assert.ok(s.ms < BOUND_MS, `no request takes longer than ${BOUND_MS} ms: ${show(s)}`);
    if (s.path === "/health") assert.equal(s.status, 200, `health answers 200 throughout: ${show(s)}`);
    if (!ok(s)) {
      assert.equal(s.status, 503, `a failure is a 503: ${show(s)}`);
      assert.equal(s.code, "DB_UNAVAILABLE", show(s));
      assert.match(s.retryAfter ?? "", /^[1-9][0-9]*$/, `a 503 says when to retry, in whole seconds: ${show(s)}`);
    }
    if (s.start >= backAt + RECOVERY_MS) assert.ok(ok(s), `${RECOVERY_MS} ms after the database is back every request succeeds: ${show(s)}`);
  }
}

/** Figures for the log: the worst wait, the 503s, and the first success once the database answers. */
function summary(samples: Sample[], from: number, backAt: number): string {
  const data = samples.filter((s) => s.path !== "/health");
  const failed = data.filter((s) => !ok(s));
  const firstOk = data.filter((s) => s.start >= backAt && ok(s)).sort((a, b) => a.start + a.ms - (b.start + b.ms))[0];
  const lastFail = failed.sort((a, b) => a.start - b.start).at(-1);
  return (
    `${data.length} requests, ${failed.length} were 503, slowest ${Math.max(...samples.map((s) => s.ms))} ms; ` +
    `last failure started ${lastFail ? lastFail.start - backAt : "-"} ms after the database was back, ` +
    `first success after it ended ${firstOk ? firstOk.start + firstOk.ms - backAt : "-"} ms after; ` +
    `outage began at +0, database back at +${backAt - from} ms`
  );
}

/** When the database accepts a connection again: first seen down, then up. */
async function waitDownThenUp(config: ReturnType<typeof testConfig>): Promise<number> {
  const connects = async () => {
    try {
      const { host, port, user, password, database } = config.db;
      const conn = await mysql.createConnection({ host, port, user, password, database, connectTimeout: 200 });
      await conn.end();
      return true;
    } catch {
      return false;
    }
  };
  while (await connects()) await sleep(20);
  while (!(await connects())) await sleep(20);
  return Date.now();
}

async function deleteOutageNotes(config: ReturnType<typeof testConfig>): Promise<void> {
  const db = new Database(config.db);
  await db.query("DELETE FROM notes WHERE title = 'through the outage'", [], { write: true });
  await db.close();
}

describe("a data path that rides out the database (real MariaDB)", function () {
  this.timeout(30_000);
  const config = testConfig();
  let db: Database;
  let server: http.Server;
  let base: string;

  before(function () {
    if (!ownsTestMariaDb()) this.skip();
  });
  beforeEach(async () => {
    db = new Database(config.db);
    server = await listen(createApp({ config, db, log: () => undefined }), 0, "127.0.0.1");
    base = `http://127.0.0.1:${boundPort(server)}`;
  });
  afterEach(async () => {
    if (ownsTestMariaDb()) await testMariaDb("resume");
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await db.close();
  });
  after(() => deleteOutageNotes(config));

  it("answers 503 with Retry-After or succeeds within the bound while MariaDB restarts, and serves every request 2 s after it is back", async () => {
    const traffic = load(base);
    await sleep(500);
    const from = Date.now();
    const restarted = testMariaDb("restart");
    const backAt = await waitDownThenUp(config);
    await restarted;
    await sleep(Math.max(0, backAt + RECOVERY_MS + 1500 - Date.now()));
    await traffic.stop();

    const samples = traffic.samples.map((s) => ({ ...s, start: s.start - from }));
    console.log(`      restart: ${summary(samples, 0, backAt - from)}`);
    assert.ok(samples.some((s) => s.start < 0 && ok(s)), "requests succeeded before the restart");
    assert.ok(samples.some((s) => !ok(s)), "the restart was seen: some request failed");
    assertRodeOut(samples, backAt - from);
    assert.ok(samples.some((s) => s.start >= backAt - from + RECOVERY_MS && s.method === "POST"), "writes ran after recovery");
  });

  it("fails fast with 503 and Retry-After while MariaDB is frozen (a power cut), and serves every request within 2 s of it thawing", async () => {
    const traffic = load(base);
    await sleep(500);
    await testMariaDb("pause");
    const from = Date.now();
    await sleep(5000);
    await testMariaDb("resume");
    const backAt = Date.now();
    await sleep(RECOVERY_MS + 1500);
    await traffic.stop();

    const samples = traffic.samples.map((s) => ({ ...s, start: s.start - from }));
    console.log(`      power cut: ${summary(samples, 0, backAt - from)}`);
    const firstFast = samples.filter((s) => s.start >= 0 && s.status === 503 && s.ms < FAST_MS).sort((a, b) => a.start - b.start)[0];
    console.log(`      power cut: first fast 503 at +${firstFast?.start} ms`);
    assertRodeOut(samples, backAt - from);
    // From the moment the frozen server is known down until it thaws, a request needing the
    // database is a fast 503, not a wait.
    const frozen = samples.filter((s) => s.path !== "/health" && s.start >= DETECT_MS && s.start + s.ms < backAt - from);
    assert.ok(frozen.length > 20, `requests ran while frozen: ${frozen.length}`);
    for (const s of frozen) {
      assert.equal(s.status, 503, show(s));
      assert.ok(s.ms < FAST_MS, `a fast 503 while the database is known down: ${show(s)}`);
    }
  });

});

describe("writes after a DB host reboot (real MariaDB behind a proxy)", () => {
  const config = testConfig();
  after(() => deleteOutageNotes(config));

  it("sends no write on a connection that died with a rebooted DB host, so writes after it succeed", async () => {
    const proxy = await rebootableProxy(config.db.host, config.db.port);
    const viaProxy = testConfig({ db: { port: proxy.port } });
    const proxied = new Database(viaProxy.db);
    const app = await listen(createApp({ config: viaProxy, db: proxied, log: () => undefined }), 0, "127.0.0.1");
    const url = `http://127.0.0.1:${boundPort(app)}`;
    try {
      // Several pooled connections, then the host reboots while the app is idle.
      await Promise.all(Array.from({ length: 4 }, () => fetch(`${url}/notes?limit=1`).then((r) => assert.equal(r.status, 200))));
      assert.ok(proxied.stats().free >= 2, `idle connections: ${proxied.stats().free}`);
      proxy.reboot();
      await sleep(1200);
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${url}/notes`, {
          method: "POST",
          headers: { "content-type": "application/json", ...AUTH },
          body: JSON.stringify({ title: "through the outage" }),
        });
        statuses.push(res.status);
      }
      statuses.push((await fetch(`${url}/notes?limit=1`)).status);
      assert.deepEqual(statuses, [201, 201, 201, 200]);
      assert.ok(proxy.resets() >= 1, "a stale connection was tried and reset");
    } finally {
      app.closeAllConnections();
      await new Promise((resolve) => app.close(resolve));
      await proxied.close();
      await proxy.close();
    }
  });
});
