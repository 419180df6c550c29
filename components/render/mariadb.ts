// MariaDB server config for a Raspberry Pi. Pure: settings in, .cnf text out.

export interface MariadbConfigArgs {
    bindAddress: string;
    port: number;
    /** Default 512M: a quarter of a 2 GB Pi, leaving room for the OS and page cache. */
    innodbBufferPoolSize: string;
    innodbLogFileSize: string;
    /** The server's certificate files (assets/scripts/db-tls.sh makes them). Default none: no TLS. */
    tls?: MariadbTlsFiles;
    /** The binary log for point-in-time recovery and replicas (backups or replicas on). Default off. */
    binlog?: boolean;
    /** A read replica: its own server id, read-only, and the binlog with what it applies (to be promoted). Default none: the primary. */
    replica?: { serverId: number };
    /** The database's server id (with the binlog on). Default FIRST_SERVER_ID; a promoted replica keeps its own, and its GTID domain. */
    serverId?: number;
}

/**
 * The first database of a cluster is server 1 in GTID domain 0 (MariaDB's default, so its
 * config stays as it always was). A promoted replica keeps its own id and domain
 * (replicaServerId): its writes never continue the lost database's sequence, which a
 * replica that had received more of it would otherwise take for the same transactions.
 */
export const FIRST_SERVER_ID = 1;

export interface MariadbTlsFiles {
    caPath: string;
    certPath: string;
    keyPath: string;
}

/** The binlog's base name, in the data directory; the backup tool finds it with @@log_bin_basename. */
export const BINLOG_BASENAME = "mariadb-bin";

/**
 * Row-based, so a replay gives exactly the rows the app wrote; GTID strict, so a replay
 * out of order fails instead of diverging; synced at each commit, so a write the app saw
 * acknowledged is in the binlog that is shipped. Kept 7 days on the Pi: the shipper sends
 * each closed file within binlogShipSeconds, the rest is slack for a target that is down.
 */
export function renderBinlogSettings(serverId = 1): string {
    return `
# Binary log for point-in-time recovery and the read replicas; shipped, encrypted, by
# pi-cluster-backup.
server_id = ${serverId}
log_bin = ${BINLOG_BASENAME}
binlog_format = ROW
gtid_strict_mode = ON
sync_binlog = 1
binlog_expire_logs_seconds = 604800
`;
}

/**
 * Static server settings. Changing them needs a restart, so they live apart from
 * max_connections, which changes with every scale and is applied live.
 */
export function renderMariadbConfig(a: MariadbConfigArgs): string {
    return `# Managed by pi-cluster; rendered by components/render/mariadb.ts.
[mariadbd]
bind-address = ${a.bindAddress}
port = ${a.port}
skip-name-resolve

character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci

# InnoDB sized for a 2 GB Pi on SSD or SD storage.
innodb_buffer_pool_size = ${a.innodbBufferPoolSize}
innodb_log_file_size = ${a.innodbLogFileSize}
innodb_flush_log_at_trx_commit = 1
innodb_flush_method = O_DIRECT
# Flash has no seek cost: flushing neighbouring pages only adds writes (MariaDB docs).
innodb_flush_neighbors = 0
innodb_io_capacity = 400
innodb_io_capacity_max = 2000
innodb_file_per_table = 1

slow_query_log = 1
slow_query_log_file = /var/log/mysql/mariadb-slow.log
long_query_time = 1
log_slow_verbosity = query_plan
${a.tls ? tlsLines(a.tls) : ""}${a.replica ? renderReplicaSettings(a.replica.serverId) : a.binlog ? renderDatabaseBinlogSettings(a.serverId ?? FIRST_SERVER_ID) : ""}`;
}

/** The database's binlog: the first database's as it always was; a promoted one's with its own GTID domain. */
export function renderDatabaseBinlogSettings(serverId: number): string {
    if (serverId === FIRST_SERVER_ID) return renderBinlogSettings();
    return `${renderBinlogSettings(serverId)}
# A promoted read replica: its own server id and GTID domain, as when it was a replica, so its
# writes never take sequence numbers of the lost database's domain.
gtid_domain_id = ${serverId}
`;
}

/**
 * The primary is server 1; a replica's id comes from its address (the IPv4 address as a
 * number), so no two hosts of a cluster share one and a replica keeps its id when promoted.
 */
