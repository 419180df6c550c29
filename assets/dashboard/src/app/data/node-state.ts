import { requestRate, parseStubStatus } from './stub-status';
import {
  AppStatus,
  DbView,
  FetchOutcome,
  HostRef,
  LbView,
  Overall,
  ReplicaView,
  SemiSyncView,
  WebCardState,
  WebNodeView,
  WebServerRef,
} from './types';

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses a web server's status JSON; null when it is not the shape docs/contracts.md promises. */
export function parseAppStatus(text: string): AppStatus | null {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isRecord(raw) || !isRecord(raw['node']) || !isRecord(raw['db']) || !isRecord(raw['requests'])) {
    return null;
  }
  if (typeof raw['db']['reachable'] !== 'boolean') return null;
  return raw as unknown as AppStatus;
}

export function pendingWebNode(server: WebServerRef): WebNodeView {
  return { ...server, state: 'pending', reason: null, status: null, responseMs: null, checkedAt: null, lastUpAt: null };
}

/**
 * The web servers of a fresh `/cluster.json`: a server already known keeps what its status URL
 * last reported, and takes its address and maintenance from the config (a cordon can be lifted).
 */
export function mergeWebNodes(known: readonly WebNodeView[], servers: readonly WebServerRef[]): WebNodeView[] {
  const old = new Map(known.map((n) => [n.name, n]));
  return servers.map((w) => ({ ...(old.get(w.name) ?? pendingWebNode(w)), address: w.address, maintenance: w.maintenance }));
}

export function webCardState(node: WebNodeView): WebCardState {
  return node.maintenance ? 'maintenance' : node.state;
}

/** A web server is up when its own status URL answers 2xx with the status JSON, and down otherwise. */
export function deriveWebNode(prev: WebNodeView, outcome: FetchOutcome): WebNodeView {
  if (!outcome.ok) {
    return { ...prev, state: 'down', reason: outcome.reason, status: null, responseMs: null, checkedAt: outcome.at };
  }
  const status = parseAppStatus(outcome.body);
  if (!status) {
    return {
      ...prev,
      state: 'down',
      reason: 'answered, but not with the status JSON',
      status: null,
      responseMs: null,
      checkedAt: outcome.at,
    };
  }
  return {
    ...prev,
    state: 'up',
    reason: null,
    status,
    responseMs: outcome.elapsedMs,
    checkedAt: outcome.at,
    lastUpAt: outcome.at,
  };
}

export function pendingLb(host: HostRef): LbView {
  return { ...host, state: 'pending', reason: null, stub: null, requestsPerSecond: null, checkedAt: null };
}

/** The LB is up when `/api/lb/stub_status` answers with stub_status text. */
export function deriveLb(prev: LbView, outcome: FetchOutcome): LbView {
  if (!outcome.ok) {
    return { ...prev, state: 'down', reason: outcome.reason, stub: null, requestsPerSecond: null, checkedAt: outcome.at };
  }
  const stub = parseStubStatus(outcome.body);
  if (!stub) {
    return {
      ...prev,
      state: 'down',
      reason: 'answered, but not with stub_status text',
      stub: null,
      requestsPerSecond: null,
      checkedAt: outcome.at,
    };
  }
  const before = prev.stub && prev.checkedAt !== null ? { stub: prev.stub, at: prev.checkedAt } : null;
  return {
    ...prev,
    state: 'up',
    reason: null,
    stub,
    requestsPerSecond: requestRate(before, { stub, at: outcome.at }),
    checkedAt: outcome.at,
  };
}

/**
 * The database has no URL of its own on the LB: its state is what the web servers in service
 * report (one in maintenance may be cordoned because it is the one that cannot reach it).
 * Reachable from any of them means up (the freshest report is shown); unreachable from all
 * that answered means down; none answering means unknown.
 */
