import mysqlCore from "mysql2";
import mysql from "mysql2/promise";
import net from "node:net";
import { pemCertificates, type Config } from "../config";
import { CircuitBreaker } from "./breaker";
import { classifyFailure, isSafeToRetryWrite, isTransientError, withRetry, type RetryOptions } from "./retry";
import { withTimeout } from "./timeout";

/**
 * A request's whole time on the database: getting connections, checking them, every statement
 * and every retry with its backoff. nginx gives up on the app after proxy_read_timeout 5 s; half
 * of that leaves the rest for the app and the network, so an outage answers 503, never 504.
 */
export const REQUEST_DB_BUDGET_MS = 2500;
/** Longest wait for a pool connection; the request's remaining budget cuts it shorter. */
export const ACQUIRE_TIMEOUT_MS = REQUEST_DB_BUDGET_MS;
/**
 * TCP connect + handshake of one new connection (mysql2 `connectTimeout`). On the LAN it takes
 * milliseconds; 1 s leaves room for a retry within the budget, and is how soon a DB host that
 * lost power (no RST, packets dropped) is found down.
 */
export const CONNECT_TIMEOUT_MS = 1000;
/**
 * A pooled connection idle longer than this is checked with `SELECT 1` before a write is sent on
 * it: a DB host that rebooted leaves connections that look open, and a write that fails on one
 * may not be retried. A busy server reuses its connections sooner and never pays the check.
 */
export const VALIDATE_IDLE_MS = 1000;
/** Bound on that check; the request's remaining budget cuts it shorter. */
export const VALIDATE_TIMEOUT_MS = 500;
/**
 * A statement still running after this starts a recheck of the database in the background. The
 * app's statements take milliseconds, so one this slow more likely hangs on a host that lost
 * power; finding that out early lets the requests behind it fail fast, not each wait its budget.
 */
export const SUSPECT_AFTER_MS = 500;
/** Bound on one recheck of a down database: connect plus `SELECT 1` on a connection of its own. */
export const RECHECK_TIMEOUT_MS = 1000;
/** TCP keep-alive on every connection to MariaDB. */
const KEEP_ALIVE_INITIAL_DELAY_MS = 10_000;
/** Pooled connections idle this long are closed (mysql2 `idleTimeout`). */
export const IDLE_TIMEOUT_MS = 300_000;
/** How long closing the pool may take on shutdown before open sockets are destroyed. */
export const CLOSE_TIMEOUT_MS = 2_000;

export type Params = ReadonlyArray<string | number | null>;

export interface PoolStats {
  limit: number;
  inUse: number;
  free: number;
}

export interface QueryOptions {
  /** A write may only be retried when it cannot have been applied; see isSafeToRetryWrite. */
  write?: boolean;
  /**
   * When the statement, retries included, must have finished (epoch ms). Default
   * REQUEST_DB_BUDGET_MS after the call; forRequest() gives a request's statements one deadline.
   */
  deadline?: number;
  /**
   * For a write: called with the write's GTID (`@@last_gtid`, read on the same connection right
   * after it committed), or null when that could not be read. For read-your-writes (db/readRouter.ts).
   */
  onGtid?: (gtid: string | null) => void;
}

/** What the SQL modules need: parameterised statements. */
export type Queryable = Pick<Database, "query">;

/** A request's view of the database: one deadline, and the GTID of its last write when asked for. */
export interface RequestDb extends Queryable {
  /** `@@last_gtid` after the request's last write; null before any, or when not tracked or unknown. */
  readonly gtid: string | null;
}

/** An error with `code`, raised when no pool connection became free in time. */
export class AcquireTimeoutError extends Error {
  readonly code = "POOL_ACQUIRE_TIMEOUT";
  readonly phase = "connect";
  constructor(
    timeoutMs: number,
    /** Every pool connection was lent out: the app is busy, not the database down. */
    readonly poolBusy: boolean,
  ) {
    super(
      poolBusy
        ? `no database connection became free within ${timeoutMs} ms (all pool connections in use)`
        : `the database did not accept a connection within ${timeoutMs} ms`,
    );
    this.name = "AcquireTimeoutError";
  }
}

