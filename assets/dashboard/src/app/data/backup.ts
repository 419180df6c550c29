import { formatBytes, formatDuration } from './format';

/** One line of the database card's backup list: a kind, its age and whether it breaks the policy. */
export interface BackupRow {
  kind: 'full' | 'incremental' | 'binlog';
  text: string;
  stale: boolean;
}

export interface BackupView {
  rows: BackupRow[];
  /** Failed runs and files that failed their checksum, one message each; empty when none. */
  problems: string[];
}

type Kind = { name?: string | null; ageSeconds?: number | null; bytes?: number | null; lastSuccessAt?: string | null; staleAfterSeconds?: number; stale?: boolean };

/**
 * The app's `db.lastBackup` (docs/contracts.md) as the card shows it; null while backups
 * are not configured. A kind is red when the app says it is older than its policy.
 */
export function backupView(lastBackup: unknown): BackupView | null {
  if (lastBackup === null || typeof lastBackup !== 'object') return null;
  const b = lastBackup as Record<string, unknown>;
  const rows = (['full', 'incremental', 'binlog'] as const).map((kind): BackupRow => {
    const k = (b[kind] ?? {}) as Kind;
    const policy = k.staleAfterSeconds ? ` (policy ${formatDuration(k.staleAfterSeconds)})` : '';
    const text = k.name ? `${formatDuration(k.ageSeconds)} ago, ${formatBytes(k.bytes)}${policy}` : `none yet${policy}`;
    return { kind, text, stale: k.stale !== false };
  });
  const problems: string[] = [];
  if (typeof b['error'] === 'string') problems.push(b['error']);
  for (const f of Array.isArray(b['failures']) ? (b['failures'] as Array<Record<string, unknown>>) : []) {
    problems.push(`${String(f['kind'])} failed at ${String(f['at'])}: ${String(f['message'])}`);
  }
  const verify = b['verify'] as { bad?: unknown } | null | undefined;
  if (verify && Array.isArray(verify.bad) && verify.bad.length > 0) problems.push(`checksum mismatch: ${verify.bad.join(', ')}`);
  return { rows, problems };
}
