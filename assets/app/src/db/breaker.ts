import { describeError } from "../status";

/**
 * The "database is down" state: while it holds, requests fail at once with 503 instead of each
 * spending its whole time budget on a server that is not there, and a background recheck finds
 * the server again as soon as it answers. Pure apart from the injected recheck, clock and timer.
 */

/** How often a down database is checked again; bounds how late recovery is noticed. */
export const RECHECK_INTERVAL_MS = 250;
/**
 * At most this many rechecks at once. On a powered-off host each one lasts its whole timeout
 * (1 s), so with two a new one still starts at least every 500 ms.
 */
export const RECHECKS_IN_FLIGHT = 2;

/** Thrown without touching the pool while the database is known to be down. */
export class DatabaseDownError extends Error {
  readonly code = "DB_DOWN";
  /** Nothing was sent, so a write may be retried later. */
  readonly phase = "connect";
  constructor(downForMs: number, cause: unknown) {
    super(`the database has been down for ${downForMs} ms (${describeError(cause)}); it is checked again every ${RECHECK_INTERVAL_MS} ms`);
    this.name = "DatabaseDownError";
  }
}

export interface BreakerOptions {
  /** Time between rechecks while down. Default RECHECK_INTERVAL_MS. */
  intervalMs?: number;
  /** Most rechecks running at once. Default RECHECKS_IN_FLIGHT. */
  maxInFlight?: number;
  /** Injected for tests. */
  now?: () => number;
  /** Runs `fn` every `ms` until the returned function is called. Injected for tests. */
  every?: (ms: number, fn: () => void) => () => void;
}

function every(ms: number, fn: () => void): () => void {
  const timer = setInterval(fn, ms);
  // A recheck must not keep a stopping process alive.
  timer.unref();
  return () => clearInterval(timer);
}

export class CircuitBreaker {
  private down?: { since: number; cause: unknown };
  /** Counts outages, so a recheck started in an earlier one cannot end a later one. */
  private outages = 0;
  private inFlight = 0;
  private suspecting = false;
  private stopped = false;
  private cancelRechecks?: () => void;
  private readonly intervalMs: number;
  private readonly maxInFlight: number;
  private readonly now: () => number;
  private readonly every: (ms: number, fn: () => void) => () => void;

  /**
   * @param recheck resolves when the server answers on a new connection, rejects when it does not.
   * @param onDown runs once each time the database goes down (db/pool.ts drops idle connections).
   */
  constructor(
    private readonly recheck: () => Promise<void>,
    private readonly onDown: () => void = () => undefined,
    options: BreakerOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? RECHECK_INTERVAL_MS;
    this.maxInFlight = options.maxInFlight ?? RECHECKS_IN_FLIGHT;
    this.now = options.now ?? Date.now;
    this.every = options.every ?? every;
  }

  get isDown(): boolean {
    return this.down !== undefined;
  }

  /** Throws DatabaseDownError while the database is known to be down. */
  assertUp(): void {
    if (this.down) throw new DatabaseDownError(this.now() - this.down.since, this.down.cause);
  }

  /** A new connection could not be made: the database is down until a recheck succeeds. */
  markDown(cause: unknown): void {
    if (this.stopped) return;
    if (this.down) {
      this.down.cause = cause;
      return;
    }
    this.down = { since: this.now(), cause };
    this.outages++;
    this.onDown();
    this.cancelRechecks = this.every(this.intervalMs, () => this.tick());
  }

  /** An open connection failed: recheck once now, and count the database down only if that fails. */
  suspect(): void {
    if (this.stopped || this.down || this.suspecting) return;
    this.suspecting = true;
    this.recheck().then(
      () => void (this.suspecting = false),
      (err: unknown) => {
        this.suspecting = false;
        this.markDown(err);
      },
    );
  }

  /** Stops rechecking for good (shutdown). */
  stop(): void {
    this.stopped = true;
    this.cancelRechecks?.();
  }

  private tick(): void {
    if (!this.down || this.inFlight >= this.maxInFlight) return;
    const outage = this.outages;
    this.inFlight++;
    this.recheck().then(
      () => {
        this.inFlight--;
        if (outage === this.outages) this.markUp();
      },
      (err: unknown) => {
        this.inFlight--;
        if (this.down) this.down.cause = err;
      },
    );
  }

  private markUp(): void {
    this.down = undefined;
    this.cancelRechecks?.();
    this.cancelRechecks = undefined;
  }
}
