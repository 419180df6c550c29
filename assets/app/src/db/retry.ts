/**
 * Which database errors are worth retrying, and the retry loop itself. Pure: the clock and
 * the sleep are injectable so the tests need no database and no waiting.
 */

/** Errors from the network or the server's state, where the same statement may succeed soon. */
const TRANSIENT_CODES = new Set([
  // Node socket errors while connecting or talking to the server.
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  // mysql2: the connection died under a query.
  "PROTOCOL_CONNECTION_LOST",
  // MariaDB: the statement was rolled back or never ran.
  "ER_LOCK_DEADLOCK", // 1213
  "ER_LOCK_WAIT_TIMEOUT", // 1205
  "ER_CON_COUNT_ERROR", // 1040 too many connections
  "ER_TOO_MANY_USER_CONNECTIONS", // 1203
  "ER_SERVER_SHUTDOWN", // 1053
  "ER_CONNECTION_KILLED", // 1927 (MariaDB)
]);

/** The same errors by MariaDB error number, for errors that carry only `errno`. */
const TRANSIENT_ERRNOS = new Set([1213, 1205, 1040, 1203, 1053, 1927]);

/** Errors where the statement certainly did not change anything, so even a write may be retried. */
const NOT_EXECUTED_CODES = new Set(["ER_LOCK_DEADLOCK", "ER_LOCK_WAIT_TIMEOUT"]);

interface ErrorLike {
  code?: unknown;
  errno?: unknown;
  /** Set by db/pool.ts on errors raised while getting a connection, before any statement was sent. */
  phase?: unknown;
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
 * (while connecting), or the server rolled the statement back.
 */
export function isSafeToRetryWrite(err: unknown): boolean {
  if (!isTransientError(err)) return false;
  const { code, errno, phase } = asErrorLike(err);
  if (phase === "connect") return true;
  if (typeof code === "string" && NOT_EXECUTED_CODES.has(code)) return true;
  return errno === 1213 || errno === 1205;
}

export interface RetryOptions {
  /** Total attempts, including the first. Default 3. */
  attempts?: number;
  /** Delay before the second attempt; it doubles after each further failure. Default 100 ms. */
  baseDelayMs?: number;
  /** Decides whether an error is retried. Default isTransientError. */
  retryable?: (err: unknown) => boolean;
  /** Injected for tests. */
  sleep?: (ms: number) => Promise<void>;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The delay before attempt `attempt + 1` (attempt counts from 1): base, 2*base, 4*base, ... */
export function backoffDelay(attempt: number, baseDelayMs: number): number {
  return baseDelayMs * 2 ** (attempt - 1);
}

/** Runs `fn`, retrying retryable errors with exponential backoff; rethrows the last error. */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 3;
  const baseDelayMs = options.baseDelayMs ?? 100;
  const retryable = options.retryable ?? isTransientError;
  const wait = options.sleep ?? sleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= attempts || !retryable(err)) throw err;
      await wait(backoffDelay(attempt, baseDelayMs));
    }
  }
}