export function replicaServerId(address: string): number {
    const parts = address.split(".").map(Number);
    if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`replicaServerId: expected an IPv4 address, got ${address}`);
    return ((parts[0] << 24) >>> 0) + (parts[1] << 16) + (parts[2] << 8) + parts[3];
}

/**
 * A read replica. read_only keeps every account but the replication threads and those with
 * READ ONLY ADMIN (root by socket) from writing: since MariaDB 10.11 SUPER no longer implies
 * it, which makes read_only what MySQL calls super_read_only. The binlog, with the events
 * the replica applies (log_slave_updates), lets it become the primary that the other
 * replicas follow by GTID.
 */
export function renderReplicaSettings(serverId: number): string {
    return `${renderBinlogSettings(serverId)}
# A read replica of the database (GTID); pi-cluster's replica step seeds it and points it there.
# What is written here locally (a step's ALTER USER) goes to a domain of its own, so it can
# never take a sequence number of the database's domain, which gtid_strict_mode would stop on.
gtid_domain_id = ${serverId}
log_slave_updates = ON
relay_log = mariadb-relay
read_only = ON
`;
}

// The web servers' connections encrypted with the Pi's own CA. Mozilla's intermediate
// protocols; MariaDB's default ciphers for them are AEAD with forward secrecy already.
// That TLS is required is set apart (renderRequireSecureTransport), once every web server
// uses it.
function tlsLines(t: MariadbTlsFiles): string {
    return `
# TLS for the web servers (the cluster CA on this Pi; its key never leaves it).
ssl_ca = ${t.caPath}
ssl_cert = ${t.certPath}
ssl_key = ${t.keyPath}
tls_version = TLSv1.2,TLSv1.3
`;
}

/**
 * Refuses every connection over TCP without TLS. Applied live (SET GLOBAL) by the step that
 * runs after every web server connects with TLS, and kept in this file for restarts.
 */
export function renderRequireSecureTransport(): string {
    return `# Managed by pi-cluster: no connection over TCP without TLS. Applied live with SET GLOBAL.
[mariadbd]
require_secure_transport = ON
`;
}

/** What a MariaDB host does in semi-synchronous replication. */
export interface SemiSyncArgs {
    /** "database": waits for a replica's ack while it has replicas; "replica": acks what it receives. */
    role: "database" | "replica";
    /** The database has read replicas (a replica ignores it). */
    hasReplicas: boolean;
    /** How long a commit waits for an ack before the database goes on without one (dbSemiSyncTimeoutMs); 0 turns the waiting off. */
    timeoutMs: number;
}

/**
 * MariaDB's built-in semi-sync (in the server since 10.3, no plugin), each setting one that
 * SET GLOBAL changes live, so gaining or losing replicas never restarts the database.
 * AFTER_SYNC is the lossless wait: the commit is in the synced binlog, waits there for a
 * replica to have the event in its relay log, and only then is visible and acknowledged, so
 * no client ever sees a write that only the primary holds. A replica renders the same wait
 * settings, so the database role's render after a promotion changes only who waits and who
 * acks. A replica acks only from its IO thread's next start (the replica step restarts it).
 */
export function semiSyncSettings(a: SemiSyncArgs): [string, string][] {
    const master = a.role === "database" && a.hasReplicas && a.timeoutMs > 0;
    return [
        ["rpl_semi_sync_master_enabled", master ? "ON" : "OFF"],
        ["rpl_semi_sync_master_wait_point", "AFTER_SYNC"],
        ["rpl_semi_sync_master_timeout", String(a.timeoutMs)],
        ["rpl_semi_sync_slave_enabled", a.role === "replica" ? "ON" : "OFF"],
    ];
}

export function renderSemiSyncConfig(settings: [string, string][]): string {
    return `# Managed by pi-cluster: semi-synchronous replication. Applied live with SET GLOBAL.
# Without a replica's ack within rpl_semi_sync_master_timeout ms a commit goes on, and the
# database runs async (Rpl_semi_sync_master_status OFF) until a replica acks again.
[mariadbd]
${settings.map(([k, v]) => `${k} = ${v}`).join("\n")}
`;
}

/** Each web server's pool can hold `poolSize` connections; headroom covers admin and backups. */
export function maxConnections(webServers: number, poolSize: number, headroom: number): number {
    return webServers * poolSize + headroom;
}

export function renderMaxConnections(n: number): string {
    return `# Managed by pi-cluster: web servers x pool size + headroom. Applied live with SET GLOBAL.
[mariadbd]
max_connections = ${n}
`;
}
