import os from "node:os";
import type { LastBackup } from "./backup";
import type { Config } from "./config";
import type { PoolStats } from "./db/pool";
import type { DbSample } from "./db/probe";
import type { SemiSyncStatus } from "./db/replicas";

export type { SemiSyncStatus } from "./db/replicas";

export interface DbStatus {
  reachable: boolean;
  host: string;
  version: string | null;
  latencyMs: number | null;
  uptimeSeconds: number | null;
  connections: number | null;
  queries: number | null;
  queriesPerSecond: number | null;
  pool: PoolStats;
  /** The read replicas (db/readRouter.ts) and the primary's semi-sync; null when DB_REPLICAS is empty. */
  replication: ReplicationStatus | null;
  /** The newest backups on the backup target (BACKUP_STATUS_FILE); null when backups are not configured. */
  lastBackup: LastBackup | null;
  error: string | null;
}

/** One read replica as the app last saw it, in DB_REPLICAS order. */
export interface ReplicaStatus {
  name: string;
  host: string;
  /** Its last health check got an answer. */
  reachable: boolean;
  /** Slave_IO_Running = Yes. */
  ioRunning: boolean;
  /** Slave_SQL_Running = Yes. */
  sqlRunning: boolean;
  /** Seconds_Behind_Master; null when not replicating or not reachable. */
  lagSeconds: number | null;
  /** @@gtid_slave_pos. */
  gtid: string | null;
  /** Serving reads now. */
  inReadSet: boolean;
  /** Reads served since the app started. */
  reads: number;
  /** Why it is not in the read set, one line; null when it is. */
  error: string | null;
}

export interface ReplicationStatus {
  /** DB_REPLICA_MAX_LAG_SECONDS: a replica further behind serves no reads. */
  maxLagSeconds: number;
  /** Whether acknowledged writes wait for a replica (the primary's last probe); null while the primary does not answer, or has no semi-sync. */
  semiSync: SemiSyncStatus | null;
  replicas: ReplicaStatus[];
}

/** What the read router knows of the replicas: `ReplicationStatus` but the primary's semi-sync. */
export type ReplicasStatus = Omit<ReplicationStatus, "semiSync">;

export interface NodeStatus {
  name: string;
  hostname: string;
  version: string;
  uptimeSeconds: number;
  pid: number;
  memory: { rssBytes: number; heapUsedBytes: number; systemTotalBytes: number; systemFreeBytes: number };
  load: number[];
}

export interface Status {
  node: NodeStatus;
  requests: { served: number };
  db: DbStatus;
  cache: { hit: boolean; ageMs: number };
  generatedAt: string;
}

/**
 * What anyone may see (`GET /`, `/api/` through the load balancer): whether this node and its
 * database serve, and which node and release answered. No address, pid, memory or error
 * text: those are in Status, for the management network only (docs/contracts.md).
 */
export interface PublicStatus {
  /** "degraded" while the database does not answer: reads and writes then get 503. */
  status: "ok" | "degraded";
  node: string;
  version: string;
  db: "up" | "down";
  generatedAt: string;
}

export function publicStatus(config: Pick<Config, "nodeName" | "version">, outcome: ProbeOutcome): PublicStatus {
  return {
    status: outcome.ok ? "ok" : "degraded",
    node: config.nodeName,
    version: config.version,
    db: outcome.ok ? "up" : "down",
    generatedAt: new Date().toISOString(),
  };
}

/** One probe's outcome, as kept in the cache. */
export type ProbeOutcome = { ok: true; sample: DbSample } | { ok: false; error: string };

const round = (value: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
};

/**
 * Queries per second: the rate between two samples of the server's `Queries` counter, or the
 * average since the server started when there is no usable earlier sample (first probe, or the
 * server restarted in between, which resets both counters).
 */
