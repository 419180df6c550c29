/**
 * Where a read may run: the decisions behind the read replicas, with no database and no clock
 * (db/readRouter.ts runs them). A replica serves reads only while its last health check found
 * it replicating within the lag bound; reads rotate over those; anything else reads the primary.
 */

/** What one health check of a replica found (`SHOW SLAVE STATUS` and `@@gtid_slave_pos`). */
export type HealthSample =
  | {
      reachable: true;
      /** False when SHOW SLAVE STATUS returned no row: the server is not a replica. */
      configured: boolean;
      ioRunning: boolean;
      sqlRunning: boolean;
      /** Seconds_Behind_Master; null while replication is not running. */
      lagSeconds: number | null;
      gtid: string | null;
      /** Last_IO_Error or Last_SQL_Error, when the server reports one. */
      lastError: string | null;
    }
  | { reachable: false; error: string };

/** The columns of `SHOW SLAVE STATUS` the decision reads (MariaDB; values as mysql2 returns them). */
export interface SlaveStatusRow {
  Slave_IO_Running?: unknown;
  Slave_SQL_Running?: unknown;
  Seconds_Behind_Master?: unknown;
  Last_IO_Error?: unknown;
  Last_SQL_Error?: unknown;
}

/** A health sample from `SHOW SLAVE STATUS`'s row (undefined: no row) and `@@gtid_slave_pos`. */
export function sampleFromSlaveStatus(row: SlaveStatusRow | undefined, gtidSlavePos: unknown): HealthSample {
  const gtid = typeof gtidSlavePos === "string" && gtidSlavePos !== "" ? gtidSlavePos : null;
  if (!row) return { reachable: true, configured: false, ioRunning: false, sqlRunning: false, lagSeconds: null, gtid, lastError: null };
  const lag = row.Seconds_Behind_Master;
  const lagSeconds = lag === null || lag === undefined || lag === "" || !Number.isFinite(Number(lag)) ? null : Number(lag);
  const text = (v: unknown) => (typeof v === "string" && v.trim() !== "" ? v.trim() : null);
  return {
    reachable: true,
    configured: true,
    ioRunning: row.Slave_IO_Running === "Yes",
    sqlRunning: row.Slave_SQL_Running === "Yes",
    lagSeconds,
    gtid,
    lastError: text(row.Last_SQL_Error) ?? text(row.Last_IO_Error),
  };
}

/**
 * Why a replica may not serve reads, as one readable line, or null when it may: it answered, both
 * replication threads run, and its lag is known and within `maxLagSeconds`.
 */
export function readSetProblem(sample: HealthSample | undefined, maxLagSeconds: number): string | null {
  if (!sample) return "not checked yet";
  if (!sample.reachable) return sample.error;
  if (!sample.configured) return "not a replica: SHOW SLAVE STATUS is empty";
  const because = sample.lastError ? `: ${sample.lastError}` : "";
  if (!sample.ioRunning) return `replication I/O thread not running${because}`;
  if (!sample.sqlRunning) return `replication SQL thread not running${because}`;
  if (sample.lagSeconds === null) return "lag unknown (Seconds_Behind_Master is NULL)";
  if (sample.lagSeconds > maxLagSeconds) return `lagging ${sample.lagSeconds} s, over the ${maxLagSeconds} s bound`;
  return null;
}

export function inReadSet(sample: HealthSample | undefined, maxLagSeconds: number): boolean {
  return readSetProblem(sample, maxLagSeconds) === null;
}

/** Round robin: the member for turn `turn` (0, 1, 2, ...), or undefined when the set is empty. */
export function pickRoundRobin<T>(readSet: readonly T[], turn: number): T | undefined {
  if (readSet.length === 0) return undefined;
  return readSet[turn % readSet.length];
}

/**
 * A GTID position as MariaDB writes it: `domain-server-seq`, several joined by commas (one per
 * replication domain). Bounded so a header cannot make a long statement parameter.
 */
const GTID_POSITION = /^\d{1,10}-\d{1,10}-\d{1,20}(,\d{1,10}-\d{1,10}-\d{1,20}){0,31}$/;

/** The GTID a client sent, when it is a well-formed position; anything else is ignored (null). */
export function parseGtidToken(value: unknown): string | null {
  if (typeof value !== "string") return null;
  const token = value.trim();
  return GTID_POSITION.test(token) ? token : null;
}

