import { Sample } from './types';

/** Samples kept per web server for the response-time chart. */
export const HISTORY_LENGTH = 30;

/** Returns a new array with `sample` appended and only the newest `max` samples kept. */
export function appendSample(history: readonly Sample[], sample: Sample, max = HISTORY_LENGTH): Sample[] {
  const next = [...history, sample];
  return next.length > max ? next.slice(next.length - max) : next;
}

/** Keeps the histories of the nodes still in the cluster; drops the rest (after a scale-in). */
export function pruneHistories(
  histories: ReadonlyMap<string, readonly Sample[]>,
  names: readonly string[],
): Map<string, Sample[]> {
  const keep = new Set(names);
  const out = new Map<string, Sample[]>();
  for (const [name, samples] of histories) if (keep.has(name)) out.set(name, [...samples]);
  return out;
}
