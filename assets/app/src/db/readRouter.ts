import mysqlCore from "mysql2";
import mysql from "mysql2/promise";
import type { Config, ReplicaSpec } from "../config";
import { describeError, type ReplicasStatus } from "../status";
import {
  CLOSE_TIMEOUT_MS,
  connectionOptions,
  core,
  forRequest,
  hardClose,
  poolOptions,
  PoolMeter,
  poolQueues,
  REQUEST_DB_BUDGET_MS,
  type CoreConnection,
  type Params,
  type PoolUsage,
  type Queryable,
} from "./pool";
import { gtidWaitAllowsReplica, inReadSet, pickRoundRobin, readSetProblem, sampleFromSlaveStatus, type HealthSample } from "./replicas";
import { withTimeout } from "./timeout";

/**
 * Where a read runs: on the next replica of the read set (round robin), else on the primary. A
 * replica that fails a read leaves the read set at once and the read runs on the primary in the
 * same request, so no read fails because of a replica. Writes never come here (db/pool.ts).
 */

/**
 * A replica's whole share of a read: connection, GTID wait and statements. A fifth of the
 * request's REQUEST_DB_BUDGET_MS, so after a replica that hangs (power cut) the primary still has
 * 2 s, its full connect timeout plus a retry.
 */
export const REPLICA_READ_TIMEOUT_MS = 500;
/** How often each replica is checked; with the bound below a dead one leaves the read set within 1.5 s. */
export const HEALTH_CHECK_INTERVAL_MS = 1000;
/** Bound on one health check: connect, SHOW SLAVE STATUS and @@gtid_slave_pos. */
export const HEALTH_CHECK_TIMEOUT_MS = 500;
/** How long a read that carries a GTID waits for a replica to apply it (MASTER_GTID_WAIT, seconds). */
export const GTID_WAIT_SECONDS = 0.2;

/** What the router needs of one replica; db access here, injected fakes in the unit tests. */
export interface ReplicaBackend {
  /**
   * Runs `fn` on one connection of the replica within `timeoutMs`, after `MASTER_GTID_WAIT(gtid)`
   * when a GTID is given. `caughtUp: false` when the replica had not applied that GTID in time.
   * Rejects on any failure of the replica.
   */
  read<T>(fn: (db: Queryable) => Promise<T>, gtid: string | null, timeoutMs: number): Promise<{ caughtUp: true; value: T } | { caughtUp: false }>;
  /** One health check within `timeoutMs`; rejects when the replica does not answer. */
  check(timeoutMs: number): Promise<HealthSample>;
  /** Closes idle connections: after a failure they may be dead without knowing it. */
  dropIdle(): void;
  close(): Promise<void>;
  /** Its pool's connections and acquires, for the metrics; absent for a backend without a pool. */
  usage?(): PoolUsage;
}

/** What the metrics read of the router (metrics.ts). */
export interface ReadRouterMetrics {
  /** Reads the primary served since the app started. */
  primaryReads: number;
  /** Every replica in config order, as its last health check left it. */
  replicas: Array<{
    name: string;
    /** Reads it served since the app started. */
    reads: number;
    /** Seconds_Behind_Master at the last check; null when unknown (not reachable, not replicating). */
    lagSeconds: number | null;
    inReadSet: boolean;
    pool: PoolUsage | null;
  }>;
}

export interface ReadRouterOptions {
  readTimeoutMs?: number;
  checkIntervalMs?: number;
  checkTimeoutMs?: number;
  /** Runs `fn` every `ms` until the returned function is called. Injected for tests. */
  every?: (ms: number, fn: () => void) => () => void;
}

interface Member {
  spec: ReplicaSpec;
  backend: ReplicaBackend;
  sample?: HealthSample;
  reads: number;
  checking: boolean;
}

function every(ms: number, fn: () => void): () => void {
  const timer = setInterval(fn, ms);
  // Health checks must not keep a stopping process alive.
  timer.unref();
  return () => clearInterval(timer);
}

export class ReadRouter {
  private readonly members: Member[];
  private turn = 0;
  private primaryReads = 0;
  private stopped = false;
  private cancelChecks?: () => void;
  private readonly readTimeoutMs: number;
  private readonly checkIntervalMs: number;
  private readonly checkTimeoutMs: number;
  private readonly every: (ms: number, fn: () => void) => () => void;

  constructor(
    private readonly primary: Queryable,
    replicas: Array<{ spec: ReplicaSpec; backend: ReplicaBackend }>,
    readonly maxLagSeconds: number,
    options: ReadRouterOptions = {},
  ) {
    this.members = replicas.map(({ spec, backend }) => ({ spec, backend, reads: 0, checking: false }));
    this.readTimeoutMs = options.readTimeoutMs ?? REPLICA_READ_TIMEOUT_MS;
    this.checkIntervalMs = options.checkIntervalMs ?? HEALTH_CHECK_INTERVAL_MS;
    this.checkTimeoutMs = options.checkTimeoutMs ?? HEALTH_CHECK_TIMEOUT_MS;
    this.every = options.every ?? every;
  }

