// Prometheus's alerting rules for the Pis. Pure: options in, rule file text out.
// Rendered as JSON, which is YAML, so Prometheus reads it as a rule_files entry without a YAML
// dependency here. Only syntax both Debian bookworm's Prometheus 2.42 (promtool in the unit
// tests) and trixie's 2.53 (on the Pis) accept: no keep_firing_for, no quoted UTF-8 names.

/** An alert waits at least this many scrape intervals: one lost scrape must not page anyone. */
export const MIN_FOR_SCRAPES = 4;
/** PiDown's floor: two missed scrapes in a row, not four, so that a dead Pi pages within 90 s. */
export const PI_DOWN_MIN_SCRAPES = 2;
/** A filesystem with less free space than this share of its size is nearly full. */
export const DISK_FREE_RATIO = 0.1;
/** How much history predict_linear fits, and how far ahead it looks for a full disk. */
export const DISK_TREND_WINDOW = "6h";
export const DISK_FULL_HORIZON_SECONDS = 24 * 3600;
/** Between 80 and 85 °C the firmware throttles the ARM cores (Raspberry Pi docs, "Frequency management and thermal control"). */
export const TEMPERATURE_CELSIUS = 80;
/** Less available memory than this share of the total and the kernel is reclaiming hard. */
export const MEMORY_AVAILABLE_RATIO = 0.1;
/**
 * Filesystems that hold no data of the Pi's own: memory, images and kernel views. The root
 * is kept whatever its type (the lab's is an overlay). node-exporter already drops most of
 * the kernel's (its --collector.filesystem.fs-types-exclude), but not tmpfs.
 */
export const VIRTUAL_FSTYPES = ["tmpfs", "ramfs", "devtmpfs", "overlay", "squashfs", "erofs", "iso9660", "autofs", "nsfs"];

/**
 * The units the node exporter's systemd collector watches (renderNodeExporterDefaults): the
 * stack's own (app, backups, their timers, the binlog stream, TLS renewal, firewall) and the
 * servers the roles run.
 */
export const WATCHED_UNITS = "(pi-cluster-.*|nginx|mariadb)[.](service|timer)";
/** More than this share of the app's answers 5xx over 5 minutes pages: users see errors. */
export const APP_5XX_RATIO = 0.05;
/** A p99 over this, over 5 minutes, warns: nginx gives up on the app at 5 s. */
export const APP_P99_SECONDS = 1;
/** Below this many requests a second, a ratio or a quantile says nothing (one 503 would be 100%). */
export const APP_MIN_RPS = 0.2;
/** This many starts of the app within 15 minutes is a crash loop (PM2 restarts it each time). */
export const APP_RESTARTS_IN_15M = 3;

/** The units that run all the time where they are installed: not running is an outage. */
export const LONG_RUNNING_SERVICES = ["pi-cluster-app.service", "nginx.service", "mariadb.service", "pi-cluster-binlog-stream.service"];

export interface AlertRuleOptions {
    /** Prometheus's scrape interval in seconds (the rules' `for:` durations are never shorter than 4 of them, PiDown's than 2). */
    scrapeIntervalSeconds: number;
}

type Severity = "critical" | "warning";

interface AlertRule {
    alert: string;
    expr: string;
    /** How long the expression must hold before the alert fires, before the scrape-interval floor. */
    forSeconds: number;
    /** The floor, in scrape intervals: MIN_FOR_SCRAPES unless the alert must page sooner. */
    minScrapes?: number;
    severity: Severity;
    summary: string;
    /** What happened and what the operator should do; Prometheus templating. */
    description: string;
}

const NODE = 'job="node"';
const APP = 'job="app"';
/** The app's requests a second per web server over 5 minutes, with `more` in the selector. */
const appRate = (more = "") => `sum by (instance) (rate(pi_cluster_http_requests_total{${APP}${more}}[5m]))`;
/** Gives an alert about a replica the replica's name as `instance`, so its PiDown inhibits it. */
const asInstance = (expr: string, label: string) => `label_replace(${expr}, "instance", "$1", "${label}", "(.*)")`;
const BACKUP_LAST_SUCCESS = `pi_cluster_backup_last_success_timestamp_seconds{${NODE}}`;

