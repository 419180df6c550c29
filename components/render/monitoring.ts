// Monitoring's files: Prometheus's config and settings on the monitoring host, the node
// exporter's settings on every Pi. Pure: options in, file text out. Prometheus reads YAML,
// and JSON is YAML, so the config is rendered as JSON and needs no YAML library.
import {
    ALERTMANAGER_DATA_DIR,
    APP_METRICS_PORT,
    BACKUP_METRICS_FILE,
    BACKUP_METRICS_SCRIPT,
    ALERTMANAGER_PORT,
    NODE_EXPORTER_PORT,
    NODE_EXPORTER_TEXTFILE_DIR,
    PROMETHEUS_DATA_DIR,
    PROMETHEUS_PORT,
    PROMETHEUS_RULES,
} from "../constants";
import { WATCHED_UNITS } from "./alerts";
import { SANDBOX } from "./systemd";

/** A Pi Prometheus scrapes: its name becomes the `instance` label, its role the `role` label. */
export interface ScrapedPi {
    name: string;
    address: string;
    role: "lb" | "web" | "db" | "replica";
}

export interface PrometheusOptions {
    /** Seconds between scrapes, and between rule evaluations. */
    scrapeIntervalSeconds: number;
    /** Every Pi of the cluster, in the order the config lists them. */
    pis: ScrapedPi[];
}

/** Prometheus's config: itself, every Pi's node exporter, each web server's app, the rules file. */
export function renderPrometheusConfig(o: PrometheusOptions): string {
    const interval = `${o.scrapeIntervalSeconds}s`;
    const config = {
        global: {
            scrape_interval: interval,
            evaluation_interval: interval,
            // A scrape may take most of an interval on a busy Pi, never more.
            scrape_timeout: `${Math.max(1, Math.min(10, o.scrapeIntervalSeconds - 1))}s`,
        },
        rule_files: [PROMETHEUS_RULES],
        alerting: { alertmanagers: [{ static_configs: [{ targets: [`127.0.0.1:${ALERTMANAGER_PORT}`] }] }] },
        scrape_configs: [
            {
                job_name: "prometheus",
                static_configs: [{ targets: [`127.0.0.1:${PROMETHEUS_PORT}`], labels: { instance: "prometheus" } }],
            },
            {
                job_name: "node",
                // One target per Pi, so each carries its own name: alerts and charts say
                // "pi-web1", not an address.
                static_configs: o.pis.map((p) => ({ targets: [`${p.address}:${NODE_EXPORTER_PORT}`], labels: { instance: p.name, role: p.role } })),
            },
            {
                // The app's own metrics (assets/app/src/metrics.ts), on its listener apart from the API.
                job_name: "app",
                static_configs: o.pis
                    .filter((p) => p.role === "web")
                    .map((p) => ({ targets: [`${p.address}:${APP_METRICS_PORT}`], labels: { instance: p.name, role: p.role } })),
            },
        ],
    };
    return JSON.stringify(config, null, 2) + "\n";
}

export interface PrometheusSettings {
    /** Days of samples kept. */
    retentionDays: number;
    /** The most disk the samples may take, in MB; the oldest go first past it. */
    retentionSizeMb: number;
}

/** /etc/default/prometheus: Debian's unit runs `prometheus $ARGS`. Loopback only: the LB's nginx is its one door. */
export function renderPrometheusDefaults(o: PrometheusSettings): string {
    const args = [
        `--web.listen-address=127.0.0.1:${PROMETHEUS_PORT}`,
        `--storage.tsdb.path=${PROMETHEUS_DATA_DIR}`,
        `--storage.tsdb.retention.time=${o.retentionDays}d`,
        `--storage.tsdb.retention.size=${o.retentionSizeMb}MB`,
    ];
    return `# Managed by pi-cluster (the monitoring step); edits are overwritten.\nARGS="${args.join(" ")}"\n`;
}

/**
 * The filesystem types the node exporter leaves out: its default list without "overlay", so
 * a root on an overlay (Raspberry Pi OS's overlay file system, a lab Pi) is watched too.
 * Docker's overlays stay out through the default excluded mount points.
 */
export const NODE_FS_TYPES_EXCLUDE =
    "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";