export function queriesPerSecond(previous: DbSample | undefined, current: DbSample): number | null {
  if (
    previous &&
    current.uptimeSeconds > previous.uptimeSeconds &&
    current.queries >= previous.queries
  ) {
    return round((current.queries - previous.queries) / (current.uptimeSeconds - previous.uptimeSeconds), 2);
  }
  if (current.uptimeSeconds > 0 && Number.isFinite(current.queries)) return round(current.queries / current.uptimeSeconds, 2);
  return null;
}

/** A readable one-line reason for a failed probe, e.g. "ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:3306". */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  let message = err.message;
  // Node reports a refused dual-stack connect as an AggregateError with an empty message.
  if (!message && err instanceof AggregateError) message = err.errors.map((e) => describeError(e)).join("; ");
  if (!message) message = err.name;
  return typeof code === "string" && !message.includes(code) ? `${code}: ${message}` : message;
}

export function dbStatus(
  host: string,
  outcome: ProbeOutcome,
  qps: number | null,
  pool: PoolStats,
  lastBackup: LastBackup | null = null,
  replicas: ReplicasStatus | null = null,
): DbStatus {
  // Semi-sync is the primary's: unknown while it does not answer.
  const semiSync = outcome.ok ? outcome.sample.semiSync : null;
  const replication = replicas && { maxLagSeconds: replicas.maxLagSeconds, semiSync, replicas: replicas.replicas };
  if (!outcome.ok) {
    return {
      reachable: false,
      host,
      version: null,
      latencyMs: null,
      uptimeSeconds: null,
      connections: null,
      queries: null,
      queriesPerSecond: null,
      pool,
      replication,
      lastBackup,
      error: outcome.error,
    };
  }
  const s = outcome.sample;
  return {
    reachable: true,
    host,
    version: s.version,
    latencyMs: round(s.latencyMs, 3),
    uptimeSeconds: s.uptimeSeconds,
    connections: s.connections,
    queries: s.queries,
    queriesPerSecond: qps,
    pool,
    replication,
    lastBackup,
    error: null,
  };
}

export function nodeStatus(config: Pick<Config, "nodeName" | "version">): NodeStatus {
  const mem = process.memoryUsage();
  return {
    name: config.nodeName,
    hostname: os.hostname(),
    version: config.version,
    uptimeSeconds: round(process.uptime(), 3),
    pid: process.pid,
    memory: {
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      systemTotalBytes: os.totalmem(),
      systemFreeBytes: os.freemem(),
    },
    load: os.loadavg().map((l) => round(l, 2)),
  };
}

export interface CachedProbe {
  outcome: ProbeOutcome;
  queriesPerSecond: number | null;
  hit: boolean;
  ageMs: number;
}

/**
 * Caches the database probe for `ttlMs` (the "application cache"): a burst of status requests
 * costs one probe, and requests that arrive while a probe runs wait for that same probe.
 * Failures are cached too, so a down database is not hammered.
 */
export class ProbeCache {
  private last?: { outcome: ProbeOutcome; qps: number | null; at: number };
  private previousSample?: DbSample;
  private inflight?: Promise<{ outcome: ProbeOutcome; qps: number | null; at: number }>;

  constructor(
    private readonly probe: () => Promise<DbSample>,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async get(): Promise<CachedProbe> {
    const last = this.last;
    if (last && this.now() - last.at < this.ttlMs) {
      return { outcome: last.outcome, queriesPerSecond: last.qps, hit: true, ageMs: this.now() - last.at };
    }
    this.inflight ??= this.refresh().finally(() => {
      this.inflight = undefined;
    });
    const fresh = await this.inflight;
    return { outcome: fresh.outcome, queriesPerSecond: fresh.qps, hit: false, ageMs: this.now() - fresh.at };
  }

  private async refresh() {
    let outcome: ProbeOutcome;
    let qps: number | null = null;
    try {
      const sample = await this.probe();
      qps = queriesPerSecond(this.previousSample, sample);
      this.previousSample = sample;
      outcome = { ok: true, sample };
    } catch (err) {
      outcome = { ok: false, error: describeError(err) };
    }
    this.last = { outcome, qps, at: this.now() };
    return this.last;
  }
}
