// Where things live on the Pis: every path, unit name and account name that the stack and
// the step scripts share, defined once. A script never spells one of these itself: the
// renderer hands it the value as a variable (components/render/shell.ts), so a change here
// reaches every Pi on the next `pulumi up`. tests/unit/constants.test.ts fails on a
// /etc/pi-cluster, /var/lib/pi-cluster or /usr/local/lib/pi-cluster literal in a script.

/** The stack's settings on every Pi (made by the base step). */
export const CONFIG_DIR = "/etc/pi-cluster";
/** The stack's state on every Pi (made by the base step). */
export const STATE_DIR = "/var/lib/pi-cluster";
/** Scripts the stack installs for timers and leases to run. */
export const LIB_DIR = "/usr/local/lib/pi-cluster";

/** Artifacts the stack uploads (CopyToRemote), owned by the SSH user. */
export const UPLOAD_DIR = `${STATE_DIR}/incoming`;
/** Restarts a step still owes after it was killed midway (pending_begin in lib.sh). */
export const PENDING_DIR = `${STATE_DIR}/pending`;

// --- Firewall
/** Loads FIREWALL_RULESET at boot (renderFirewallUnit). */
export const FIREWALL_SERVICE = "pi-cluster-firewall.service";
export const FIREWALL_RULESET = `${CONFIG_DIR}/firewall.nft`;
/** Rules that other steps own (the database's clients) live in files the ruleset includes. */
export const FIREWALL_INCLUDE_DIR = `${CONFIG_DIR}/firewall.d`;
export const DB_CLIENTS_FILE = `${FIREWALL_INCLUDE_DIR}/db-clients.nft`;

// --- TLS
/** A Pi's CA and server certificate: ca.key and server.key (0600) never leave it. */
export const TLS_DIR = `${CONFIG_DIR}/tls`;
/** The renewal job the timer runs: tls-renew.sh as the stack renders it. */
export const TLS_RENEW_SCRIPT = `${LIB_DIR}/tls-renew.sh`;
export const TLS_RENEW_UNIT = "pi-cluster-tls-renew";

// --- Load balancer
/** The stack's nginx files besides the site (removed with the site). */
export const NGINX_CLUSTER_DIR = "/etc/nginx/pi-cluster";
/** Each web server's round-robin membership is its own file here (see assets/scripts/lb-member.sh). */
export const UPSTREAM_MEMBERS_DIR = `${NGINX_CLUSTER_DIR}/upstream`;
export const WWW_DIR = "/var/www/pi-cluster";
export const CLUSTER_JSON = `${STATE_DIR}/cluster.json`;
export const CLUSTER_INTERNAL_JSON = `${STATE_DIR}/cluster-internal.json`;
/** The certificate's expiry for the dashboard, served as /tls.json. */
export const TLS_STATUS_JSON = `${STATE_DIR}/tls.json`;
/** Where a web server's admission lease runner lives: LEASE_DIR/lease-<name>.sh (lb-member.sh). */
export const LEASE_DIR = LIB_DIR;
/** The rollout a web server was last admitted for: LB_ADMITTED_DIR/<name>.rollout (lb-member.sh). */
export const LB_ADMITTED_DIR = `${STATE_DIR}/lb`;
/** A drain's lease is the transient unit LEASE_UNIT_PREFIX<name> (.timer and .service, lb-member.sh). */
export const LEASE_UNIT_PREFIX = "pi-cluster-lease-";

