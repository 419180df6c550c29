import type http from "node:http";
import { performance } from "node:perf_hooks";
import type { Request, RequestHandler, Response } from "express";
import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { Database, PoolUsage } from "./db/pool";
import type { ReadRouter } from "./db/readRouter";

/**
 * The app's Prometheus metrics (README.md, "Metrics"): requests, the database pools, the
 * breaker and the read replicas. Gauges are read from the objects' own state when Prometheus
 * scrapes, so nothing runs between scrapes. No series carries a per-host label: Prometheus adds
 * `instance`.
 */

/** Where the metrics listener (METRICS_PORT) serves the registry. */
export const METRICS_PATH = "/metrics";
/** The latency histogram's buckets in seconds: nginx gives up on the app after 5 s, so 10 s is past any answer. */
export const HTTP_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** The route label of a request no route handled: unknown paths, and requests refused before routing (401, 413). */
export const UNMATCHED_ROUTE = "unmatched";
/** The pool and read-target name of the primary database; the replicas go by their DB_REPLICAS names. */
export const PRIMARY = "primary";

const MOUNT_PATH = Symbol("pi-cluster mount path");
type MountedRequest = Request & { [MOUNT_PATH]?: string };

/**
 * Put before a router mounted at `path`, so the route label carries the whole pattern: Express
 * resets `req.baseUrl` when an error leaves the router, before the error handler answers.
 */
export function mountedAt(path: string): RequestHandler {
  return (req, _res, next) => {
    (req as MountedRequest)[MOUNT_PATH] = path;
    next();
  };
}

/** The route pattern a request matched (`/notes/:id`, never `/notes/42`), or UNMATCHED_ROUTE. */
export function routeLabel(req: Request): string {
  const route = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof route !== "string") return UNMATCHED_ROUTE;
  const mount = (req as MountedRequest)[MOUNT_PATH] ?? "";
  return mount !== "" && route === "/" ? mount : mount + route;
}

/** The pools the metrics show: the primary's, then each replica's that has one, in DB_REPLICAS order. */
function pools(db: Database, reads: ReadRouter): Array<{ pool: string; usage: PoolUsage }> {
  const replicas = reads.metrics().replicas.flatMap(({ name, pool }) => (pool ? [{ pool: name, usage: pool }] : []));
  return [{ pool: PRIMARY, usage: db.meter.usage() }, ...replicas];
}

type Sample = [labels: Record<string, string>, value: number];

/**
 * A gauge or counter whose samples are read from other objects when Prometheus scrapes. A
 * counter's samples are totals those objects keep; series they no longer report go away.
 */
function scraped(registry: Registry, type: "gauge" | "counter", name: string, help: string, labelNames: string[], samples: () => Sample[]): void {
  const metric = { name, help, labelNames, registers: [registry] };
  if (type === "gauge") {
    new Gauge({ ...metric, collect() { this.reset(); for (const [labels, value] of samples()) this.set(labels, value); } });
  } else {
    new Counter({ ...metric, collect() { this.reset(); for (const [labels, value] of samples()) this.inc(labels, value); } });
  }
}

/** What createApp needs of the metrics: one call per finished request. */
export interface AppMetrics {
  observeRequest(req: Request, res: Response, startedAt: number): void;
}

/** The time a request's latency is measured from (performance.now, milliseconds). */
export const requestStart = (): number => performance.now();

/**
 * Registers the app's series in `registry` and returns what records the requests. The gauges and
 * the counters of other objects' state are read at scrape time from `db` and `reads`.
 */