/** /etc/default/prometheus-node-exporter: listens on the Pi's own address, which its firewall opens to Prometheus only. */
export function renderNodeExporterDefaults(address: string): string {
    const args = [
        `--web.listen-address=${address}:${NODE_EXPORTER_PORT}`,
        `--collector.textfile.directory=${NODE_EXPORTER_TEXTFILE_DIR}`,
        `--collector.filesystem.fs-types-exclude=${NODE_FS_TYPES_EXCLUDE}`,
        // Failed backups and services down (alerts.ts): systemd's view of the stack's units.
        "--collector.systemd",
        `--collector.systemd.unit-include=${WATCHED_UNITS}`,
    ];
    return `# Managed by pi-cluster (the node-exporter step); edits are overwritten.\nARGS="${args.join(" ")}"\n`;
}

/** How long Alertmanager gathers a new group's alerts before the first notification. */
export const ALERT_GROUP_WAIT_SECONDS = 10;
/**
 * How often a group's changes (a resolve among them) are sent after its first notification.
 * Alertmanager's default, 5 min, would hold a Pi's resolve that long; groups are per alert and
 * Pi, so a short interval sends no more than a change each.
 */
export const ALERT_GROUP_INTERVAL_SECONDS = 30;

/**
 * Alertmanager's config: every alert to the webhook when one is set (else to no receiver:
 * alerts stay in Alertmanager's API and UI), grouped per alert and Pi, changes (resolves) sent
 * within ALERT_GROUP_INTERVAL_SECONDS, repeated every 4 h
 * while they fire. A Pi that is down silences its other alerts (inhibition): they follow from it.
 * Holds the webhook URL, a secret: the file is root:prometheus 0640.
 */
export function renderAlertmanagerConfig(o: { webhookUrl?: string }): string {
    const receiver = o.webhookUrl ? "webhook" : "none";
    const config = {
        route: {
            receiver,
            group_by: ["alertname", "instance"],
            group_wait: `${ALERT_GROUP_WAIT_SECONDS}s`,
            group_interval: `${ALERT_GROUP_INTERVAL_SECONDS}s`,
            repeat_interval: "4h",
        },
        receivers: [o.webhookUrl ? { name: "webhook", webhook_configs: [{ url: o.webhookUrl, send_resolved: true }] } : { name: "none" }],
        inhibit_rules: [{ source_matchers: ['alertname="PiDown"'], target_matchers: ['alertname!="PiDown"'], equal: ["instance"] }],
    };
    return JSON.stringify(config, null, 2) + "\n";
}

/** /etc/default/prometheus-alertmanager: loopback only, no gossip port (one instance, no peers). */
export function renderAlertmanagerDefaults(): string {
    const args = [`--web.listen-address=127.0.0.1:${ALERTMANAGER_PORT}`, "--cluster.listen-address=", `--storage.path=${ALERTMANAGER_DATA_DIR}`];
    return `# Managed by pi-cluster (the alertmanager step); edits are overwritten.\nARGS="${args.join(" ")}"\n`;
}

/**
 * The backup metrics' service: the converter as root in the stack's sandbox, with no network,
 * reading the target's directory (the backup account's, 0700) and writing only the textfile
 * directory. Its output is world-readable (node-exporter runs as prometheus): the converter
 * sets the file's mode itself, past the sandbox's UMask.
 */
export function renderBackupMetricsService(o: { backupDir: string }): string {
    return `# Managed by pi-cluster; rendered by components/render/monitoring.ts.
[Unit]
Description=pi-cluster: the backup target's status as metrics for node-exporter

[Service]
Type=oneshot
ExecStart=/usr/bin/python3 ${BACKUP_METRICS_SCRIPT} ${o.backupDir} ${BACKUP_METRICS_FILE}
${SANDBOX}
CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_DAC_OVERRIDE
PrivateNetwork=yes
RestrictAddressFamilies=AF_UNIX
IPAddressDeny=any
PrivateTmp=yes
MemoryDenyWriteExecute=yes
ReadOnlyPaths=-${o.backupDir}
ReadWritePaths=${NODE_EXPORTER_TEXTFILE_DIR}
`;
}

/** Its timer: every `intervalSeconds` (the scrape interval: fresher is never scraped). */
export function renderBackupMetricsTimer(o: { intervalSeconds: number }): string {
    if (!Number.isInteger(o.intervalSeconds) || o.intervalSeconds <= 0) throw new Error(`backup metrics: intervalSeconds is ${o.intervalSeconds}; expected a positive whole number`);
    return `# Managed by pi-cluster; rendered by components/render/monitoring.ts.
[Unit]
Description=pi-cluster: the backup target's metrics every ${o.intervalSeconds} s

[Timer]
OnBootSec=${o.intervalSeconds}s
OnUnitActiveSec=${o.intervalSeconds}s
AccuracySec=1s

[Install]
WantedBy=timers.target
`;
}