/**
 * The GTID a read carries: the `X-Pi-Cluster-Gtid` header when it is well formed, else the
 * `pi_cluster_gtid` cookie when that is, else null.
 */
export function requestGtid(header: unknown, cookieHeader: unknown, cookieName: string): string | null {
  const fromHeader = parseGtidToken(Array.isArray(header) ? header[0] : header);
  if (fromHeader) return fromHeader;
  if (typeof cookieHeader !== "string") return null;
  for (const part of cookieHeader.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0 || part.slice(0, eq).trim() !== cookieName) continue;
    let value = part.slice(eq + 1).trim();
    try {
      value = decodeURIComponent(value);
    } catch {
      continue;
    }
    const token = parseGtidToken(value);
    if (token) return token;
  }
  return null;
}

/**
 * Read-your-writes: after `MASTER_GTID_WAIT(gtid, timeout)` on a replica, the read stays there only
 * when it returned 0 (the replica has applied the write); -1 (timed out), NULL or anything else
 * sends it to the primary.
 */
export function gtidWaitAllowsReplica(result: unknown): boolean {
  if (result === null || result === undefined || result === "") return false;
  return Number(result) === 0;
}

/**
 * Semi-synchronous replication on the primary, from its `SHOW GLOBAL VARIABLES` and `SHOW GLOBAL
 * STATUS` (MariaDB's built-in rpl_semi_sync_*). A commit waits up to `timeoutMs` for one replica
 * to have it in its relay log before the client hears of it. When none acks in time the commit
 * goes on anyway, and the primary runs async (`active` false) until a replica has caught up and
 * acks again: the writes of that time are on the primary alone until then.
 */
export interface SemiSyncStatus {
  /** rpl_semi_sync_master_enabled: commits wait for a replica's ack. */
  enabled: boolean;
  /** Rpl_semi_sync_master_status: waiting now; false after a wait ran out, until a replica acks again. */
  active: boolean;
  /** Rpl_semi_sync_master_clients: replicas connected that ack. */
  clients: number;
  /** rpl_semi_sync_master_timeout: how long a commit waits for an ack. */
  timeoutMs: number;
  /** rpl_semi_sync_master_wait_point: AFTER_SYNC, the lossless wait, on a stack's database. */
  waitPoint: string;
  /** Rpl_semi_sync_master_yes_tx / no_tx: commits a replica acked, and commits that went on without one, since the primary started. */
  ackedCommits: number;
  unackedCommits: number;
  /** Rpl_semi_sync_master_no_times: how often it fell back to async since the primary started. */
  fallbacks: number;
  /** An acknowledged write is on a replica too: enabled, active and at least one replica acking. */
  writesProtected: boolean;
}

/** The primary's semi-sync from its variables and status (name -> value); null for a server without it. */
export function semiSyncFromServer(values: ReadonlyMap<string, string>): SemiSyncStatus | null {
  const enabled = values.get("rpl_semi_sync_master_enabled");
  if (enabled === undefined) return null;
  const count = (name: string) => {
    const n = Number(values.get(name));
    return Number.isFinite(n) ? n : 0;
  };
  const on = enabled === "ON";
  const active = values.get("Rpl_semi_sync_master_status") === "ON";
  const clients = count("Rpl_semi_sync_master_clients");
  return {
    enabled: on,
    active,
    clients,
    timeoutMs: count("rpl_semi_sync_master_timeout"),
    waitPoint: values.get("rpl_semi_sync_master_wait_point") ?? "",
    ackedCommits: count("Rpl_semi_sync_master_yes_tx"),
    unackedCommits: count("Rpl_semi_sync_master_no_tx"),
    fallbacks: count("Rpl_semi_sync_master_no_times"),
    writesProtected: on && active && clients > 0,
  };
}

/** The variables and status counters semiSyncFromServer reads, for the probe's SHOW statements. */
export const SEMI_SYNC_VARIABLES = ["rpl_semi_sync_master_enabled", "rpl_semi_sync_master_timeout", "rpl_semi_sync_master_wait_point"];
export const SEMI_SYNC_STATUS = ["Rpl_semi_sync_master_status", "Rpl_semi_sync_master_clients", "Rpl_semi_sync_master_yes_tx", "Rpl_semi_sync_master_no_tx", "Rpl_semi_sync_master_no_times"];