/** Raised before a statement is sent when the request has no time left for the database. */
export class BudgetSpentError extends Error {
  readonly code = "DB_BUDGET_SPENT";
  readonly phase = "connect";
  constructor() {
    super("the request's time for the database ran out before this statement could start");
    this.name = "BudgetSpentError";
  }
}

/**
 * `db` with one deadline for all its statements: a request's whole time on the database, however
 * many statements it runs and however often they are retried.
 */
export function forRequest(db: Queryable, budgetMs = REQUEST_DB_BUDGET_MS, { trackGtid = false } = {}): RequestDb {
  const deadline = Date.now() + budgetMs;
  let gtid: string | null = null;
  const onGtid = trackGtid ? (value: string | null) => void (gtid = value) : undefined;
  return {
    query: <T>(sql: string, params?: Params, options?: QueryOptions) => db.query<T>(sql, params, { deadline, onGtid, ...options }),
    get gtid() {
      return gtid;
    },
  };
}

/** What every connection needs, the pool's and the rechecks' alike (and the replicas', db/readRouter.ts). */
export function connectionOptions(db: Config["db"]): mysql.ConnectionOptions {
  return {
    host: db.host,
    port: db.port,
    user: db.user,
    password: db.password,
    database: db.database,
    connectTimeout: CONNECT_TIMEOUT_MS,
    enableKeepAlive: true,
    keepAliveInitialDelay: KEEP_ALIVE_INITIAL_DELAY_MS,
    charset: "utf8mb4_unicode_ci",
    // DATETIME columns hold UTC (the migrations default to UTC_TIMESTAMP).
    timezone: "Z",
    supportBigNumbers: true,
    ...(db.ssl !== undefined ? tlsOptions(db.host, db.port, db.ssl) : {}),
  };
}

/**
 * TLS to MariaDB, verified: the certificate must chain to `ca` (rejectUnauthorized) and name
 * `serverName` (verifyIdentity; mysql2 skips that check without it). mysql2 takes the name it
 * checks from `host`, so when that is not the address to dial, the socket is opened here, as
 * mysql2 opens its own: no delay, keep-alive.
 */
export function tlsOptions(
  address: string,
  port: number,
  ssl: { ca: string; serverName: string },
): Pick<mysql.ConnectionOptions, "host" | "ssl" | "stream"> {
  // Each certificate of a bundle (the primary's CA and the replicas') as its own entry.
  const verified = { host: ssl.serverName, ssl: { ca: pemCertificates(ssl.ca), rejectUnauthorized: true, verifyIdentity: true } };
  if (ssl.serverName === address) return verified;
  return {
    ...verified,
    stream: () => {
      const socket = net.connect(port, address);
      socket.setNoDelay(true);
      socket.on("connect", () => socket.setKeepAlive(true, KEEP_ALIVE_INITIAL_DELAY_MS));
      return socket;
    },
  };
}

/**
 * The mysql2 options for the one pool. mysql2 warns about (and will reject) unknown keys, so
 * only documented ones are used; `acquireTimeout` is not one of them, see Database.acquire.
 */
export function poolOptions(db: Config["db"]): mysql.PoolOptions {
  return {
    ...connectionOptions(db),
    connectionLimit: db.poolSize,
    // mysql2 only closes idle connections when maxIdle < connectionLimit, so keep one fewer.
    maxIdle: Math.max(1, db.poolSize - 1),
    idleTimeout: IDLE_TIMEOUT_MS,
    waitForConnections: true,
    queueLimit: 0,
  };
}

