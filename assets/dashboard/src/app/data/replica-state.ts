import { formatNumber, formatOptional } from './format';
import { isRecord } from './node-state';
import { ReplicaState, ReplicaStatus, ReplicaView, Replication, WebNodeView } from './types';

/** The colour of a replica's card, in the card and badge states the other cards use. */
export type ReplicaCardState = 'up' | 'degraded' | 'down' | 'unknown';

const CARD_STATE: Record<ReplicaState, ReplicaCardState> = {
  ok: 'up',
  degraded: 'degraded',
  lagging: 'down',
  stopped: 'down',
  unreachable: 'down',
  unknown: 'unknown',
};

export function replicaCardState(state: ReplicaState): ReplicaCardState {
  return CARD_STATE[state];
}

/**
 * A web server's `db.replication` (docs/contracts.md); null when the cluster has no replicas or
 * the value is not that shape, so a web server running an older app counts as no report.
 * A replica without a name is dropped; any other field of the wrong type reads as the bad case
 * (false, null, 0), so a malformed report can turn a card red but never green.
 */
export function readReplication(value: unknown): Replication | null {
  if (!isRecord(value) || typeof value['maxLagSeconds'] !== 'number' || !Array.isArray(value['replicas'])) return null;
  const replicas: ReplicaStatus[] = [];
  for (const r of value['replicas'] as unknown[]) {
    if (!isRecord(r) || typeof r['name'] !== 'string' || r['name'] === '') continue;
    const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
    replicas.push({
      name: r['name'],
      host: typeof r['host'] === 'string' ? r['host'] : '',
      reachable: r['reachable'] === true,
      ioRunning: r['ioRunning'] === true,
      sqlRunning: r['sqlRunning'] === true,
      lagSeconds: num(r['lagSeconds']),
      gtid: typeof r['gtid'] === 'string' ? r['gtid'] : null,
      inReadSet: r['inReadSet'] === true,
      reads: num(r['reads']) ?? 0,
      error: typeof r['error'] === 'string' && r['error'] !== '' ? r['error'] : null,
    });
  }
  return { maxLagSeconds: value['maxLagSeconds'], replicas };
}

/** The database card's "Replication" line: a summary of the replicas, else as before them ("not configured" for null). */
export function formatReplication(value: unknown): string {
  const r = readReplication(value);
  if (!r) return formatOptional(value);
  const n = r.replicas.length;
  return `${n} read ${n === 1 ? 'replica' : 'replicas'}, lag bound ${formatNumber(r.maxLagSeconds)} s`;
}

/**
 * One view of one replica against the lag bound. Red (unreachable, stopped, lagging) wins in
 * that order; the read set is left to `deriveReplicas`, which sees every web server's.
 * A lag equal to the bound is within it, as the app's read set takes it.
 */
export function replicaHealth(
  r: ReplicaStatus,
  maxLagSeconds: number,
): { state: 'ok' | 'lagging' | 'stopped' | 'unreachable'; reason: string | null } {
  if (!r.reachable) return { state: 'unreachable', reason: 'unreachable' };
  if (!r.ioRunning || !r.sqlRunning) {
    const which = !r.ioRunning && !r.sqlRunning ? 'IO and SQL threads' : !r.ioRunning ? 'IO thread' : 'SQL thread';
    return { state: 'stopped', reason: `${which} not running` };
  }
  if (r.lagSeconds === null) return { state: 'lagging', reason: 'lag unknown: the replica reports none' };
  if (r.lagSeconds > maxLagSeconds) {
    return {
      state: 'lagging',
      reason: `${formatNumber(r.lagSeconds)} s behind, over the ${formatNumber(maxLagSeconds)} s bound`,
    };
  }
  return { state: 'ok', reason: null };
}

interface Report {
  by: string;
  /** When its database probe ran: generatedAt less the cache's age (docs/contracts.md). */
  probedAt: number;
  maxLagSeconds: number;
  replica: ReplicaStatus;
}

function probedAt(node: WebNodeView): number {
  const s = node.status!;
  return Date.parse(s.generatedAt) - (s.cache?.ageMs ?? 0);
}

