import { isRecord } from './node-state';
import { SemiSyncState, SemiSyncView } from './types';

const TONE: Record<SemiSyncState, SemiSyncView['tone']> = {
  protected: 'up',
  partial: 'degraded',
  off: 'degraded',
  unprotected: 'down',
  unknown: 'unknown',
};

/** Beside the colour, as the backup lines' ✓ and ✗: the state never rests on colour alone. */
export const SEMI_SYNC_SYMBOL: Record<SemiSyncView['tone'], string> = { up: '✓', degraded: '!', down: '✗', unknown: '?' };

const view = (state: SemiSyncState, text: string): SemiSyncView => ({ state, tone: TONE[state], text });

/**
 * The database card's "Writes" line from a web server's `db.replication`; null without replicas
 * (or a value that is not that shape), when there is nothing to protect writes with. A field of
 * the wrong type reads as the bad case, so a malformed report can turn it red but never green.
 */
export function semiSyncView(replication: unknown): SemiSyncView | null {
  if (!isRecord(replication) || !Array.isArray(replication['replicas'])) return null;
  const s = replication['semiSync'];
  if (!isRecord(s)) return view('unknown', 'unknown: the database reports no semi-sync');
  const replicas = replication['replicas'].length;
  const clients = typeof s['clients'] === 'number' && Number.isFinite(s['clients']) ? s['clients'] : 0;
  if (s['enabled'] !== true) return view('off', 'unprotected: semi-sync off, replicas follow async');
  if (s['active'] !== true || clients < 1) {
    return view('unprotected', 'unprotected: no replica acknowledged, new writes are on the database alone');
  }
  const text = `protected: a replica acks each write (${clients} of ${replicas} ${replicas === 1 ? 'replica' : 'replicas'} acking)`;
  return view(clients < replicas ? 'partial' : 'protected', text);
}
