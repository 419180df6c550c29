import { FetchOutcome } from './types';

export type FetchFn = (url: string, init: RequestInit) => Promise<Response>;

export interface Clock {
  /** Monotonic ms, for durations. */
  monotonic(): number;
  /** Epoch ms, for "last updated". */
  wall(): number;
}

export const systemClock: Clock = {
  monotonic: () => performance.now(),
  wall: () => Date.now(),
};

/**
 * GETs `url` with its own deadline, so one slow node never holds up the others.
 * Resolves for every outcome (HTTP error, timeout, network failure) and never rejects:
 * a node that is down is a state to show, not an exception.
 */
export async function fetchWithTimeout(
  url: string,
  timeoutMs: number,
  fetchFn: FetchFn = (u, i) => fetch(u, i),
  clock: Clock = systemClock,
): Promise<FetchOutcome> {
  const controller = new AbortController();
  const started = clock.monotonic();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  const done = () => ({ elapsedMs: Math.round(clock.monotonic() - started), at: clock.wall() });
  try {
    // no-store: every sample must reach the node, not the browser cache.
    const response = await fetchFn(url, { signal: controller.signal, cache: 'no-store' });
    const body = await response.text();
    if (!response.ok) {
      const label = response.statusText ? ` ${response.statusText}` : '';
      return { ok: false, status: response.status, reason: `HTTP ${response.status}${label}`, body, ...done() };
    }
    return { ok: true, status: response.status, body, ...done() };
  } catch (err) {
    const reason = timedOut ? `no answer within ${timeoutMs} ms` : `network error: ${describe(err)}`;
    return { ok: false, status: null, reason, ...done() };
  } finally {
    clearTimeout(timer);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