export function deriveDb(host: HostRef, webNodes: readonly WebNodeView[]): DbView {
  const inService = webNodes.filter((n) => !n.maintenance);
  const reports = inService.filter((n) => n.state === 'up' && n.status !== null);
  if (reports.length === 0) {
    const pending = inService.some((n) => n.state === 'pending');
    return {
      ...host,
      state: pending ? 'pending' : 'unknown',
      reason: pending ? null : 'no web server in service answered, so nothing reports on the database',
      db: null,
      reportedBy: null,
    };
  }
  const freshest = (list: WebNodeView[]) =>
    list.reduce((a, b) => (Date.parse(b.status!.generatedAt) > Date.parse(a.status!.generatedAt) ? b : a));
  const reachable = reports.filter((n) => n.status!.db.reachable);
  if (reachable.length > 0) {
    const best = freshest(reachable);
    const blind = reports.filter((n) => !n.status!.db.reachable).map((n) => n.name);
    return {
      ...host,
      state: 'up',
      reason: blind.length > 0 ? `not reachable from ${blind.join(', ')}` : null,
      db: best.status!.db,
      reportedBy: best.name,
    };
  }
  const best = freshest(reports);
  return {
    ...host,
    state: 'down',
    reason: best.status!.db.error ? `unreachable: ${best.status!.db.error}` : 'unreachable from every web server',
    db: best.status!.db,
    reportedBy: best.name,
  };
}

/**
 * The banner. Down: the LB does not answer, or no web server in service does, or the database
 * is down (no page can be served then). Degraded: anything less than everything in service up.
 * A web server in maintenance is out of the round-robin by the operator's choice: it is listed,
 * but neither waited for nor counted, whatever its status URL says.
 * A read replica that is not ok is degraded, never down, whatever its state: the primary (the
 * database card) still serves, as the other web servers do while one of them is down.
 */
export function deriveOverall(input: {
  configError: string | null;
  lb: LbView | null;
  webNodes: readonly WebNodeView[];
  db: DbView | null;
  /** Read replicas (deriveReplicas); none when absent. */
  replicas?: readonly ReplicaView[];
  /** Whether the database's writes wait for a replica's ack (semiSyncView); none without replicas. */
  semiSync?: SemiSyncView | null;
}): Overall {
  const { configError, lb, webNodes, db, replicas = [], semiSync = null } = input;
  const maintenance = webNodes.filter((n) => n.maintenance).map((n) => n.name);
  const inService = webNodes.filter((n) => !n.maintenance);
  if (configError && !lb) return { state: 'down', reasons: [`cannot load /cluster.json: ${configError}`], maintenance };
  if (!lb || lb.state === 'pending' || inService.some((n) => n.state === 'pending')) {
    return { state: 'pending', reasons: ['waiting for the first answers'], maintenance };
  }
  const down: string[] = [];
  const degraded: string[] = [];
  if (lb.state === 'down' && configError) down.push(`load balancer ${lb.name} does not answer (${lb.reason})`);
  else if (lb.state === 'down') degraded.push(`load balancer status unavailable (${lb.reason})`);
  else if (configError) degraded.push(`cannot reload /cluster.json: ${configError}`);

  const downWeb = inService.filter((n) => n.state === 'down');
  if (webNodes.length === 0) down.push('no web servers configured');
  else if (inService.length === 0) down.push('no web server in service: every one is in maintenance');
  else if (downWeb.length === inService.length) {
    down.push(maintenance.length > 0 ? 'every web server in service is down' : 'every web server is down');
  } else for (const n of downWeb) degraded.push(`${n.name} is down (${n.reason})`);

  if (db?.state === 'down') down.push(`database ${db.name} is ${db.reason}`);
  else if (db?.state === 'up' && db.reason) degraded.push(`database ${db.name} ${db.reason}`);
  // Writes still succeed, so degraded: but an acknowledged write may now exist on the database only.
  if (db?.state === 'up' && semiSync?.state === 'unprotected') degraded.push(`writes to ${db.name} ${semiSync.text}`);
  // An unknown replica adds nothing: no web server in service answered, which is already said.
  for (const r of replicas) {
    if (r.state !== 'ok' && r.state !== 'unknown') degraded.push(`replica ${r.name} is ${r.state} (${r.reason})`);
  }

  if (down.length > 0) return { state: 'down', reasons: [...down, ...degraded], maintenance };
  if (degraded.length > 0) return { state: 'degraded', reasons: degraded, maintenance };
  return { state: 'healthy', reasons: [maintenance.length > 0 ? 'all nodes in service up' : 'all nodes up'], maintenance };
}