export function appMetrics(registry: Registry, db: Database, reads: ReadRouter): AppMetrics {
  const registers = [registry];
  const requests = new Counter({
    name: "pi_cluster_http_requests_total",
    help: "HTTP requests answered, by method, matched route pattern and status code.",
    labelNames: ["method", "route", "status"] as const,
    registers,
  });
  const duration = new Histogram({
    name: "pi_cluster_http_request_duration_seconds",
    help: "Time from a request's arrival to its response's last byte, by method and matched route pattern.",
    labelNames: ["method", "route"] as const,
    buckets: HTTP_DURATION_BUCKETS,
    registers,
  });

  const perPool = (value: (usage: PoolUsage) => number) => (): Sample[] => pools(db, reads).map(({ pool, usage }) => [{ pool }, value(usage)]);
  const replicas = () => reads.metrics().replicas;

  scraped(registry, "gauge", "pi_cluster_db_pool_connections", "Database pool connections by state: busy (lent out or being opened) or idle.", ["pool", "state"], () =>
    pools(db, reads).flatMap(({ pool, usage }): Sample[] => [
      [{ pool, state: "busy" }, usage.busy],
      [{ pool, state: "idle" }, usage.idle],
    ]),
  );
  scraped(registry, "gauge", "pi_cluster_db_pool_limit", "Database pool connection limit (DB_POOL_SIZE).", ["pool"], perPool((u) => u.limit));
  scraped(registry, "gauge", "pi_cluster_db_pool_waiting", "Callers queued for a database pool connection now.", ["pool"], perPool((u) => u.waiting));
  scraped(registry, "counter", "pi_cluster_db_pool_waits_total", "Database pool acquires that had to queue because every connection was busy.", ["pool"], perPool((u) => u.waits));
  scraped(registry, "counter", "pi_cluster_db_pool_acquire_timeouts_total", "Database pool acquires given up before a connection came.", ["pool"], perPool((u) => u.acquireTimeouts));
  scraped(registry, "gauge", "pi_cluster_db_breaker_open", "1 while the app holds the primary database down and fails its requests at once (the circuit breaker), else 0.", ["pool"], () => [
    [{ pool: PRIMARY }, db.breaker.isDown ? 1 : 0],
  ]);
  scraped(registry, "counter", "pi_cluster_db_reads_total", "Notes reads served, by where they ran: primary or a replica's name.", ["target"], () => [
    [{ target: PRIMARY }, reads.metrics().primaryReads],
    ...replicas().map(({ name, reads: served }): Sample => [{ target: name }, served]),
  ]);
  scraped(registry, "gauge", "pi_cluster_replica_lag_seconds", "A replica's Seconds_Behind_Master at the app's last health check; no series while unknown.", ["replica"], () =>
    replicas().flatMap(({ name, lagSeconds }): Sample[] => (lagSeconds === null ? [] : [[{ replica: name }, lagSeconds]])),
  );
  scraped(registry, "gauge", "pi_cluster_replica_in_read_set", "1 while a replica serves reads (reachable, replicating, within DB_REPLICA_MAX_LAG_SECONDS), else 0.", ["replica"], () =>
    replicas().map(({ name, inReadSet }): Sample => [{ replica: name }, inReadSet ? 1 : 0]),
  );

  return {
    observeRequest(req, res, startedAt) {
      const route = routeLabel(req);
      requests.inc({ method: req.method, route, status: String(res.statusCode) });
      duration.observe({ method: req.method, route }, (performance.now() - startedAt) / 1000);
    },
  };
}

/**
 * PM2's restart count for this app, from the environment PM2 gives the process it starts
 * (`restart_time`, with `pm_id`; PM2 6 lib/God.js, ForkMode.js and ProcessContainer.js): the
 * restarts, reloads included, since PM2 first started the app. Null when PM2 did not start it.
 */
export function pm2Restarts(env: NodeJS.ProcessEnv): number | null {
  const raw = env.restart_time;
  if (env.pm_id === undefined || raw === undefined || !/^[0-9]+$/.test(raw)) return null;
  return Number(raw);
}

/**
 * Registers the series of the process rather than of one app: prom-client's defaults
 * (process_*, nodejs_*) and PM2's restart count. Once per process (index.ts): the defaults start
 * a GC observer and an event-loop monitor that are never stopped.
 */
export function processMetrics(registry: Registry, env: NodeJS.ProcessEnv): void {
  collectDefaultMetrics({ register: registry });
  const restarts = pm2Restarts(env);
  if (restarts === null) return;
  new Gauge({
    name: "pi_cluster_app_pm2_restarts",
    help: "PM2's restart count for the app when it started this process (its restart_time), reloads included.",
    registers: [registry],
  }).set(restarts);
}

function send(res: http.ServerResponse, status: number, headers: Record<string, string>, body: string): void {
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  // Set here, not by node, so a HEAD answer carries it too.
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.end(body);
}

/**
 * The metrics listener's handler (plain node http): GET and HEAD /metrics answer the registry's
 * text, any other path 404, any other method on /metrics 405.
 */
export function metricsHandler(registry: Registry, log: (message: string) => void = console.error): http.RequestListener {
  const text = { "Content-Type": "text/plain; charset=utf-8" };
  return (req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== METRICS_PATH) return send(res, 404, text, `not found: the metrics are at ${METRICS_PATH}\n`);
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, { ...text, Allow: "GET, HEAD" }, `method ${req.method} not allowed: use GET or HEAD\n`);
    // HEAD renders too, so its headers (Content-Length) are GET's; node sends no body for it.
    registry.metrics().then(
      (body) => send(res, 200, { "Content-Type": registry.contentType }, body),
      (err: unknown) => {
        log(`GET ${METRICS_PATH} -> 500: ${err instanceof Error ? err.message : String(err)}`);
        send(res, 500, text, "the metrics could not be collected\n");
      },
    );
  };
}
