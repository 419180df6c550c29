// The binlog stream: the backup target's live copy of the database's binary log. Pure:
// settings in, file text out. The tool is assets/backup/pi-cluster-binlog-stream.sh.
import * as fs from "fs";
import * as path from "path";
import { BACKUP_ASSETS } from "./backup";
import { SANDBOX } from "./systemd";
import { STREAM_CA, STREAM_CLIENT_CNF, STREAM_TOOL, STREAM_UNIT, STREAM_USER } from "../constants";

/**
 * Enough to read the binlog and nothing else: REPLICATION SLAVE for the dump itself, BINLOG
 * MONITOR (MariaDB 10.5.2 and later) for SHOW BINARY LOGS, SHOW MASTER STATUS and SHOW
 * BINLOG EVENTS, which the stream reads to pick its first file and to measure its lag.
 */
export const STREAM_PRIVILEGES = "REPLICATION SLAVE, BINLOG MONITOR";
/**
 * The status API calls a stream that lags more than this a problem. The stream measures its
 * lag to the second; a burst of writes on a Pi catches up within a few (tests/backup/stream.sh).
 */
export const STREAM_MAX_LAG_SECONDS = 5;
/** No byte for this long while the database has more: the stream reconnects (a dead TCP connection stays silent). */
export const STREAM_STALL_SECONDS = 10;
/** The stream's packages on the target: mariadb-binlog and the mariadb client are in mariadb-client. */
export const STREAM_PACKAGES = ["mariadb-client"];

export function streamToolText(): string {
    return fs.readFileSync(path.join(BACKUP_ASSETS, "pi-cluster-binlog-stream.sh"), "utf8");
}

export interface StreamEnvArgs {
    dbAddress: string;
    dbPort: number;
    /** The id the stream registers with as a replication client. */
    serverId: number;
}

/** The stream's settings on the target. No secret: the password is in STREAM_CLIENT_CNF. */
export function renderStreamEnv(a: StreamEnvArgs): string {
    return `# Managed by pi-cluster; rendered by components/render/binlogStream.ts.
DB_HOST=${a.dbAddress}
DB_PORT=${a.dbPort}
DB_USER=${STREAM_USER}
DB_CA=${STREAM_CA}
DB_CLIENT_CNF=${STREAM_CLIENT_CNF}
SERVER_ID=${a.serverId}
MAX_LAG_SECONDS=${STREAM_MAX_LAG_SECONDS}
STALL_SECONDS=${STREAM_STALL_SECONDS}
RUN_DIR=/run/${STREAM_UNIT}
`;
}

/** The client option file that carries the password to mariadb and mariadb-binlog. */
export function renderStreamClientCnf(password: string): string {
    if (!/^[A-Za-z0-9]+$/.test(password)) throw new Error("binlog stream: the password must be letters and digits (it is generated so)");
    return `[client]\npassword=${password}\n`;
}

/**
 * The stream, as the backup account, which owns the backup directory it writes into. It
 * never exits on its own (a broken stream is reported and started again); systemd restarts
 * it when it fails anyway, without ever giving up (StartLimitIntervalSec=0): a database that
 * is away for an hour must find the stream waiting when it comes back.
 */
export function renderStreamService(a: { user: string; dir: string; dbAddress: string }): string {
    return `# Managed by pi-cluster; rendered by components/render/binlogStream.ts.
[Unit]
Description=pi-cluster: the database's binlog, streamed to the backup target as it is written
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=0

[Service]
Type=simple
User=${a.user}
Group=${a.user}
ExecStart=${STREAM_TOOL} run
Restart=on-failure
RestartSec=2
RuntimeDirectory=${STREAM_UNIT}
RuntimeDirectoryMode=0700

# Sandbox (components/render/systemd.ts). It writes only the backup directory, and talks
# only to the database.
ReadWritePaths=${a.dir}
PrivateTmp=yes
CapabilityBoundingSet=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
IPAddressDeny=any
IPAddressAllow=${a.dbAddress}
${SANDBOX}

[Install]
WantedBy=multi-user.target
`;
}

/** The database's input rule for the stream: its port, from the target only. */
export function renderStreamClient(targetAddress: string, dbPort: number): string {
    return `# Managed by pi-cluster; rendered by components/render/binlogStream.ts.
ip saddr ${targetAddress} tcp dport ${dbPort} accept comment "the binlog stream to the backup target"
`;
}
