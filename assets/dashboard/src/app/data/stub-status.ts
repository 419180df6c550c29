import { StubStatus } from './types';

/**
 * Parses nginx stub_status text, whose format is fixed by the module's docs:
 *
 *   Active connections: 291
 *   server accepts handled requests
 *    16630948 16630948 31070465
 *   Reading: 6 Writing: 179 Waiting: 106
 *
 * Returns null when the text is not stub_status (an HTML error page, say).
 */
export function parseStubStatus(text: string): StubStatus | null {
  const active = /Active connections:\s*(\d+)/.exec(text);
  const counters = /server accepts handled requests\s*\n\s*(\d+)\s+(\d+)\s+(\d+)/.exec(text);
  const rw = /Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)/.exec(text);
  if (!active || !counters || !rw) return null;
  return {
    active: Number(active[1]),
    accepts: Number(counters[1]),
    handled: Number(counters[2]),
    requests: Number(counters[3]),
    reading: Number(rw[1]),
    writing: Number(rw[2]),
    waiting: Number(rw[3]),
  };
}

/** Requests per second between two samples; null when nginx restarted (counters went back). */
export function requestRate(
  prev: { stub: StubStatus; at: number } | null,
  next: { stub: StubStatus; at: number },
): number | null {
  if (!prev) return null;
  const seconds = (next.at - prev.at) / 1000;
  const delta = next.stub.requests - prev.stub.requests;
  if (seconds <= 0 || delta < 0) return null;
  return delta / seconds;
}
