import { formatBytes, formatDuration } from './format';

/** One line of the database card's backup list: a kind, its age and whether it breaks the policy. */
export interface BackupRow {
  kind: 'full' | 'incremental' | 'binlog' | 'stream';
  text: string;
  /** Red: older than its policy, missing, or (the stream) down or silent. */
  stale: boolean;
  /** Amber: the stream runs but lags past its bound. */
  lagging: boolean;
}

export interface BackupView {
  rows: BackupRow[];
  /** Failed runs and files that failed their checksum, one message each; empty when none. */
  problems: string[];
}

type Kind = { name?: string | null; ageSeconds?: number | null; bytes?: number | null; lastSuccessAt?: string | null; staleAfterSeconds?: number; stale?: boolean };
type Stream = { state?: string; file?: string | null; bytes?: number | null; lagSeconds?: number | null; maxLagSeconds?: number; message?: string; problem?: string | null };

/**
 * The binlog stream's row (the app's lastBackup.stream): green while it is up within its lag
 * bound, amber while it is up but lags past it, red while it is down or its report is stale.
 */
function streamRow(s: Stream): BackupRow {
  const bound = `(bound ${formatDuration(s.maxLagSeconds)})`;
  const up = s.state === 'up';
  const lagging = up && typeof s.lagSeconds === 'number' && typeof s.maxLagSeconds === 'number' && s.lagSeconds > s.maxLagSeconds;
  const stale = !up || (typeof s.problem === 'string' && !lagging);
  let text: string;
  if (!up) text = `down: ${s.message || 'no reason given'}`;
  else if (stale) text = String(s.problem);
  else text = `up, ${s.file ?? '—'} (${formatBytes(s.bytes)}), ${formatDuration(s.lagSeconds)} behind ${bound}`;
  return { kind: 'stream', text, stale, lagging: lagging && !stale };
}

/**
 * The app's `db.lastBackup` (docs/contracts.md) as the card shows it; null while backups
 * are not configured. A kind is red when the app says it is older than its policy; the
 * binlog stream, when on, is a row of its own (see streamRow).
 */
export function backupView(lastBackup: unknown): BackupView | null {
  if (lastBackup === null || typeof lastBackup !== 'object') return null;
  const b = lastBackup as Record<string, unknown>;
  const rows = (['full', 'incremental', 'binlog'] as const).map((kind): BackupRow => {
    const k = (b[kind] ?? {}) as Kind;
    const policy = k.staleAfterSeconds ? ` (policy ${formatDuration(k.staleAfterSeconds)})` : '';
    const text = k.name ? `${formatDuration(k.ageSeconds)} ago, ${formatBytes(k.bytes)}${policy}` : `none yet${policy}`;
    return { kind, text, stale: k.stale !== false, lagging: false };
  });
  const stream = b['stream'];
  if (stream !== null && typeof stream === 'object') rows.push(streamRow(stream as Stream));
  const problems: string[] = [];
  if (typeof b['error'] === 'string') problems.push(b['error']);
  for (const f of Array.isArray(b['failures']) ? (b['failures'] as Array<Record<string, unknown>>) : []) {
    problems.push(`${String(f['kind'])} failed at ${String(f['at'])}: ${String(f['message'])}`);
  }
  const verify = b['verify'] as { bad?: unknown } | null | undefined;
  if (verify && Array.isArray(verify.bad) && verify.bad.length > 0) problems.push(`checksum mismatch: ${verify.bad.join(', ')}`);
  return { rows, problems };
}
