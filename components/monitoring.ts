// Monitoring: Prometheus on the monitoring host (the load balancer), scraping every Pi's
// node exporter (each Pi's own step, see host.ts) and evaluating the stack's alerting rules,
// and Alertmanager beside it, which posts the alerts to the configured webhook.
// On the backup target, when Prometheus scrapes it, the backups' status as metrics.
// Removed by config (monitoring.enabled: false): the step's delete leaves nothing behind.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Connection, remoteStep } from "./remote";
import { renderAlertRules } from "./render/alerts";
import {
    renderAlertmanagerConfig,
    renderAlertmanagerDefaults,
    renderBackupMetricsService,
    renderBackupMetricsTimer,
    renderPrometheusConfig,
    renderPrometheusDefaults,
    ScrapedPi,
} from "./render/monitoring";
import { fileText, renderScript } from "./render/shell";
import {
    ALERTMANAGER_CONFIG,
    ALERTMANAGER_DATA_DIR,
    ALERTMANAGER_DEFAULTS,
    ALERTMANAGER_PACKAGE,
    ALERTMANAGER_PORT,
    ALERTMANAGER_SERVICE,
    BACKUP_METRICS_FILE,
    BACKUP_METRICS_SCRIPT,
    BACKUP_METRICS_UNIT,
    NODE_EXPORTER_TEXTFILE_DIR,
    PROMETHEUS_CONFIG,
    PROMETHEUS_DATA_DIR,
    PROMETHEUS_DEFAULTS,
    PROMETHEUS_PACKAGE,
    PROMETHEUS_PORT,
    PROMETHEUS_RULES,
    PROMETHEUS_SERVICE,
} from "./constants";

export interface MonitoringArgs {
    /** SSH to the monitoring host as the deploy user (with sudo). Required. */
    connection: pulumi.Input<Connection>;
    /** Every Pi Prometheus scrapes. Required. */
    pis: ScrapedPi[];
    /** Seconds between scrapes. Required (config default 15). */
    scrapeIntervalSeconds: number;
    /** Days of samples kept. Required (config default 15). */
    retentionDays: number;
    /** The most disk the samples take, in MB. Required (config default 1024). */
    retentionSizeMb: number;
    /** Where Alertmanager posts alerts (a secret). Default none: alerts stay in Alertmanager. */
    webhookUrl?: pulumi.Input<string>;
    /** The steps run after these (the monitoring host is ready). Default none. */
    after?: pulumi.Resource[];
    /**
     * The backup target, when it is one of the scraped Pis: its status becomes metrics there
     * (the backup alerts). Default none: no backups, or a target Prometheus does not scrape.
     */
    backupTarget?: { connection: pulumi.Input<Connection>; path: string; ready: pulumi.Resource };
}

/** The converter the backup-metrics step installs (assets/backup/). */
const BACKUP_METRICS_SOURCE = path.join(__dirname, "..", "assets", "backup", "pi-cluster-backup-metrics.py");

export class Monitoring extends pulumi.ComponentResource {
    /** Prometheus's address on the monitoring host (loopback). */
    public readonly prometheusUrl: pulumi.Output<string>;
    public readonly ready: pulumi.Resource;
    /** Alertmanager's address on the monitoring host (loopback). */
    public readonly alertmanagerUrl: pulumi.Output<string>;

    constructor(name: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pi-cluster:monitoring:Monitoring", name, {}, opts);
        this.ready = remoteStep(
            `${name}-prometheus`,
            {
                connection: args.connection,
                script: renderScript("lb-prometheus", {
                    STEP: `${name}-prometheus`,
                    PACKAGE: PROMETHEUS_PACKAGE,
                    SERVICE: PROMETHEUS_SERVICE,
                    PORT: PROMETHEUS_PORT,
                    CONFIG: PROMETHEUS_CONFIG,
                    CONFIG_TEXT: fileText(renderPrometheusConfig({ scrapeIntervalSeconds: args.scrapeIntervalSeconds, pis: args.pis })),
                    RULES: PROMETHEUS_RULES,
                    RULES_TEXT: fileText(renderAlertRules({ scrapeIntervalSeconds: args.scrapeIntervalSeconds })),
                    DEFAULTS: PROMETHEUS_DEFAULTS,
                    DEFAULTS_TEXT: fileText(renderPrometheusDefaults({ retentionDays: args.retentionDays, retentionSizeMb: args.retentionSizeMb })),
                    DATA_DIR: PROMETHEUS_DATA_DIR,
                }),
            },
            { parent: this, dependsOn: args.after ?? [] },
        );
        // Its own step: the webhook URL makes its script a secret, logged on stderr only.
        remoteStep(
            `${name}-alertmanager`,
            {
                connection: args.connection,
                secret: true,
                script: pulumi.output(args.webhookUrl).apply((webhookUrl) =>
                    renderScript("lb-alertmanager", {
                        STEP: `${name}-alertmanager`,
                        PACKAGE: ALERTMANAGER_PACKAGE,
                        SERVICE: ALERTMANAGER_SERVICE,
                        PORT: ALERTMANAGER_PORT,
                        CONFIG: ALERTMANAGER_CONFIG,
                        CONFIG_TEXT: fileText(renderAlertmanagerConfig({ webhookUrl })),
                        DEFAULTS: ALERTMANAGER_DEFAULTS,
                        DEFAULTS_TEXT: fileText(renderAlertmanagerDefaults()),
                        DATA_DIR: ALERTMANAGER_DATA_DIR,
                    }),
                ),
            },
            // After Prometheus's step: both install on the one host, and its purge must not race this one's.
            { parent: this, dependsOn: [this.ready] },
        );
        if (args.backupTarget) {
            remoteStep(
                `${name}-backup-metrics`,
                {
                    connection: args.backupTarget.connection,
                    script: renderScript("target-backup-metrics", {
                        STEP: `${name}-backup-metrics`,
                        SCRIPT: BACKUP_METRICS_SCRIPT,
                        SCRIPT_TEXT: fileText(fs.readFileSync(BACKUP_METRICS_SOURCE, "utf8")),
                        UNIT: BACKUP_METRICS_UNIT,
                        SERVICE_TEXT: fileText(renderBackupMetricsService({ backupDir: args.backupTarget.path })),
                        TIMER_TEXT: fileText(renderBackupMetricsTimer({ intervalSeconds: args.scrapeIntervalSeconds })),
                        TEXTFILE_DIR: NODE_EXPORTER_TEXTFILE_DIR,
                        METRICS_FILE: BACKUP_METRICS_FILE,
                    }),
                },
                { parent: this, dependsOn: [args.backupTarget.ready] },
            );
        }
        this.prometheusUrl = pulumi.output(`http://127.0.0.1:${PROMETHEUS_PORT}`);
        this.alertmanagerUrl = pulumi.output(`http://127.0.0.1:${ALERTMANAGER_PORT}`);
        this.registerOutputs({ prometheusUrl: this.prometheusUrl, alertmanagerUrl: this.alertmanagerUrl });
    }
}