// --- Web servers
/** The app's name in PM2, which names its logs after it. */
export const APP_NAME = "pi-cluster-app";
/** The app's systemd unit: PM2 under systemd (renderPm2Unit). */
export const APP_SERVICE = "pi-cluster-app.service";
export const APP_USER = "pi-cluster-app";
export const APP_HOME = "/var/lib/pi-cluster-app";
export const APP_DIR = "/opt/pi-cluster/app";
export const PM2_DIR = "/opt/pi-cluster/pm2";
export const APP_ENV_FILE = `${CONFIG_DIR}/app.env`;
/** The app's secrets (the DB password), apart from its settings so a preview can show those. */
export const APP_SECRETS_FILE = `${CONFIG_DIR}/app-secrets.env`;
export const ECOSYSTEM_FILE = `${CONFIG_DIR}/ecosystem.config.js`;
/** The database's CA, public: the app checks MariaDB's certificate against it. */
export const DB_CA_FILE = `${CONFIG_DIR}/db-ca.pem`;
/** The app's settings before the last change, for a rollback (web-app.sh). */
export const APP_SAVED_DIR = `${STATE_DIR}/app-previous`;
/** PM2's home: its daemon's sockets and pid file, and the app's logs. The only path the unit writes. */
export const PM2_HOME = `${APP_HOME}/.pm2`;

// --- Database and replicas
export const DB_NAME = "webapp_db";
export const DB_USER = "webapp_user";
/** MariaDB's data directory (Debian's), and its owner. */
export const DB_DATA_DIR = "/var/lib/mysql";
export const DB_DATA_OWNER = "mysql:mysql";
/** MariaDB's static config, which the mariadb step installs (assets/scripts/db-mariadb.sh). */
export const SERVER_CNF = "/etc/mysql/mariadb.conf.d/60-pi-cluster.cnf";
/** Where the step that requires TLS keeps require_secure_transport for restarts. */
export const REQUIRE_TLS_CNF = "/etc/mysql/mariadb.conf.d/62-pi-cluster-require-tls.cnf";
/** The replication user, granted REPLICATION SLAVE from each replica's address only. */
export const REPL_USER = "pi_repl";
export const REPLICA_DIR = `${CONFIG_DIR}/replica`;
export const SEED_KEY = `${REPLICA_DIR}/seed_ed25519`;
/** The CA of the database's MariaDB certificate on a replica, where the mysql user reads it (REPLICA_DIR is root's alone). */
export const REPLICA_PRIMARY_CA = "/etc/mysql/pi-cluster-primary-ca.crt";
/** The replica step's own state on the Pi (what it was pointed at, the generation of its last seed). */
export const REPLICA_STATE_DIR = `${STATE_DIR}/replica`;
/** Where the replica step unpacks a seed (db-replica.sh). */
export const SEED_DIR = `${STATE_DIR}/seed`;
/** The database's account that runs only the seeding stream, for the replicas' keys. */
export const SEED_USER = "pi-seed";
export const SEED_STREAM_TOOL = "/usr/local/sbin/pi-cluster-seed-stream";
export const SEED_SUDOERS = "/etc/sudoers.d/pi-cluster-seed";

// --- Backups and the binlog stream
export const BACKUP_ENV = `${CONFIG_DIR}/backup.env`;
export const STREAM_ENV = `${CONFIG_DIR}/binlog-stream.env`;
/** The stream account's password, owned by the backup account, 0600. */
export const STREAM_CLIENT_CNF = `${CONFIG_DIR}/binlog-stream.cnf`;
/** The CA that signed the database's certificate, which the stream checks. */
export const STREAM_CA = `${CONFIG_DIR}/binlog-stream-ca.crt`;
export const STREAM_UNIT = "pi-cluster-binlog-stream";
export const STREAM_TOOL = "/usr/local/sbin/pi-cluster-binlog-stream";
/** The database's account for the stream, from the target's address only. */
export const STREAM_USER = "pi_binlog";
/** The database's input rule for the target, owned by the stream's grant step. */
export const STREAM_CLIENT_FILE = `${FIREWALL_INCLUDE_DIR}/binlog-stream.nft`;
/** Installed on the database Pi and on the target. */
export const BACKUP_TOOL = "/usr/local/sbin/pi-cluster-backup";
/** Installed on the database Pi; scripts/restore.sh installs it again on a bare one. */
export const RESTORE_TOOL = "/usr/local/sbin/pi-cluster-restore";
/** The database Pi's backup state: its SSH key to the target, the incremental base, what was shipped. */
export const BACKUP_STATE_DIR = "/var/lib/pi-cluster-backup";
export const BACKUP_KEY = `${BACKUP_STATE_DIR}/ssh/id_ed25519`;
export const BACKUP_KNOWN_HOSTS = `${BACKUP_STATE_DIR}/ssh/known_hosts`;
export const VERIFY_UNIT = "pi-cluster-backup-verify";