function freshest(list: readonly Report[]): Report {
  return list.reduce((a, b) => (b.probedAt > a.probedAt ? b : a));
}

/** A replica no web server in service reports on now: its card stays, its figures go. */
export function unknownReplica(r: Pick<ReplicaView, 'name' | 'host'>): ReplicaView {
  return {
    name: r.name,
    host: r.host,
    state: 'unknown',
    reason: 'no web server in service answered, so nothing reports on it',
    shown: null,
    maxLagSeconds: null,
    reportedBy: null,
    reporters: [],
    inReadSetOf: [],
    reads: null,
  };
}

/**
 * The replicas' cards from every web server's view, like the database card: only servers in
 * service that answered count.
 *
 * - The replica's own state (threads, lag, GTID) comes from the freshest view among the servers
 *   that reach it, "freshest" by when each server's database probe ran (its status is cached).
 *   Unreachable from every one of them is red, with the freshest one's error.
 * - Reachable and within the bound, it is ok only when every reporting server reaches it and
 *   holds it in its read set; otherwise degraded (amber), naming the servers.
 * - Reads are summed over the reporting servers, each counting since its app started.
 *
 * No server answering keeps the last known replicas as unknown; servers answering with no
 * replication at all means the cluster has none, and no card is shown.
 */
export function deriveReplicas(webNodes: readonly WebNodeView[], known: readonly ReplicaView[]): ReplicaView[] {
  const answered = webNodes.filter((n) => !n.maintenance && n.state === 'up' && n.status !== null);
  if (answered.length === 0) return known.map(unknownReplica);
  const views = answered
    .map((n) => ({ node: n, at: probedAt(n), replication: readReplication(n.status!.db.replication) }))
    .filter((v) => v.replication !== null);
  if (views.length === 0) return [];

  // Config order: the freshest server's list, then any replica only an older one still lists.
  const ordered = [...views].sort((a, b) => b.at - a.at);
  const names: string[] = [];
  for (const v of ordered) for (const r of v.replication!.replicas) if (!names.includes(r.name)) names.push(r.name);

  return names.map((name) => {
    const reports: Report[] = views.flatMap((v) => {
      const replica = v.replication!.replicas.find((r) => r.name === name);
      return replica ? [{ by: v.node.name, probedAt: v.at, maxLagSeconds: v.replication!.maxLagSeconds, replica }] : [];
    });
    const reaching = reports.filter((r) => r.replica.reachable);
    const blind = reports.filter((r) => !r.replica.reachable);
    const base = reaching.length > 0 ? freshest(reaching) : freshest(reports);
    const health = replicaHealth(base.replica, base.maxLagSeconds);
    const inReadSetOf = reports.filter((r) => r.replica.inReadSet).map((r) => r.by);
    const view: ReplicaView = {
      name,
      host: base.replica.host,
      state: health.state,
      reason: health.reason,
      shown: base.replica,
      maxLagSeconds: base.maxLagSeconds,
      reportedBy: base.by,
      reporters: reports.map((r) => r.by),
      inReadSetOf,
      reads: reports.reduce((sum, r) => sum + r.replica.reads, 0),
    };
    if (reaching.length === 0) return { ...view, reason: `unreachable from ${blind.map((r) => r.by).join(', ')}` };

    const notes: string[] = [];
    if (blind.length > 0) {
      const first = blind[0].replica.error;
      notes.push(`not reachable from ${blind.map((r) => r.by).join(', ')}${first ? ` (${first})` : ''}`);
    }
    if (health.state === 'ok') {
      const outOf = reports.filter((r) => r.replica.reachable && !r.replica.inReadSet).map((r) => r.by);
      if (outOf.length > 0 && outOf.length === reaching.length) notes.push('out of the read set');
      else if (outOf.length > 0) notes.push(`out of the read set of ${outOf.join(', ')}`);
    }
    if (health.state !== 'ok') return { ...view, reason: [health.reason!, ...notes].join('; ') };
    return notes.length > 0 ? { ...view, state: 'degraded', reason: notes.join('; ') } : view;
  });
}