/** A mysql2 core connection, as the pool keeps them. */
export interface CoreConnection {
  destroy(): void;
  /** Set by mysql2 when the connection is created and each time it goes back to the pool (lib/pool_connection.js). */
  lastActiveTime?: number;
  stream?: { destroy(): void };
}

/**
 * Destroys a connection's socket at once. mysql2's destroy() only half-closes it (FIN), which on
 * a powered-off peer lingers until TCP gives up, minutes later.
 */
export function hardClose(conn: CoreConnection): void {
  conn.destroy();
  conn.stream?.destroy();
}

export const core = (conn: mysql.PoolConnection): CoreConnection => (conn as unknown as { connection: CoreConnection }).connection;

type RingQueue<T> = { length: number; get(i: number): T };
type BasePool = { _allConnections?: RingQueue<CoreConnection>; _freeConnections?: RingQueue<CoreConnection>; _connectionQueue?: RingQueue<unknown> };
const basePool = (pool: mysql.Pool): BasePool | undefined => (pool as unknown as { pool?: BasePool }).pool;

/** Snapshots of mysql2's connection queues: every open or opening one, and the idle ones (lib/base/pool.js). */
export function poolQueues(pool: mysql.Pool): { all: CoreConnection[]; free: CoreConnection[] } {
  const base = basePool(pool);
  const items = (queue?: RingQueue<CoreConnection>) => (queue ? Array.from({ length: queue.length }, (_, i) => queue.get(i)) : []);
  return { all: items(base?._allConnections), free: items(base?._freeConnections) };
}

/** A pool's connections now, and its acquires since it was made: what the metrics show of it. */
export interface PoolUsage {
  /** connectionLimit. */
  limit: number;
  /** Open or opening connections that are not idle in the pool (lent out, or being made for a caller). */
  busy: number;
  /** Open connections idle in the pool. */
  idle: number;
  /**
   * Callers queued for a connection now (every connection was busy when they asked), counting
   * those the app already gave up on: each still takes a connection, and hands it straight back.
   */
  waiting: number;
  /** Acquires that had to queue. */
  waits: number;
  /** Acquires the app gave up on before a connection came. */
  acquireTimeouts: number;
}

/**
 * Counts a mysql2 pool's acquires that queued (its 'enqueue' event) or timed out (told by the
 * pool's owner, which runs the timeout), and reads its queues when asked.
 */
export class PoolMeter {
  private waits = 0;
  private acquireTimeouts = 0;

  constructor(
    private readonly pool: mysql.Pool,
    private readonly limit: number,
  ) {
    pool.on("enqueue", () => void this.waits++);
  }

  acquireTimedOut(): void {
    this.acquireTimeouts++;
  }

  usage(): PoolUsage {
    const base = basePool(this.pool);
    const open = base?._allConnections?.length ?? 0;
    const idle = base?._freeConnections?.length ?? 0;
    return {
      limit: this.limit,
      busy: open - idle,
      idle,
      waiting: base?._connectionQueue?.length ?? 0,
      waits: this.waits,
      acquireTimeouts: this.acquireTimeouts,
    };
  }
}

/**
 * `@@last_gtid` on the connection a write just committed on (autocommit), or null. A failure here
 * must not fail the write, which is applied: the connection is dropped and the GTID unknown.
 */
async function lastGtid(conn: mysql.PoolConnection, deadline: number): Promise<string | null> {
  try {
    const [rows] = await conn.query({ sql: "SELECT @@last_gtid AS gtid", timeout: Math.max(1, Math.min(VALIDATE_TIMEOUT_MS, deadline - Date.now())) });
    const gtid = (rows as Array<{ gtid: unknown }>)[0]?.gtid;
    return typeof gtid === "string" && gtid !== "" ? gtid : null;
  } catch {
    hardClose(core(conn));
    return null;
  }
}

function tag(err: unknown, phase: "connect" | "validate"): void {
  if (typeof err === "object" && err !== null) (err as { phase?: string }).phase = phase;
}

