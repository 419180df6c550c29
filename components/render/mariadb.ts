// MariaDB server config for a Raspberry Pi. Pure: settings in, .cnf text out.

export interface MariadbConfigArgs {
    bindAddress: string;
    port: number;
    /** Default 512M: a quarter of a 2 GB Pi, leaving room for the OS and page cache. */
    innodbBufferPoolSize: string;
    innodbLogFileSize: string;
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
