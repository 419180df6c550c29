import fs from "node:fs";
import type { Queryable } from "./db/pool";

/**
 * The newest backups on the backup target, from the status.json its receiver writes (see
 * assets/backup/pi-cluster-backup.sh). Ages are computed at read time, so an old file still
 * shows old backups as old; `stale` applies the policy the file carries.
 */
export interface BackupKindStatus {
  name: string | null;
  at: string | null;
  ageSeconds: number | null;
  bytes: number | null;
  /** The last run that succeeded (the binlog shipper succeeds without shipping on a quiet database). */
  lastSuccessAt: string | null;
  staleAfterSeconds: number;
  stale: boolean;
}

/**
 * The binlog stream's report (assets/backup/pi-cluster-binlog-stream.sh writes it on the
 * target every second; the receiver's status.json carries it as "stream").
 */
export interface StreamStatus {
  state: "up" | "down";
  series: string | null;
  /** The copy being written and its size. */
  file: string | null;
  bytes: number | null;
  /** When its last byte reached the target. */
  at: string | null;
  /** How long the copy has lacked bytes the database had written, to the second (null while down). */
  lagSeconds: number | null;
  maxLagSeconds: number;
  /** When the stream wrote this report, and its age when the request is served. */
  checkedAt: string | null;
  reportAgeSeconds: number | null;
  message: string;
  /** Why the stream is a problem: down, lagging past maxLagSeconds, or its report stale; null when fine. */
  problem: string | null;
}

export interface LastBackup {
  full: BackupKindStatus;
  incremental: BackupKindStatus;
  binlog: BackupKindStatus;
  /** Failed runs the database Pi reported, newest state per kind. */
  failures: Array<{ kind: string; at: string; message: string }>;
  /** The target's last re-hash of every file, and the files that failed it. */
  verify: { at: string; files: number; bad: string[] } | null;
  /** The binlog stream to the target; null when it is off (backup.stream false). */
  stream: StreamStatus | null;
  /** True when any kind is stale, a run failed, a file failed verification or the stream has a problem. */
  problem: boolean;
  error: string | null;
}

type Raw = Record<string, any>;
const KINDS = ["full", "incremental", "binlog"] as const;
const DEFAULT_STALE = { full: 93600, incremental: 7200, binlog: 900 };

const secondsSince = (iso: unknown, now: number): number | null => {
  const t = typeof iso === "string" ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? Math.max(0, Math.round((now - t) / 1000)) : null;
};

function kindStatus(raw: Raw, kind: (typeof KINDS)[number], now: number): BackupKindStatus {
  const newest = (raw[kind] ?? null) as Raw | null;
  const staleAfterSeconds = Number(raw.staleAfterSeconds?.[kind] ?? DEFAULT_STALE[kind]);
  const lastSuccessAt = typeof raw.lastSuccess?.[kind] === "string" ? raw.lastSuccess[kind] : null;
  const ageSeconds = secondsSince(newest?.at, now);
  // A binlog is fresh when the shipper last succeeded recently; a backup when it was taken recently.
  const freshness = kind === "binlog" ? secondsSince(lastSuccessAt, now) : ageSeconds;
  return {
    name: typeof newest?.name === "string" ? newest.name : null,
    at: typeof newest?.at === "string" ? newest.at : null,
    ageSeconds,
    bytes: typeof newest?.bytes === "number" ? newest.bytes : null,
    lastSuccessAt,
    staleAfterSeconds,
    stale: freshness === null || freshness > staleAfterSeconds,
  };
}

const DEFAULT_STREAM_MAX_LAG = 5;

/**
 * The stream's report at read time. The database Pi publishes the target's status at each
 * binlog shipment, so a report older than the binlog's policy means the stream's service
 * stopped writing it.
 */
export function streamStatus(raw: unknown, staleAfterSeconds: number, now: number): StreamStatus | null {
  if (raw === null || typeof raw !== "object") return null;
  const r = raw as Raw;
  const str = (v: unknown) => (typeof v === "string" ? v : null);
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  const state = r.state === "up" ? "up" : "down";
  const lagSeconds = num(r.lagSeconds);
  const maxLagSeconds = num(r.maxLagSeconds) ?? DEFAULT_STREAM_MAX_LAG;
  const reportAgeSeconds = secondsSince(r.checkedAt, now);
  const message = str(r.message) ?? "";
  let problem: string | null = null;
  if (reportAgeSeconds === null || reportAgeSeconds > staleAfterSeconds) {
    problem = `its last report is ${reportAgeSeconds === null ? "missing" : `${reportAgeSeconds} s old`}: is pi-cluster-binlog-stream running on the target?`;
  } else if (state === "down") {
    problem = `down: ${message || "no reason given"}`;
  } else if (lagSeconds !== null && lagSeconds > maxLagSeconds) {
    problem = `${lagSeconds} s behind the database (bound ${maxLagSeconds} s)`;
  }
  return {
    state, series: str(r.series), file: str(r.file), bytes: num(r.bytes), at: str(r.at), lagSeconds, maxLagSeconds,
    checkedAt: str(r.checkedAt), reportAgeSeconds, message, problem,
  };
}

/** Shapes the target's status.json; pure, for the tests. */
export function backupStatus(raw: Raw, now: number): LastBackup {
  const [full, incremental, binlog] = KINDS.map((k) => kindStatus(raw, k, now));
  const failures = Array.isArray(raw.failures)
    ? raw.failures.map((f: Raw) => ({ kind: String(f.kind), at: String(f.at), message: String(f.message) }))
    : [];
  const verify = raw.verify && typeof raw.verify === "object"
    ? { at: String(raw.verify.at), files: Number(raw.verify.files), bad: Array.isArray(raw.verify.bad) ? raw.verify.bad.map(String) : [] }
    : null;
  const stream = streamStatus(raw.stream, binlog.staleAfterSeconds, now);
  const problem = full.stale || incremental.stale || binlog.stale || failures.length > 0 || (verify?.bad.length ?? 0) > 0 || stream?.problem != null;
  return { full, incremental, binlog, failures, verify, stream, problem, error: null };
}

/**
 * The status the database Pi's backup tool publishes in the app's database (table
 * backup_status, migration 002): null when there is none, so backups are not configured or
 * have not run yet; an error entry when it cannot be read.
 */
export async function queryBackupStatus(db: Queryable, now = Date.now()): Promise<LastBackup | null> {
  try {
    const rows = await db.query<Array<{ status: string }>>("SELECT status FROM backup_status WHERE id = 1");
    if (rows.length === 0) return null;
    return backupStatus(JSON.parse(rows[0].status) as Raw, now);
  } catch (err) {
    if ((err as { code?: string }).code === "ER_NO_SUCH_TABLE") return null;
    return { ...backupStatus({}, now), problem: true, error: `cannot read backup_status: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** Reads BACKUP_STATUS_FILE; null when backups are not configured, an error entry when it cannot be read. */
export function readBackupStatus(file: string | null, now = Date.now()): LastBackup | null {
  if (!file) return null;
  try {
    return backupStatus(JSON.parse(fs.readFileSync(file, "utf8")) as Raw, now);
  } catch (err) {
    const empty = backupStatus({}, now);
    return { ...empty, problem: true, error: `cannot read ${file}: ${err instanceof Error ? err.message : String(err)}` };
  }
}