/**
 * The app's only mysql2 pool: every statement bounded by a deadline, transient errors retried,
 * stale connections dropped, and while the database is down (see db/breaker.ts) a fast failure
 * instead of a wait.
 */
export class Database {
  readonly pool: mysql.Pool;
  readonly host: string;
  readonly limit: number;
  /** Down after a new connection fails; up again after a recheck succeeds. */
  readonly breaker: CircuitBreaker;
  /** The pool's connections and acquires, for the metrics. */
  readonly meter: PoolMeter;
  private inUse = 0;
  private readonly rechecks = new Set<CoreConnection>();

  constructor(
    private readonly db: Config["db"],
    private readonly retry: RetryOptions = {},
    private readonly acquireTimeoutMs = ACQUIRE_TIMEOUT_MS,
  ) {
    this.pool = mysql.createPool(poolOptions(db));
    this.host = db.host;
    this.limit = db.poolSize;
    this.meter = new PoolMeter(this.pool, db.poolSize);
    this.breaker = new CircuitBreaker(
      () => this.recheck(),
      () => this.dropIdle(),
    );
  }

  /**
   * A connection from the pool within `timeoutMs`. mysql2's pool has no acquire timeout (it
   * queues forever with waitForConnections), so race it here; a connection that arrives after
   * the timeout goes straight back to the pool. Errors carry `phase: "connect"`, and one that
   * says the server is not there marks the database down.
   */
  acquire(timeoutMs = this.acquireTimeoutMs): Promise<mysql.PoolConnection> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err: unknown) => {
        settled = true;
        tag(err, "connect");
        if (classifyFailure(err) === "down") this.breaker.markDown(err);
        reject(err);
      };
      const timer = setTimeout(() => {
        this.meter.acquireTimedOut();
        fail(new AcquireTimeoutError(timeoutMs, this.inUse >= this.limit));
      }, timeoutMs);
      // A waiting request keeps the process alive by itself; this timer must not.
      timer.unref();
      this.pool.getConnection().then(
        (conn) => {
          if (settled) {
            conn.release();
            return;
          }
          settled = true;
          clearTimeout(timer);
          this.inUse++;
          resolve(conn);
        },
        (err: unknown) => {
          if (settled) return;
          clearTimeout(timer);
          fail(err);
        },
      );
    });
  }

  /**
   * Returns a connection to the pool, or drops it when its error left it unusable. A connection
   * that failed as a connection (reset, closed, no answer in time) is dropped with every idle
   * one, which likely died with it, and the database is rechecked at once.
   */
  release(conn: mysql.PoolConnection, err?: unknown): void {
    this.inUse--;
    if (err !== undefined && classifyFailure(err) === "connection lost") {
      hardClose(core(conn));
      this.dropIdle();
      this.breaker.suspect();
    } else if (typeof err === "object" && err !== null && (err as { fatal?: boolean }).fatal) {
      conn.destroy();
    } else {
      conn.release();
    }
  }

  /** Runs `fn` on one pooled connection. No retry; fails at once while the database is down. */
  async withConnection<T>(fn: (conn: mysql.PoolConnection) => Promise<T>, acquireTimeoutMs?: number): Promise<T> {
    this.breaker.assertUp();
    return this.lend(fn, acquireTimeoutMs);
  }

  /**
   * A parameterised statement, retried on transient errors (writes only when safe), all within
   * `options.deadline`. Fails at once while the database is down.
   */
  async query<T>(sql: string, params: Params = [], options: QueryOptions = {}): Promise<T> {
    this.breaker.assertUp();
    const deadline = options.deadline ?? Date.now() + REQUEST_DB_BUDGET_MS;
    return withRetry(
      async () => {
        const left = deadline - Date.now();
        if (left <= 0) throw new BudgetSpentError();
        return this.lend(async (conn) => {
          if (options.write) await this.validate(conn, deadline);
          const [result] = await conn.query({ sql, timeout: Math.max(1, deadline - Date.now()) }, [...params]);
          if (options.write && options.onGtid) options.onGtid(await lastGtid(conn, deadline));
          return result as T;
        }, Math.min(this.acquireTimeoutMs, left));
      },
      { ...this.retry, deadline, retryable: options.write ? isSafeToRetryWrite : isTransientError },
    );
  }

  /** Pool occupancy: connections lent out, and open connections waiting idle in the pool. */
  stats(): PoolStats {
    return { limit: this.limit, inUse: this.inUse, free: poolQueues(this.pool).free.length };
  }

  /**
   * Closes every connection; statements already sent finish first. Bounded: a connection still
   * in its handshake with an unresponsive server would otherwise hold pool.end() for the whole
   * connect timeout, so after `timeoutMs` the remaining sockets are destroyed. Errors of
   * connections that die while closing are not reported: they are closed either way.
   */
  async close(timeoutMs = CLOSE_TIMEOUT_MS): Promise<void> {
    this.breaker.stop();
    for (const conn of this.rechecks) hardClose(conn);
    let ended = false;
    const ending = this.pool.end().then(
      () => void (ended = true),
      () => void (ended = true),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ending, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    if (ended) return;
    for (const conn of poolQueues(this.pool).all) conn.destroy();
  }

  private async lend<T>(fn: (conn: mysql.PoolConnection) => Promise<T>, acquireTimeoutMs?: number): Promise<T> {
    const conn = await this.acquire(acquireTimeoutMs);
    const watchdog = setTimeout(() => this.breaker.suspect(), SUSPECT_AFTER_MS);
    watchdog.unref();
    try {
      const result = await fn(conn);
      this.release(conn);
      return result;
    } catch (err) {
      this.release(conn, err);
      throw err;
    } finally {
      clearTimeout(watchdog);
    }
  }

  /**
   * Checks a connection that sat idle before a write is sent on it. A failure here carries
   * `phase: "validate"`: the write was never sent, so it may be retried on another connection.
   */
  private async validate(conn: mysql.PoolConnection, deadline: number): Promise<void> {
    const lastActive = core(conn).lastActiveTime;
    if (lastActive !== undefined && Date.now() - lastActive <= VALIDATE_IDLE_MS) return;
    try {
      await conn.query({ sql: "SELECT 1", timeout: Math.max(1, Math.min(VALIDATE_TIMEOUT_MS, deadline - Date.now())) });
    } catch (err) {
      tag(err, "validate");
      throw err;
    }
  }

  /** Closes the idle pooled connections: after a failure or an outage they may be dead without knowing it. */
  private dropIdle(): void {
    for (const conn of poolQueues(this.pool).free) hardClose(conn);
  }

  /**
   * One check of a down database, on a connection of its own (the pool may be full of hung
   * ones). Resolves when the server answers, even with an error such as too many connections;
   * rejects when it does not.
   */
  private async recheck(): Promise<void> {
    const conn = mysqlCore.createConnection({ ...connectionOptions(this.db), connectTimeout: RECHECK_TIMEOUT_MS });
    // Errors reach the query below; an 'error' event without a listener would crash the process.
    conn.on("error", () => undefined);
    this.rechecks.add(conn);
    let answered = false;
    try {
      await withTimeout(
        conn.promise().query({ sql: "SELECT 1", timeout: RECHECK_TIMEOUT_MS }),
        RECHECK_TIMEOUT_MS,
        () => Object.assign(new Error(`the database did not answer within ${RECHECK_TIMEOUT_MS} ms`), { code: "ETIMEDOUT" }),
      );
      answered = true;
    } catch (err) {
      tag(err, "connect");
      if (classifyFailure(err) === "down") throw err;
    } finally {
      this.rechecks.delete(conn);
      // A polite quit, so MariaDB does not log an aborted connection for every recovery.
      if (answered) conn.end();
      else hardClose(conn);
    }
  }
}
