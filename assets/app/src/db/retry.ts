/**
 * Which database errors are worth retrying, and the retry loop itself. Pure: the clock and
 * the sleep are injectable so the tests need no database and no waiting.
 */

/**
 * Errors of the connection itself, not of a statement: nothing accepted, nothing answered, or
 * the socket died. Whether the server saw the statement is unknown.
 */
const CONNECTION_CODES = new Set([
  // Node socket errors while connecting or talking to the server.
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  // mysql2: the connection died under a query, or no answer came within the statement's timeout.
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  // MariaDB closed the connection.
  "ER_SERVER_SHUTDOWN", // 1053
  "ER_CONNECTION_KILLED", // 1927 (MariaDB)
]);
const CONNECTION_ERRNOS = new Set([1053, 1927]);

/** Errors from the network or the server's state, where the same statement may succeed soon. */
const TRANSIENT_CODES = new Set([
  ...CONNECTION_CODES,
  // MariaDB: the statement was rolled back or never ran.
  "ER_LOCK_DEADLOCK", // 1213
  "ER_LOCK_WAIT_TIMEOUT", // 1205
  "ER_CON_COUNT_ERROR", // 1040 too many connections
  "ER_TOO_MANY_USER_CONNECTIONS", // 1203
  // db/pool.ts and db/breaker.ts: no pool connection in time, the request's time for the
  // database ran out, or the database is known to be down.
  "POOL_ACQUIRE_TIMEOUT",
  "DB_BUDGET_SPENT",
  "DB_DOWN",
]);

/** The same errors by MariaDB error number, for errors that carry only `errno`. */
const TRANSIENT_ERRNOS = new Set([...CONNECTION_ERRNOS, 1213, 1205, 1040, 1203]);

/** Errors where the statement certainly did not change anything, so even a write may be retried. */
const NOT_EXECUTED_CODES = new Set(["ER_LOCK_DEADLOCK", "ER_LOCK_WAIT_TIMEOUT"]);

interface ErrorLike {
  code?: unknown;
  errno?: unknown;
  /**
   * Set by db/pool.ts before any statement was sent: "connect" while getting a connection,
   * "validate" while checking an idle pooled connection before a write.
   */
  phase?: unknown;
  /** Set by db/pool.ts on its acquire timeout: every pool connection was lent out. */
  poolBusy?: unknown;
}

function asErrorLike(err: unknown): ErrorLike {
  return typeof err === "object" && err !== null ? (err as ErrorLike) : {};
}

/** True for connection refused/reset/lost, deadlocks, lock wait timeouts and too many connections. */
export function isTransientError(err: unknown): boolean {
  const { code, errno } = asErrorLike(err);
  if (typeof code === "string" && TRANSIENT_CODES.has(code)) return true;
  return typeof errno === "number" && TRANSIENT_ERRNOS.has(errno);
}

/**
 * True when retrying cannot apply a write twice: the error came before the statement was sent
 * (while connecting, or while checking an idle connection), or the server rolled it back.
 */
export function isSafeToRetryWrite(err: unknown): boolean {
  if (!isTransientError(err)) return false;
  const { code, errno, phase } = asErrorLike(err);
  if (phase === "connect" || phase === "validate") return true;
  if (typeof code === "string" && NOT_EXECUTED_CODES.has(code)) return true;
  return errno === 1213 || errno === 1205;
}

/**
 * What a failed attempt says about the database:
 * - "down": a new connection could not be made (refused, timed out, host unreachable), so
 *   the server is not there; db/breaker.ts then fails requests fast until it answers again;
 * - "connection lost": an open connection failed (reset, closed, no answer in time); the
 *   server may be fine and only this connection (and its idle siblings) stale;
 * - "other": the server answered with an error, or the pool was busy; the database is up.
 */
export type Failure = "down" | "connection lost" | "other";

export function classifyFailure(err: unknown): Failure {
  const { code, errno, phase, poolBusy } = asErrorLike(err);
  const connection =
    (typeof code === "string" && CONNECTION_CODES.has(code)) ||
    (typeof errno === "number" && CONNECTION_ERRNOS.has(errno)) ||
    (code === "POOL_ACQUIRE_TIMEOUT" && poolBusy === false);
  if (!connection) return "other";
  return phase === "connect" ? "down" : "connection lost";
}

export interface RetryOptions {
  /** Total attempts, including the first. Default 3. */
  attempts?: number;
  /** Delay before the second attempt; it doubles after each further failure. Default 100 ms. */
  baseDelayMs?: number;
  /** Decides whether an error is retried. Default isTransientError. */
  retryable?: (err: unknown) => boolean;
  /** No attempt starts after this time (epoch ms), and no backoff runs past it. Default none. */
  deadline?: number;
  /** Injected for tests. */
  sleep?: (ms: number) => Promise<void>;
  /** Injected for tests. */
  now?: () => number;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The delay before attempt `attempt + 1` (attempt counts from 1): base, 2*base, 4*base, ... */
export function backoffDelay(attempt: number, baseDelayMs: number): number {
  return baseDelayMs * 2 ** (attempt - 1);
}

/**
 * Runs `fn`, retrying retryable errors with exponential backoff; rethrows the last error. With
 * a deadline, a retry whose backoff would end at or after it is not made.
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 3;
  const baseDelayMs = options.baseDelayMs ?? 100;
  const retryable = options.retryable ?? isTransientError;
  const wait = options.sleep ?? sleep;
  const now = options.now ?? Date.now;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= attempts || !retryable(err)) throw err;
      const delay = backoffDelay(attempt, baseDelayMs);
      if (options.deadline !== undefined && now() + delay >= options.deadline) throw err;
      await wait(delay);
    }
  }
}
