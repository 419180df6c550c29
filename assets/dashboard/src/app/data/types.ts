/** `/cluster.json` as rendered by the stack (docs/contracts.md, "The load balancer's URLs"). */
export interface HostRef {
  name: string;
  address: string;
}

/** A web server in `/cluster.json`. `maintenance` is true while the stack cordons it (out of the round-robin). */
export interface WebServerRef extends HostRef {
  maintenance: boolean;
}

export interface DashboardSettings {
  refreshSeconds: number;
  requestTimeoutMs: number;
}

export interface ClusterConfig {
  version: number;
  loadBalancer: HostRef;
  webServers: WebServerRef[];
  database: HostRef;
  dashboard: DashboardSettings;
  /** `monitoring.enabled`: whether the LB serves Alertmanager's alerts; null when cluster.json does not say (an LB rendered before the field). */
  monitoring: boolean | null;
}

/** `GET /api/nodes/<name>/internal/status`: the web app's full status JSON (docs/contracts.md, "The web app"). */
export interface AppStatus {
  node: {
    name: string;
    hostname: string;
    version: string;
    uptimeSeconds: number;
    pid: number;
    memory: { rssBytes: number; heapUsedBytes: number; systemTotalBytes: number; systemFreeBytes: number };
    load: number[];
  };
  requests: { served: number };
  db: DbStatus;
  cache?: { hit: boolean; ageMs: number };
  generatedAt: string;
}

export interface DbStatus {
  reachable: boolean;
  host?: string;
  version?: string | null;
  latencyMs?: number | null;
  uptimeSeconds?: number | null;
  connections?: number | null;
  queries?: number | null;
  queriesPerSecond?: number | null;
  pool?: { limit: number; inUse: number; free: number } | null;
  /** `Replication` or null (no replicas); `unknown` because it is only trusted once `readReplication` has checked it. */
  replication: unknown;
  lastBackup: unknown;
  error?: string | null;
}

/** One read replica as one web server sees it (`db.replication.replicas[i]`), in config order. */
export interface ReplicaStatus {
  name: string;
  host: string;
  reachable: boolean;
  ioRunning: boolean;
  sqlRunning: boolean;
  /** MariaDB's Seconds_Behind_Master; null when the replica cannot tell (a thread stopped or not connected). */
  lagSeconds: number | null;
  gtid: string | null;
  /** Whether this web server sends reads to it now. */
  inReadSet: boolean;
  /** Reads this web server sent to it since the app started. */
  reads: number;
  error: string | null;
}

/** `db.replication` when the cluster has read replicas. */
export interface Replication {
  maxLagSeconds: number;
  replicas: ReplicaStatus[];
}

/**
 * Whether the database's acknowledged writes are also on a replica (semi-synchronous
 * replication, the app's `db.replication.semiSync`, docs/contracts.md):
 * - protected (green): a replica acks each write before the database answers it, and every
 *   replica acks;
 * - partial (amber): protected, but fewer replicas ack than there are, so one more failure
 *   leaves writes unprotected;
 * - off (amber): the stack does not wait for replicas (dbSemiSyncTimeoutMs 0): async;
 * - unprotected (red): semi-sync is on but no replica acks now: the next write waits the
 *   timeout, then the database goes on async, and the writes of that time are on it alone;
 * - unknown: the report carries no semi-sync (the database does not answer, or an older app).
 */
export type SemiSyncState = 'protected' | 'partial' | 'off' | 'unprotected' | 'unknown';

export interface SemiSyncView {
  state: SemiSyncState;
  /** The card's colour for it: the badge states the other cards use. */
  tone: 'up' | 'degraded' | 'down' | 'unknown';
  text: string;
}

/** nginx `stub_status` figures (https://nginx.org/en/docs/http/ngx_http_stub_status_module.html). */
export interface StubStatus {
  active: number;
  accepts: number;
  handled: number;
  requests: number;
  reading: number;
  writing: number;
  waiting: number;
}

/** Outcome of one HTTP request. Never an exception: a down node is data, not an error. */
export type FetchOutcome =
  | { ok: true; status: number; body: string; elapsedMs: number; at: number }
  /** `body` is the error answer's text (an API's JSON error, say); absent when none arrived (timeout, network). */
  | { ok: false; status: number | null; reason: string; body?: string; elapsedMs: number; at: number };

export type NodeState = 'pending' | 'up' | 'down';
export type DbState = 'pending' | 'up' | 'down' | 'unknown';
export type OverallState = 'pending' | 'healthy' | 'degraded' | 'down';

export interface WebNodeView {
  name: string;
  address: string;
  /** Cordoned by the stack: out of the round-robin, so its state counts for neither the banner nor the database. */
  maintenance: boolean;
  /** What its own status URL (`/api/nodes/<name>/internal/status`) reports, in maintenance or not. */
  state: NodeState;
  /** Why the node is down, or null while up/pending. */
  reason: string | null;
  status: AppStatus | null;
  responseMs: number | null;
  /** Epoch ms of the last request that finished, and of the last one that succeeded. */
  checkedAt: number | null;
  lastUpAt: number | null;
}

export interface LbView {
  name: string;
  address: string;
  state: NodeState;
  reason: string | null;
  stub: StubStatus | null;
  /** Requests per second since the previous sample; null until there are two samples. */
  requestsPerSecond: number | null;
  checkedAt: number | null;
}

export interface DbView {
  name: string;
  address: string;
  state: DbState;
  reason: string | null;
  /** The freshest `db` section among the web servers that answered. */
  db: DbStatus | null;
  /** Which web server reported `db`. */
  reportedBy: string | null;
}

/**
 * A replica's card: ok; degraded (replicating within the bound, but out of a web server's read
 * set or not reachable from one); lagging, stopped or unreachable (red); unknown while no web
 * server in service answers.
 */
export type ReplicaState = 'ok' | 'degraded' | 'lagging' | 'stopped' | 'unreachable' | 'unknown';

export interface ReplicaView {
  name: string;
  host: string;
  state: ReplicaState;
  /** Why it is not ok, or null. */
  reason: string | null;
  /** The view the card shows: the freshest among the web servers that reach it, else the freshest; null while none reports. */
  shown: ReplicaStatus | null;
  maxLagSeconds: number | null;
  /** Which web server reported `shown`. */
  reportedBy: string | null;
  /** Web servers in service that report on it, and those of them whose read set holds it. */
  reporters: string[];
  inReadSetOf: string[];
  /** Reads it served, summed over the reporters; null while none reports. */
  reads: number | null;
}

/** What a web server's card shows: maintenance wins over what its status URL reports. */
export type WebCardState = NodeState | 'maintenance';

export interface Overall {
  state: OverallState;
  reasons: string[];
  /** Web servers in maintenance: shown beside the state, never a reason for it. */
  maintenance: string[];
}

export interface Sample {
  at: number;
  /** Response time in ms; null when the request failed. */
  ms: number | null;
}