// --- Every Pi
/**
 * Debian's sshd_config includes sshd_config.d/*.conf on its first line, and sshd keeps the
 * first value it reads for most keywords, so this file beats the same keywords further down
 * sshd_config (Debian sets X11Forwarding yes there). A file that sorts before "10-" would
 * beat it in turn: the base step checks the outcome with `sshd -T`.
 */
export const SSHD_DROP_IN = "/etc/ssh/sshd_config.d/10-pi-cluster.conf";

// --- Monitoring (Debian's prometheus packages; their own paths, set by Debian)
/** prometheus-node-exporter on every Pi, reachable from the Prometheus host only. */
export const NODE_EXPORTER_PACKAGE = "prometheus-node-exporter";
export const NODE_EXPORTER_SERVICE = "prometheus-node-exporter.service";
export const NODE_EXPORTER_PORT = 9100;
/** Its settings (ARGS), read by Debian's unit. */
export const NODE_EXPORTER_DEFAULTS = "/etc/default/prometheus-node-exporter";
/** Its textfile collector's directory: *.prom files there are exported as they are. */
export const NODE_EXPORTER_TEXTFILE_DIR = "/var/lib/prometheus/node-exporter";
/**
 * The app's own metrics (prom-client: requests, latency, pool, breaker, replicas) on each web
 * server, a listener of the app's apart from its API port (nginx proxies /api/ to that one, so
 * anything there is public). Opened only with monitoring on, to the Prometheus host only.
 */
export const APP_METRICS_PORT = 9464;
/** Prometheus on the monitoring host, listening on loopback only. */
export const PROMETHEUS_PACKAGE = "prometheus";
export const PROMETHEUS_SERVICE = "prometheus.service";
export const PROMETHEUS_PORT = 9090;
export const PROMETHEUS_DEFAULTS = "/etc/default/prometheus";
export const PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml";
/** The stack's alerting rules, named in PROMETHEUS_CONFIG. */
export const PROMETHEUS_RULES = "/etc/prometheus/pi-cluster-alerts.yml";
/** Where Prometheus keeps its time series (its --storage.tsdb.path). */
export const PROMETHEUS_DATA_DIR = "/var/lib/prometheus/metrics2";
/** Alertmanager beside Prometheus, on loopback only, its gossip off (one instance). */
export const ALERTMANAGER_PACKAGE = "prometheus-alertmanager";
export const ALERTMANAGER_SERVICE = "prometheus-alertmanager.service";
export const ALERTMANAGER_PORT = 9093;
export const ALERTMANAGER_DEFAULTS = "/etc/default/prometheus-alertmanager";
/** Holds the webhook URL, a secret: root:prometheus, 0640. */
export const ALERTMANAGER_CONFIG = "/etc/prometheus/alertmanager.yml";
export const ALERTMANAGER_DATA_DIR = "/var/lib/prometheus/alertmanager";
/**
 * On the backup target, when Prometheus scrapes it: status.json and the binlog stream's report
 * as metrics in the textfile directory (assets/backup/pi-cluster-backup-metrics.py), rewritten
 * by the timer BACKUP_METRICS_UNIT.timer.
 */
export const BACKUP_METRICS_UNIT = "pi-cluster-backup-metrics";
export const BACKUP_METRICS_SCRIPT = `${LIB_DIR}/pi-cluster-backup-metrics.py`;
export const BACKUP_METRICS_FILE = `${NODE_EXPORTER_TEXTFILE_DIR}/pi_cluster_backup.prom`;
