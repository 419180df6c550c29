// Backups: the database Pi's timers and the tool's settings, and the target's restricted
// account. Pure: policy in, file text out. The tool itself is assets/backup/pi-cluster-backup.sh.
import * as fs from "fs";
import * as path from "path";
import { SANDBOX } from "./systemd";
import { BACKUP_STATE_DIR, BACKUP_TOOL } from "../constants";

export const BACKUP_ASSETS = path.join(__dirname, "..", "..", "assets", "backup");
/** The line of the database's backup step that carries its public key to the target's step. */
export const PUBLIC_KEY_MARK = "BACKUP_PUBLIC_KEY";

export type BackupKind = "full" | "incremental" | "ship-binlogs";
export const BACKUP_KINDS: BackupKind[] = ["full", "incremental", "ship-binlogs"];

export function backupUnitName(kind: BackupKind): string {
    return `pi-cluster-backup-${kind}`;
}

/** The tool's text, shipped to both hosts. */
export function backupToolText(): string {
    return fs.readFileSync(path.join(BACKUP_ASSETS, "pi-cluster-backup.sh"), "utf8");
}

export function restoreToolText(): string {
    return fs.readFileSync(path.join(BACKUP_ASSETS, "pi-cluster-restore.sh"), "utf8");
}

export interface DbBackupEnvArgs {
    targetHost: string;
    targetPort: number;
    targetUser: string;
    agePublicKey: string;
    /** The app's database: the target's status is published in its backup_status table. */
    dbName: string;
}

/** The database Pi's settings for the tool. Only a public key: no Pi holds the private one. */
export function renderDbBackupEnv(a: DbBackupEnvArgs): string {
    return `# Managed by pi-cluster; rendered by components/render/backup.ts.
TARGET_HOST=${a.targetHost}
TARGET_PORT=${a.targetPort}
TARGET_USER=${a.targetUser}
AGE_RECIPIENT=${a.agePublicKey}
DB_NAME=${a.dbName}
STATE_DIR=${BACKUP_STATE_DIR}
`;
}

export interface TargetEnvArgs {
    path: string;
    retentionDays: number;
    staleAfterSeconds: { full: number; incremental: number; binlog: number };
    /** The free space (MB) a put may not take the target below (config backup.target.minFreeMb). */
    minFreeMb: number;
}

export function renderTargetEnv(a: TargetEnvArgs): string {
    return `# Managed by pi-cluster; rendered by components/render/backup.ts.
BACKUP_DIR=${a.path}
RETENTION_DAYS=${a.retentionDays}
STALE_FULL=${a.staleAfterSeconds.full}
STALE_INCREMENTAL=${a.staleAfterSeconds.incremental}
STALE_BINLOG=${a.staleAfterSeconds.binlog}
MIN_FREE_MB=${a.minFreeMb}
`;
}

/**
 * One oneshot run of the tool. A run that fails fails the unit, so it shows in
 * `systemctl --failed` (and the tool reports it to the target's status.json). Root, for
 * MariaDB's unix-socket root login and its data directory; the sandbox leaves it only the
 * backup state to write and the right to read what MariaDB owns. After time-sync.target:
 * a Pi has no RTC and names its backups by its clock (the tool also refuses a time before
 * its newest backup's); time-sync.target waits for a synced clock where a service such as
 * systemd-time-wait-sync holds it, and is passive otherwise, so it is ordered, not wanted.
 */
export function renderBackupService(kind: BackupKind): string {
    const what = { full: "full backup", incremental: "incremental backup", "ship-binlogs": "binlog shipping" }[kind];
    return `# Managed by pi-cluster; rendered by components/render/backup.ts.
[Unit]
Description=pi-cluster ${what} to the backup target
After=mariadb.service network-online.target time-sync.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=${BACKUP_TOOL} ${kind}
Nice=10
IOSchedulingClass=idle
TimeoutStartSec=${kind === "ship-binlogs" ? "10min" : "6h"}

# Sandbox (components/render/systemd.ts). It writes only its state; it reads MariaDB's data
# directory (owned by mysql) as root, and talks to MariaDB's socket and the target's sshd.
ReadWritePaths=${BACKUP_STATE_DIR}
PrivateTmp=yes
CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_DAC_OVERRIDE
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
${SANDBOX}
`;
}

export interface BackupSchedule {
    fullOnCalendar: string;
    incrementalOnCalendar: string;
    binlogShipSeconds: number;
}

export function renderBackupTimer(kind: BackupKind, s: BackupSchedule): string {
    const when =
        kind === "ship-binlogs"
            ? `OnBootSec=${s.binlogShipSeconds}s\nOnUnitActiveSec=${s.binlogShipSeconds}s\nAccuracySec=1s`
            : `OnCalendar=${kind === "full" ? s.fullOnCalendar : s.incrementalOnCalendar}\nPersistent=yes\nRandomizedDelaySec=${kind === "full" ? "5min" : "1min"}`;
    return `# Managed by pi-cluster; rendered by components/render/backup.ts.
[Unit]
Description=pi-cluster ${kind} timer

[Timer]
${when}

[Install]
WantedBy=timers.target
`;
}

/**
 * The target's whole trust in the database Pi: one key, from its address only, that can run
 * only the tool's receiver (put, commit, abort, report, series, status; see the tool), with
 * no shell, no forwarding and no terminal. The receiver never replaces a backup.
 */
export function renderAuthorizedKey(publicKey: string, dbAddress: string): string {
    const key = publicKey.trim();
    if (!/^ssh-ed25519 [A-Za-z0-9+/]+={0,3}( \S+)?$/.test(key)) throw new Error(`backup: not an ed25519 public key: ${JSON.stringify(key)}`);
    return `# Managed by pi-cluster; rendered by components/render/backup.ts.
restrict,from="${dbAddress}",command="${BACKUP_TOOL} receive" ${key}
`;
}

/** The target's weekly re-hash of every file against the sha256 its ledger recorded at commit, as the backup user. */
export function renderVerifyService(user: string, dir: string): string {
    return `# Managed by pi-cluster; rendered by components/render/backup.ts.
[Unit]
Description=pi-cluster backups: check every file against the ledger

[Service]
Type=oneshot
User=${user}
Group=${user}
ExecStart=${BACKUP_TOOL} verify
Nice=10
IOSchedulingClass=idle

# Sandbox (components/render/systemd.ts): it writes only the backup directory.
ReadWritePaths=${dir}
PrivateTmp=yes
PrivateNetwork=yes
CapabilityBoundingSet=
RestrictAddressFamilies=AF_UNIX
${SANDBOX}
`;
}

export function renderVerifyTimer(): string {
    return `# Managed by pi-cluster; rendered by components/render/backup.ts.
[Unit]
Description=pi-cluster backups: weekly check

[Timer]
OnCalendar=weekly
Persistent=yes
RandomizedDelaySec=1h

[Install]
WantedBy=timers.target
`;
}

/** The key on the line of a step's stdout that starts with `mark` (the database Pi's backup key by default), or undefined. */
export function publicKeyOf(stdout: string, mark = PUBLIC_KEY_MARK): string | undefined {
    return new RegExp(`^${mark} (ssh-ed25519 \\S+)`, "m").exec(stdout)?.[1];
}