  /** The router for the config's DB_REPLICAS (none: every read on `primary`). Call start(). */
  static fromConfig(primary: Queryable, config: Pick<Config, "db" | "replication">, options: ReadRouterOptions = {}): ReadRouter {
    const replicas = config.replication.replicas.map((spec) => ({ spec, backend: new MysqlReplica(replicaDbConfig(config.db, spec)) }));
    return new ReadRouter(primary, replicas, config.replication.maxLagSeconds, options);
  }

  /** True when replicas are configured: writes then report their GTID for read-your-writes. */
  get enabled(): boolean {
    return this.members.length > 0;
  }

  /** Checks every replica now, then every checkIntervalMs (each skipped while its last one runs). */
  start(): void {
    if (!this.enabled || this.cancelChecks || this.stopped) return;
    this.checkAll();
    this.cancelChecks = this.every(this.checkIntervalMs, () => this.checkAll());
  }

  /** The replicas serving reads now, in config order. */
  readSet(): string[] {
    return this.current().map((m) => m.spec.name);
  }

  /**
   * Runs the read `fn` on the next replica of the read set, or on the primary when the set is
   * empty, the replica has not applied `gtid` within GTID_WAIT_SECONDS, or the replica fails (it
   * then leaves the read set). The primary's part has what is left of `budgetMs`.
   */
  async read<T>(fn: (db: Queryable) => Promise<T>, gtid: string | null = null, budgetMs = REQUEST_DB_BUDGET_MS): Promise<{ value: T; from: string }> {
    const started = Date.now();
    const member = pickRoundRobin(this.current(), this.turn++);
    if (member) {
      try {
        const outcome = await member.backend.read(fn, gtid, this.readTimeoutMs);
        if (outcome.caughtUp) {
          member.reads++;
          return { value: outcome.value, from: member.spec.name };
        }
      } catch (err) {
        this.evict(member, err);
      }
    }
    const value = await fn(forRequest(this.primary, Math.max(1, budgetMs - (Date.now() - started))));
    this.primaryReads++;
    return { value, from: "primary" };
  }

  /** Where reads ran, and each replica's lag, read set and pool: the metrics' view. */
  metrics(): ReadRouterMetrics {
    return {
      primaryReads: this.primaryReads,
      replicas: this.members.map(({ spec, sample, reads, backend }) => ({
        name: spec.name,
        reads,
        lagSeconds: sample?.reachable ? sample.lagSeconds : null,
        inReadSet: inReadSet(sample, this.maxLagSeconds),
        pool: backend.usage?.() ?? null,
      })),
    };
  }

  /** The status page's `db.replication` but the primary's semi-sync: null without replicas. */
  status(): ReplicasStatus | null {
    if (!this.enabled) return null;
    return {
      maxLagSeconds: this.maxLagSeconds,
      replicas: this.members.map(({ spec, sample, reads }) => {
        const up = sample?.reachable ? sample : undefined;
        return {
          name: spec.name,
          host: spec.host,
          reachable: up !== undefined,
          ioRunning: up?.ioRunning ?? false,
          sqlRunning: up?.sqlRunning ?? false,
          lagSeconds: up?.lagSeconds ?? null,
          gtid: up?.gtid ?? null,
          inReadSet: inReadSet(sample, this.maxLagSeconds),
          reads,
          error: readSetProblem(sample, this.maxLagSeconds),
        };
      }),
    };
  }

  /** Stops the health checks and closes every replica's connections (shutdown). */
  async close(): Promise<void> {
    this.stopped = true;
    this.cancelChecks?.();
    await Promise.all(this.members.map((m) => m.backend.close()));
  }

  private current(): Member[] {
    return this.members.filter((m) => inReadSet(m.sample, this.maxLagSeconds));
  }

  /** A read failed on the replica: out of the read set until its next health check passes. */
  private evict(member: Member, err: unknown): void {
    member.sample = { reachable: false, error: `a read failed: ${describeError(err)}` };
    member.backend.dropIdle();
  }

  private checkAll(): void {
    for (const member of this.members) void this.check(member);
  }

  private async check(member: Member): Promise<void> {
    if (member.checking || this.stopped) return;
    member.checking = true;
    const wasIn = inReadSet(member.sample, this.maxLagSeconds);
    try {
      // The backend bounds its own check; this bound holds even if it did not.
      const sample = await withTimeout(member.backend.check(this.checkTimeoutMs), this.checkTimeoutMs + 100, () => new Error(`no answer within ${this.checkTimeoutMs} ms`));
      if (!this.stopped) member.sample = sample;
    } catch (err) {
      if (!this.stopped) member.sample = { reachable: false, error: describeError(err) };
    } finally {
      member.checking = false;
    }
    if (wasIn && !inReadSet(member.sample, this.maxLagSeconds)) member.backend.dropIdle();
  }
}