/**
 * `metric(selector)` on the filesystems worth watching: the root, whatever its type, or any
 * non-virtual one. `or` keeps one series per filesystem when the root matches both.
 */
function onRealFilesystems(metric: (selector: string) => string): string {
    const root = `${NODE}, mountpoint="/"`;
    const real = `${NODE}, fstype!~"${VIRTUAL_FSTYPES.join("|")}"`;
    return `(${metric(root)} or ${metric(real)})`;
}

const RULES: readonly AlertRule[] = [
    {
        alert: "PiDown",
        expr: `up{${NODE}} == 0`,
        // A Pi that lost power pages within 90 s at the default interval (the unit test "page a
        // powered-off Pi within 90 s" adds the worst case up): a missed scrape alone never does.
        forSeconds: 30,
        minScrapes: PI_DOWN_MIN_SCRAPES,
        severity: "critical",
        summary: "{{ $labels.instance }} is down",
        description:
            "Prometheus cannot scrape node-exporter on {{ $labels.instance }}. Check that the Pi has power and network (ping it, then ssh in); if it answers, run `systemctl status prometheus-node-exporter` on it.",
    },
    {
        alert: "DiskFreeLow",
        expr: `${onRealFilesystems((s) => `node_filesystem_avail_bytes{${s}} / node_filesystem_size_bytes{${s}}`)} < ${DISK_FREE_RATIO}`,
        forSeconds: 5 * 60,
        severity: "warning",
        summary: "{{ $labels.mountpoint }} on {{ $labels.instance }} is nearly full",
        description:
            "{{ $labels.mountpoint }} on {{ $labels.instance }} has {{ $value | humanizePercentage }} of its space free. Find what grew (`du -xh --max-depth=2 {{ $labels.mountpoint }} | sort -h | tail`: logs, backups, binlogs) and prune it, or move it off the SD card.",
    },
    {
        alert: "DiskFullIn24h",
        expr: `${onRealFilesystems((s) => `predict_linear(node_filesystem_avail_bytes{${s}}[${DISK_TREND_WINDOW}], ${DISK_FULL_HORIZON_SECONDS})`)} < 0`,
        forSeconds: 30 * 60,
        severity: "warning",
        summary: "{{ $labels.mountpoint }} on {{ $labels.instance }} fills within 24h",
        description: `At the rate of the last ${DISK_TREND_WINDOW}, {{ $labels.mountpoint }} on {{ $labels.instance }} runs out of space within 24h. Find what is growing (\`du -xh --max-depth=2 {{ $labels.mountpoint }} | sort -h | tail\`: logs, backups, binlogs) and stop or prune it before it is full.`,
    },
    {
        alert: "FilesystemReadOnly",
        expr: `${onRealFilesystems((s) => `node_filesystem_readonly{${s}}`)} == 1`,
        forSeconds: 60,
        severity: "critical",
        summary: "{{ $labels.mountpoint }} on {{ $labels.instance }} is read-only",
        description:
            "{{ $labels.mountpoint }} ({{ $labels.device }}) on {{ $labels.instance }} is mounted read-only, as the kernel does to an SD card after I/O errors: every write to it (logs, the database) now fails. Check `dmesg` for mmc errors, copy off what the Pi holds, and replace the card.",
    },
    {
        alert: "TemperatureHigh",
        // One alert per Pi, for its hottest sensor, whichever of the two collectors reports it.
        expr: `max by (job, instance) (node_hwmon_temp_celsius{${NODE}}) > ${TEMPERATURE_CELSIUS} or max by (job, instance) (node_thermal_zone_temp{${NODE}}) > ${TEMPERATURE_CELSIUS}`,
        forSeconds: 5 * 60,
        severity: "warning",
        summary: "{{ $labels.instance }} is running hot",
        description: `{{ $labels.instance }} is at {{ $value | humanize }} °C; above ${TEMPERATURE_CELSIUS} °C the firmware throttles the CPU. Check its heatsink or fan and the airflow around it, and \`vcgencmd get_throttled\` on it.`,
    },
    {
        alert: "MemoryPressure",
        expr: `node_memory_MemAvailable_bytes{${NODE}} / node_memory_MemTotal_bytes{${NODE}} < ${MEMORY_AVAILABLE_RATIO}`,
        forSeconds: 10 * 60,
        severity: "warning",
        summary: "{{ $labels.instance }} is short of memory",
        description:
            "{{ $labels.instance }} has {{ $value | humanizePercentage }} of its memory available. Find the biggest processes (`ps aux --sort=-rss | head`) and restart the one that leaks, or give the role less to hold (the app's workers, MariaDB's buffer pool).",
    },
    {
        alert: "ServiceFailed",
        // A oneshot that failed stays "failed" until its next run succeeds: a backup, a
        // binlog shipment, a certificate renewal, the firewall's load.
        expr: `node_systemd_unit_state{${NODE}, state="failed"} == 1`,
        forSeconds: 60,
        severity: "warning",
        summary: "{{ $labels.name }} failed on {{ $labels.instance }}",
        description:
            "{{ $labels.name }} on {{ $labels.instance }} is in the failed state: for a backup, no backup of that kind was taken. Read why with `journalctl -u {{ $labels.name }} -n 50` on it; `systemctl start {{ $labels.name }}` runs it again once the cause is fixed.",
    },
    {
        alert: "ServiceDown",
        // Inhibited while PiDown fires for the same Pi (renderAlertmanagerConfig).
        expr: `node_systemd_unit_state{${NODE}, name=~"${LONG_RUNNING_SERVICES.map((n) => n.replace(/\./g, "\\\\.")).join("|")}", state="active"} == 0`,
        forSeconds: 2 * 60,
        severity: "critical",
        summary: "{{ $labels.name }} is not running on {{ $labels.instance }}",
        description:
            "{{ $labels.name }} on {{ $labels.instance }} has not been running for 2 minutes while the Pi is up: the app, the load balancer, the database or the binlog stream is out. `systemctl status {{ $labels.name }}` and `journalctl -u {{ $labels.name }} -n 50` on it say why; `npx pi-cluster recover {{ $labels.instance }}` puts it back as deployed.",
    },
    {
        alert: "BackupStale",
        // The backup target's status (assets/backup/pi-cluster-backup-metrics.py): the last
        // success of each kind older than the stack's backup.staleAfterSeconds for it. A kind
        // that never succeeded is left to ServiceFailed (its runs fail) rather than paging
        // through a new cluster's first hour, which has a full and no incremental yet.
        expr: `(time() - ${BACKUP_LAST_SUCCESS} > pi_cluster_backup_stale_after_seconds{${NODE}}) and ${BACKUP_LAST_SUCCESS} > 0`,
        forSeconds: 60,
        severity: "critical",
        summary: "no {{ $labels.kind }} backup reached {{ $labels.instance }} for longer than allowed",
        description:
            "The last {{ $labels.kind }} backup that succeeded is {{ $value | humanizeDuration }} old on the backup target ({{ $labels.instance }}), past the stack's backup.staleAfterSeconds. Until one succeeds, a restore loses more than the policy allows. On the database Pi, `systemctl list-timers 'pi-cluster-backup-*'` and `journalctl -u pi-cluster-backup-{{ $labels.kind }} -n 50` say whether it runs and why it fails; `npx pi-cluster verify` names a failed run.",
    },
    {
        alert: "BinlogStreamDown",
        // The stream writes its report at least every 10 s while it runs.
        expr: `pi_cluster_binlog_stream_up{${NODE}} == 0 or time() - pi_cluster_binlog_stream_report_timestamp_seconds{${NODE}} > 60`,
        forSeconds: 2 * 60,
        severity: "critical",
        summary: "the binlog stream to {{ $labels.instance }} is down",
        description:
            "The backup target ({{ $labels.instance }}) has not been copying the database's binlog for 2 minutes: a restore now loses the writes since the last binlog shipment (binlogShipSeconds) instead of about a second. `systemctl status pi-cluster-binlog-stream` and `journalctl -u pi-cluster-binlog-stream -n 50` on it say why (the database down, its TLS or grant, the target's disk).",
    },
    {
        alert: "BinlogStreamLagging",
        expr: `pi_cluster_binlog_stream_lag_seconds{${NODE}} > pi_cluster_binlog_stream_max_lag_seconds{${NODE}}`,
        forSeconds: 2 * 60,
        severity: "warning",
        summary: "the binlog stream to {{ $labels.instance }} lags",
        description:
            "The backup target's copy of the binlog has lacked the database's newest writes for {{ $value | humanize }} s, past its bound: a restore now loses that much. Check the link between the database and {{ $labels.instance }}, and the target's disk (`iostat`, `df`).",
    },
    {
        alert: "BackupStatusMissing",
        // The converter's own heartbeat, and whether it found status.json.
        expr: `pi_cluster_backup_status_ok{${NODE}} == 0 or time() - pi_cluster_backup_metrics_timestamp_seconds{${NODE}} > 300`,
        forSeconds: 5 * 60,
        severity: "warning",
        summary: "the backups' status on {{ $labels.instance }} cannot be read",
        description:
            "The backup target's status.json is missing, or the metrics made from it have not been rewritten for 5 minutes: the backup alerts are blind. `systemctl status pi-cluster-backup-metrics.timer pi-cluster-backup-metrics.service` on {{ $labels.instance }} says why; `npx pi-cluster recover {{ $labels.instance }}` reinstalls it.",
    },
    {
        alert: "AppErrorRateHigh",
        expr: `${appRate(', status=~"5.."')} / ${appRate()} > ${APP_5XX_RATIO} and ${appRate()} > ${APP_MIN_RPS}`,
        forSeconds: 5 * 60,
        severity: "critical",
        summary: "the app on {{ $labels.instance }} answers errors",
        description:
            "{{ $value | humanizePercentage }} of the app's answers on {{ $labels.instance }} have been 5xx for 5 minutes. A 503 means the database is out of reach (DatabaseUnreachable says so too); a 500 is a fault of the app's: `pm2 logs` there, or `journalctl -u pi-cluster-app -n 100`.",
    },
    {
        alert: "AppLatencyHigh",
        expr: `histogram_quantile(0.99, sum by (instance, le) (rate(pi_cluster_http_request_duration_seconds_bucket{${APP}}[5m]))) > ${APP_P99_SECONDS} and on (instance) ${appRate()} > ${APP_MIN_RPS}`,
        forSeconds: 5 * 60,
        severity: "warning",
        summary: "the app on {{ $labels.instance }} is slow",
        description:
            "The app's 99th percentile on {{ $labels.instance }} has been {{ $value | humanizeDuration }} for 5 minutes, past " +
            `${APP_P99_SECONDS} s. Check the database (its load, slow queries) and the Pi (MemoryPressure, TemperatureHigh: a throttled Pi is slow); the dashboard's charts show since when.`,
    },
    {
        alert: "AppNotAnswering",
        // Its service runs (else ServiceDown), yet its metrics listener does not answer: hung.
        expr: `up{${APP}} == 0 and on (instance) node_systemd_unit_state{${NODE}, name="pi-cluster-app.service", state="active"} == 1`,
        forSeconds: 2 * 60,
        severity: "critical",
        summary: "the app on {{ $labels.instance }} does not answer",
        description:
            "The app's service runs on {{ $labels.instance }}, but Prometheus has not reached the app there for 2 minutes: it hangs. `pm2 list` and `journalctl -u pi-cluster-app -n 100` on it; `npx pi-cluster recover {{ $labels.instance }}` restarts it as deployed.",
    },
    {
        alert: "AppRestarting",
        expr: `changes(process_start_time_seconds{${APP}}[15m]) >= ${APP_RESTARTS_IN_15M}`,
        forSeconds: 0,
        severity: "warning",
        summary: "the app on {{ $labels.instance }} keeps restarting",
        description:
            "The app on {{ $labels.instance }} started {{ $value }} times in 15 minutes: it crashes, or PM2 restarts it past its memory bound. `pm2 logs --lines 100` and `journalctl -u pi-cluster-app -n 100` on it say why.",
    },
    {
        alert: "DatabaseUnreachable",
        // The app's breaker: open while the primary does not answer it.
        expr: `pi_cluster_db_breaker_open{${APP}, pool="primary"} == 1`,
        forSeconds: 60,
        severity: "critical",
        summary: "{{ $labels.instance }} cannot reach the database",
        description:
            "The app on {{ $labels.instance }} has found the database down for a minute: writes answer 503. If PiDown fires for the database Pi, see to it first; else check MariaDB there (`systemctl status mariadb`) and the web server's firewall and TLS (`npx pi-cluster verify`).",
    },
    {
        alert: "ReplicaOutOfReadSet",
        // Every web server finds it unfit: lag past the bound, a replication thread stopped, or
        // no answer. One web server's view alone could be its own network.
        expr: asInstance(`max by (replica) (pi_cluster_replica_in_read_set{${APP}}) == 0`, "replica"),
        forSeconds: 60,
        severity: "critical",
        summary: "the replica {{ $labels.instance }} serves no reads",
        description:
            "Every web server has kept {{ $labels.instance }} out of its read set for a minute: its lag is past the bound, a replication thread stopped, or it does not answer. The primary takes every read, and a promotion now would lose what it lacks. `/api/internal/status` on the load balancer names the reason (db.replication.replicas[].error); `SHOW SLAVE STATUS` on it gives Last_SQL_Error and Last_IO_Error.",
    },
    {
        alert: "ClockNotSynchronised",
        expr: `node_timex_sync_status{${NODE}} == 0`,
        forSeconds: 10 * 60,
        severity: "warning",
        summary: "{{ $labels.instance }}'s clock is not synchronised",
        description:
            "The kernel on {{ $labels.instance }} says its clock is not synchronised. A Pi has no real-time clock, and backups are named by the clock. Check `timedatectl status` and `systemctl status systemd-timesyncd` on it, and that it reaches its NTP server (UDP 123).",
    },
];

