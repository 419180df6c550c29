import mysql from "mysql2/promise";
import type { Config } from "../config";
import { isSafeToRetryWrite, isTransientError, withRetry, type RetryOptions } from "./retry";

/** How long a request waits for a free pool connection before it fails with 503. */
export const ACQUIRE_TIMEOUT_MS = 60_000;
/** Pooled connections idle this long are closed (mysql2 `idleTimeout`). */
export const IDLE_TIMEOUT_MS = 300_000;
/** TCP connect + handshake limit (mysql2 `connectTimeout`); a powered-off DB host fails after this. */
export const CONNECT_TIMEOUT_MS = 10_000;
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
  /** Per-statement timeout in ms (mysql2 `timeout`); none by default. */
  timeoutMs?: number;
}

/** An error with `code`, raised when no pool connection became free in time. */
export class AcquireTimeoutError extends Error {
  readonly code = "POOL_ACQUIRE_TIMEOUT";
  readonly phase = "connect";
  constructor(timeoutMs: number, poolBusy: boolean) {
    super(
      poolBusy
        ? `no database connection became free within ${timeoutMs} ms (all pool connections in use)`
        : `the database did not accept a connection within ${timeoutMs} ms`,
    );
    this.name = "AcquireTimeoutError";
  }
}

/**
 * The mysql2 options for the one pool. mysql2 warns about (and will reject) unknown keys, so
 * only documented ones are used; `acquireTimeout` is not one of them, see Database.acquire.
 */
export function poolOptions(db: Config["db"]): mysql.PoolOptions {
  return {
    host: db.host,
    port: db.port,
    user: db.user,
    password: db.password,
    database: db.database,
    connectionLimit: db.poolSize,
    // mysql2 only closes idle connections when maxIdle < connectionLimit, so keep one fewer.
    maxIdle: Math.max(1, db.poolSize - 1),
    idleTimeout: IDLE_TIMEOUT_MS,
    waitForConnections: true,
    queueLimit: 0,
    connectTimeout: CONNECT_TIMEOUT_MS,
    enableKeepAlive: true,
    keepAliveInitialDelay: 10_000,
    charset: "utf8mb4_unicode_ci",
    // DATETIME columns hold UTC (the migrations default to UTC_TIMESTAMP).
    timezone: "Z",
    supportBigNumbers: true,
  };
}

/** The app's only mysql2 pool, with acquire timeout and retry of transient errors. */
export class Database {
  readonly pool: mysql.Pool;
  readonly host: string;
  readonly limit: number;
  private inUse = 0;

  constructor(
    db: Config["db"],
    private readonly retry: RetryOptions = {},
    private readonly acquireTimeoutMs = ACQUIRE_TIMEOUT_MS,
  ) {
    this.pool = mysql.createPool(poolOptions(db));
    this.host = db.host;
    this.limit = db.poolSize;
  }

  /**
   * A connection from the pool within `timeoutMs`. mysql2's pool has no acquire timeout (it
   * queues forever with waitForConnections), so race it here; a connection that arrives after
   * the timeout goes straight back to the pool. Errors carry `phase: "connect"`.
   */
  acquire(timeoutMs = this.acquireTimeoutMs): Promise<mysql.PoolConnection> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(new AcquireTimeoutError(timeoutMs, this.inUse >= this.limit));
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
          settled = true;
          clearTimeout(timer);
          if (typeof err === "object" && err !== null) (err as { phase?: string }).phase = "connect";
          reject(err);
        },
      );
    });
  }

  /** Returns a connection to the pool, or drops it when its error left it unusable. */
  release(conn: mysql.PoolConnection, err?: unknown): void {
    this.inUse--;
    if (typeof err === "object" && err !== null && (err as { fatal?: boolean }).fatal) conn.destroy();
    else conn.release();
  }

  /** Runs `fn` on one pooled connection. No retry. */
  async withConnection<T>(fn: (conn: mysql.PoolConnection) => Promise<T>, acquireTimeoutMs?: number): Promise<T> {
    const conn = await this.acquire(acquireTimeoutMs);
    try {
      const result = await fn(conn);
      this.release(conn);
      return result;
    } catch (err) {
      this.release(conn, err);
      throw err;
    }
  }

  /** A parameterised statement, retried on transient errors (writes only when safe). */
  async query<T>(sql: string, params: Params = [], options: QueryOptions = {}): Promise<T> {
    return withRetry(
      () =>
        this.withConnection(async (conn) => {
          const [result] = await conn.query({ sql, timeout: options.timeoutMs }, [...params]);
          return result as T;
        }),
      { ...this.retry, retryable: options.write ? isSafeToRetryWrite : isTransientError },
    );
  }

  /** Pool occupancy: connections lent out, and open connections waiting idle in the pool. */
  stats(): PoolStats {
    // mysql2 exposes no public counters; _freeConnections is its idle queue (lib/base/pool.js).
    const core = (this.pool as unknown as { pool?: { _freeConnections?: { length: number } } }).pool;
    const free = core?._freeConnections?.length ?? 0;
    return { limit: this.limit, inUse: this.inUse, free };
  }

  /**
   * Closes every connection; statements already sent finish first. Bounded: a connection still
   * in its handshake with an unresponsive server would otherwise hold pool.end() for the whole
   * connect timeout, so after `timeoutMs` the remaining sockets are destroyed. Errors of
   * connections that die while closing are not reported: they are closed either way.
   */
  async close(timeoutMs = CLOSE_TIMEOUT_MS): Promise<void> {
    let ended = false;
    const ending = this.pool.end().then(
      () => void (ended = true),
      () => void (ended = true),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ending, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    if (ended) return;
    // mysql2 keeps every open or opening connection in _allConnections (lib/base/pool.js).
    const all = (this.pool as unknown as { pool?: { _allConnections?: { length: number; get(i: number): { destroy(): void } } } })
      .pool?._allConnections;
    const stuck = all ? Array.from({ length: all.length }, (_, i) => all.get(i)) : [];
    for (const conn of stuck) conn.destroy();
  }
}