/**
 * A replica's connection settings: the primary's user, password, database, pool size and TLS,
 * at the replica's address, with its NAME as the name its certificate must carry.
 */
export function replicaDbConfig(db: Config["db"], spec: ReplicaSpec): Config["db"] {
  return {
    ...db,
    host: spec.host,
    port: spec.port,
    ...(db.ssl !== undefined ? { ssl: { ca: db.ssl.ca, serverName: spec.name } } : {}),
  };
}

const timeoutError = (what: string, ms: number) => Object.assign(new Error(`${what} did not answer within ${ms} ms`), { code: "ETIMEDOUT" });

/** One replica over mysql2: a pool for reads, and one connection of its own for health checks. */
export class MysqlReplica implements ReplicaBackend {
  private readonly pool: mysql.Pool;
  private readonly meter: PoolMeter;
  private health?: mysqlCore.Connection;

  constructor(private readonly db: Config["db"]) {
    // Connecting is bounded by the read's own timeout; mysql2's is only a backstop.
    this.pool = mysql.createPool({ ...poolOptions(db), connectTimeout: REPLICA_READ_TIMEOUT_MS });
    this.meter = new PoolMeter(this.pool, db.poolSize);
  }

  read<T>(fn: (db: Queryable) => Promise<T>, gtid: string | null, timeoutMs: number): Promise<{ caughtUp: true; value: T } | { caughtUp: false }> {
    const deadline = Date.now() + timeoutMs;
    let conn: mysql.PoolConnection | undefined;
    let timedOut = false;
    const work = async (): Promise<{ caughtUp: true; value: T } | { caughtUp: false }> => {
      const c = await this.pool.getConnection();
      if (timedOut) {
        // Arrived too late for this read, but healthy: back to the pool.
        c.release();
        return { caughtUp: false };
      }
      conn = c;
      const left = () => Math.max(1, deadline - Date.now());
      try {
        if (gtid !== null) {
          const [rows] = await c.query({ sql: "SELECT MASTER_GTID_WAIT(?, ?) AS waited", timeout: left() }, [gtid, GTID_WAIT_SECONDS]);
          if (!gtidWaitAllowsReplica((rows as Array<{ waited: unknown }>)[0]?.waited)) {
            c.release();
            return { caughtUp: false };
          }
        }
        const onReplica: Queryable = {
          query: async <R>(sql: string, params: Params = []) => {
            const [result] = await c.query({ sql, timeout: left() }, [...params]);
            return result as R;
          },
        };
        const value = await fn(onReplica);
        c.release();
        return { caughtUp: true, value };
      } catch (err) {
        hardClose(core(c));
        throw err;
      }
    };
    return withTimeout(work(), timeoutMs, () => {
      timedOut = true;
      // A hung replica (power cut): cut the socket now rather than when TCP gives up.
      if (conn) hardClose(core(conn));
      else this.meter.acquireTimedOut();
      return timeoutError("the replica", timeoutMs);
    });
  }

  async check(timeoutMs: number): Promise<HealthSample> {
    if (!this.health) {
      const conn = mysqlCore.createConnection({ ...connectionOptions(this.db), connectTimeout: timeoutMs });
      // Errors reach the queries below; an 'error' event without a listener would crash the process.
      conn.on("error", () => undefined);
      this.health = conn;
    }
    const conn = this.health;
    const p = conn.promise();
    try {
      return await withTimeout(
        (async () => {
          const [rows] = await p.query({ sql: "SHOW SLAVE STATUS", timeout: timeoutMs });
          const [pos] = await p.query({ sql: "SELECT @@gtid_slave_pos AS gtid", timeout: timeoutMs });
          return sampleFromSlaveStatus((rows as Array<Record<string, unknown>>)[0], (pos as Array<{ gtid: unknown }>)[0]?.gtid);
        })(),
        timeoutMs,
        () => timeoutError("the replica", timeoutMs),
      );
    } catch (err) {
      // A new connection next time: this one may be dead, or mid-statement.
      if (this.health === conn) this.health = undefined;
      hardClose(conn as unknown as CoreConnection);
      throw err;
    }
  }

  dropIdle(): void {
    for (const conn of poolQueues(this.pool).free) hardClose(conn);
  }

  usage(): PoolUsage {
    return this.meter.usage();
  }

  async close(): Promise<void> {
    if (this.health) {
      const health = this.health;
      this.health = undefined;
      health.end(() => undefined);
      // end() waits for an answer a hung replica never sends.
      setTimeout(() => hardClose(health as unknown as CoreConnection), 200).unref();
    }
    let ended = false;
    const ending = this.pool.end().then(
      () => void (ended = true),
      () => void (ended = true),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ending, new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_TIMEOUT_MS)))]);
    clearTimeout(timer);
    if (!ended) for (const conn of poolQueues(this.pool).all) conn.destroy();
  }
}
