import { Sample } from './types';

export interface SparklineGeometry {
  /** One SVG path `d` per run of successful samples, so a failure leaves a visible gap. */
  paths: string[];
  /** x positions of failed samples, drawn as marks on the baseline. */
  failures: number[];
  /** Points of runs that have a single sample (a path of one point draws nothing). */
  dots: { x: number; y: number }[];
  maxMs: number;
}

/**
 * Lays `samples` out on a `width` x `height` box: the newest sample on the right edge, one slot
 * per sample of `capacity`, y scaled to the largest response time seen (at least 1 ms).
 */
export function sparklineGeometry(
  samples: readonly Sample[],
  width: number,
  height: number,
  capacity: number,
  pad = 2,
): SparklineGeometry {
  const ok = samples.filter((s) => s.ms !== null).map((s) => s.ms as number);
  const maxMs = Math.max(1, ...ok);
  const step = capacity > 1 ? (width - 2 * pad) / (capacity - 1) : 0;
  const offset = capacity - samples.length;
  const x = (i: number) => round(pad + (offset + i) * step);
  const y = (ms: number) => round(height - pad - (ms / maxMs) * (height - 2 * pad));

  const paths: string[] = [];
  const dots: { x: number; y: number }[] = [];
  const failures: number[] = [];
  let run: { x: number; y: number }[] = [];
  const flush = () => {
    if (run.length === 1) dots.push(run[0]);
    else if (run.length > 1) paths.push(run.map((p, i) => `${i === 0 ? 'M' : 'L'}${p.x} ${p.y}`).join(' '));
    run = [];
  };
  samples.forEach((s, i) => {
    if (s.ms === null) {
      flush();
      failures.push(x(i));
    } else {
      run.push({ x: x(i), y: y(s.ms) });
    }
  });
  flush();
  return { paths, failures, dots, maxMs };
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