/** Every alert's name, in file order. */
export const ALERT_NAMES: readonly string[] = RULES.map((r) => r.alert);

/** Seconds as a Prometheus duration: "2m", "1h", "68s". */
export function promDuration(seconds: number): string {
    if (!Number.isInteger(seconds) || seconds <= 0) throw new Error(`promDuration: ${seconds} is not a positive whole number of seconds`);
    if (seconds % 3600 === 0) return `${seconds / 3600}h`;
    if (seconds % 60 === 0) return `${seconds / 60}m`;
    return `${seconds}s`;
}

/** The alerting rules file (Prometheus rule_files format), as text. Pure. */
export function renderAlertRules(o: AlertRuleOptions): string {
    const s = o.scrapeIntervalSeconds;
    if (!Number.isFinite(s) || s <= 0) throw new Error(`alerts: scrapeIntervalSeconds is ${s}; expected a positive number of seconds`);
    const rules = RULES.map((r) => ({
        alert: r.alert,
        expr: r.expr,
        for: promDuration(Math.max(r.forSeconds, Math.ceil((r.minScrapes ?? MIN_FOR_SCRAPES) * s))),
        labels: { severity: r.severity },
        annotations: { summary: r.summary, description: r.description },
    }));
    return JSON.stringify({ groups: [{ name: "pi-cluster-nodes", rules }] }, null, 2) + "\n";
}
