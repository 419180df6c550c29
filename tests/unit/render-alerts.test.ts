// The alerting rules' renderer: checked by promtool (check rules), and each alert fed
// series by promtool's rule unit tests (test rules) that must, and must not, fire it.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { ALERT_NAMES, PI_DOWN_MIN_SCRAPES, renderAlertRules } from "../../components/render/alerts";
import { renderAlertmanagerConfig, renderPrometheusConfig } from "../../components/render/monitoring";
import { MONITORING_DEFAULTS } from "../../components/config/schema";
import { tmpDir } from "./helpers";

interface RenderedRule {
    alert: string;
    expr: string;
    for: string;
    labels: Record<string, string>;
    annotations: { summary: string; description: string };
}

function rulesOf(text: string): RenderedRule[] {
    const file = JSON.parse(text) as { groups: { name: string; rules: RenderedRule[] }[] };
    assert.deepStrictEqual(file.groups.map((g) => g.name), ["pi-cluster-nodes"]);
    return file.groups[0].rules;
}

function ruleOf(text: string, alert: string): RenderedRule {
    const rule = rulesOf(text).find((r) => r.alert === alert);
    assert.ok(rule, `no rule ${alert}`);
    return rule;
}

function seconds(duration: string): number {
    const m = /^(\d+)(h|m|s)$/.exec(duration);
    assert.ok(m, `not a duration this test reads: ${duration}`);
    return Number(m[1]) * { h: 3600, m: 60, s: 1 }[m[2] as "h" | "m" | "s"];
}

function promtool(args: string[]): { status: number | null; output: string } {
    const r = spawnSync("promtool", args, { encoding: "utf8" });
    assert.strictEqual(r.error, undefined, "promtool must be installed (Debian's prometheus package: apt-get install prometheus)");
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** One input series of a promtool unit test: `metric{labels}` with promtool's expanding notation for values. */
interface Series {
    metric: string;
    labels: Record<string, string>;
    values: string;
}

/** An alert that must fire: its labels (severity included) and, where a template uses it, `$value` as it prints. */
interface Fired {
    labels: Record<string, string>;
    value?: string;
}

/** One alert's scenario: series sampled each minute, healthy ones among them. */
interface Scenario {
    alert: string;
    /** The minute of the first evaluation at which the condition holds. */
    onsetMinutes: number;
    series: Series[];
    fires: Fired[];
}

const node = (instance: string, more: Record<string, string> = {}) => ({ job: "node", instance, ...more });

/** avail and size series of one filesystem. */
function filesystem(instance: string, mount: Record<string, string>, avail: string, size: string): Series[] {
    return [
        { metric: "node_filesystem_avail_bytes", labels: node(instance, mount), values: avail },
        { metric: "node_filesystem_size_bytes", labels: node(instance, mount), values: size },
    ];
}

/** One node_systemd_unit_state series: a unit's state flag on a Pi. */
function unitState(instance: string, name: string, state: string, type: string, values: string): Series {
    return { metric: "node_systemd_unit_state", labels: node(instance, { name, state, type }), values };
}

const app = (instance: string, more: Record<string, string> = {}) => ({ job: "app", instance, ...more });

/** One series of the app's request counter (assets/app/src/metrics.ts). */
function appRequests(instance: string, status: string, values: string): Series {
    return { metric: "pi_cluster_http_requests_total", labels: app(instance, { method: "GET", route: "/notes", status }), values };
}

/** The app's latency histogram on one web server: a bucket series per `le`. */
function appLatency(instance: string, buckets: Record<string, string>): Series[] {
    return Object.entries(buckets).map(([le, values]) => ({
        metric: "pi_cluster_http_request_duration_seconds_bucket",
        labels: app(instance, { method: "GET", route: "/notes", le }),
        values,
    }));
}

const labRoot = { device: "overlay", fstype: "overlay", mountpoint: "/" };
const piRoot = { device: "/dev/mmcblk0p2", fstype: "ext4", mountpoint: "/" };
const run = { device: "tmpfs", fstype: "tmpfs", mountpoint: "/run" };
const boot = { device: "/dev/mmcblk0p1", fstype: "vfat", mountpoint: "/boot/firmware" };
const mysql = { device: "/dev/sda1", fstype: "ext4", mountpoint: "/var/lib/mysql" };
const GB = 1_000_000_000;

const SCENARIOS: Scenario[] = [
    {
        alert: "PiDown",
        onsetMinutes: 0,
        series: [
            { metric: "up", labels: node("pi-web1"), values: "0x60" },
            { metric: "up", labels: node("pi-web2"), values: "1x60" },
        ],
        fires: [{ labels: { ...node("pi-web1"), severity: "critical" } }],
    },
    {
        alert: "DiskFreeLow",
        onsetMinutes: 0,
        series: [
            // The lab's root is an overlay: watched all the same.
            ...filesystem("pi-web1", labRoot, `${5 * GB}x60`, `${100 * GB}x60`),
            // A tmpfs nearly full is memory, not disk.
            ...filesystem("pi-web1", run, `${GB / 100}x60`, `${GB}x60`),
            ...filesystem("pi-web1", boot, `${GB / 4}x60`, `${GB / 2}x60`),
            ...filesystem("pi-db", piRoot, `${20 * GB}x60`, `${32 * GB}x60`),
            ...filesystem("pi-db", mysql, `${8 * GB}x60`, `${100 * GB}x60`),
        ],
        fires: [
            { labels: { ...node("pi-web1", labRoot), severity: "warning" }, value: "5%" },
            { labels: { ...node("pi-db", mysql), severity: "warning" }, value: "8%" },
        ],
    },
    {
        alert: "DiskFullIn24h",
        // predict_linear needs two samples.
        onsetMinutes: 1,
        series: [
            // 20 MB a minute is 28.8 GB a day, more than the 20 GB left.
            ...filesystem("pi-db", mysql, `${20 * GB}-${20_000_000}x60`, `${100 * GB}x60`),
            // 10 MB a minute is 14.4 GB a day: less than what is left.
            ...filesystem("pi-web2", piRoot, `${20 * GB}-${10_000_000}x60`, `${32 * GB}x60`),
            ...filesystem("pi-web1", labRoot, `${20 * GB}x60`, `${100 * GB}x60`),
            ...filesystem("pi-web1", run, `${GB / 2}-${10_000_000}x60`, `${GB}x60`),
        ],
        fires: [{ labels: { ...node("pi-db", mysql), severity: "warning" } }],
    },
    {
        alert: "FilesystemReadOnly",
        onsetMinutes: 2,
        series: [
            { metric: "node_filesystem_readonly", labels: node("pi-web2", piRoot), values: "0 0 1x60" },
            { metric: "node_filesystem_readonly", labels: node("pi-web1", labRoot), values: "0x60" },
            // A snap's image is read-only by nature.
            { metric: "node_filesystem_readonly", labels: node("pi-web1", { device: "/dev/loop0", fstype: "squashfs", mountpoint: "/snap/core/1" }), values: "1x60" },
        ],
        fires: [{ labels: { ...node("pi-web2", piRoot), severity: "critical" } }],
    },
    {
        alert: "TemperatureHigh",
        onsetMinutes: 0,
        series: [
            // A Pi reports its SoC through both collectors: one alert, not two.
            { metric: "node_hwmon_temp_celsius", labels: node("pi-web1", { chip: "thermal_thermal_zone0", sensor: "temp1" }), values: "85x60" },
            { metric: "node_thermal_zone_temp", labels: node("pi-web1", { type: "cpu-thermal", zone: "0" }), values: "85x60" },
            { metric: "node_hwmon_temp_celsius", labels: node("pi-web2", { chip: "thermal_thermal_zone0", sensor: "temp1" }), values: "60x60" },
            { metric: "node_thermal_zone_temp", labels: node("pi-web2", { type: "cpu-thermal", zone: "0" }), values: "60x60" },
            { metric: "node_thermal_zone_temp", labels: node("pi-db", { type: "cpu-thermal", zone: "0" }), values: "82x60" },
            { metric: "node_hwmon_temp_celsius", labels: node("pi-lb", { chip: "thermal_thermal_zone0", sensor: "temp1" }), values: "79x60" },
        ],
        fires: [
            { labels: { ...node("pi-web1"), severity: "warning" }, value: "85" },
            { labels: { ...node("pi-db"), severity: "warning" }, value: "82" },
        ],
    },
    {
        alert: "MemoryPressure",
        onsetMinutes: 0,
        series: [
            { metric: "node_memory_MemAvailable_bytes", labels: node("pi-web1"), values: `${GB / 20}x60` },
            { metric: "node_memory_MemTotal_bytes", labels: node("pi-web1"), values: `${GB}x60` },
            { metric: "node_memory_MemAvailable_bytes", labels: node("pi-web2"), values: `${(GB * 2) / 5}x60` },
            { metric: "node_memory_MemTotal_bytes", labels: node("pi-web2"), values: `${GB}x60` },
        ],
        fires: [{ labels: { ...node("pi-web1"), severity: "warning" }, value: "5%" }],
    },
    {
        alert: "ServiceFailed",
        onsetMinutes: 1,
        series: [
            unitState("pi-db", "pi-cluster-backup-full.service", "failed", "oneshot", "0 1x60"),
            unitState("pi-db", "pi-cluster-backup-incremental.service", "failed", "oneshot", "0x60"),
            unitState("pi-db", "pi-cluster-backup-incremental.service", "active", "oneshot", "1x60"),
        ],
        fires: [{ labels: { ...node("pi-db", { name: "pi-cluster-backup-full.service", state: "failed", type: "oneshot" }), severity: "warning" } }],
    },
    {
        alert: "ServiceDown",
        onsetMinutes: 0,
        series: [
            unitState("pi-web1", "pi-cluster-app.service", "active", "simple", "0x60"),
            unitState("pi-web2", "pi-cluster-app.service", "active", "simple", "1x60"),
            unitState("pi-lb", "pi-cluster-binlog-stream.service", "active", "simple", "0x60"),
            // A oneshot between its runs is inactive by design: not an outage.
            unitState("pi-db", "pi-cluster-backup-full.service", "active", "oneshot", "0x60"),
            // Nor is a unit whose name only starts like a watched one.
            unitState("pi-db", "mariadb.service.d", "active", "simple", "0x60"),
        ],
        fires: [
            { labels: { ...node("pi-web1", { name: "pi-cluster-app.service", state: "active", type: "simple" }), severity: "critical" } },
            { labels: { ...node("pi-lb", { name: "pi-cluster-binlog-stream.service", state: "active", type: "simple" }), severity: "critical" } },
        ],
    },
    {
        alert: "BackupStale",
        // promtool's clock starts at 0: time() at minute m is 60 m.
        onsetMinutes: 5,
        series: [
            // Fulls succeed, each 240 s after the last, and are stale past 120 s: from minute 5
            // on (the first success) always 240 s old, whenever the alert's `for` ends.
            { metric: "pi_cluster_backup_last_success_timestamp_seconds", labels: node("pi-lb", { kind: "full" }), values: "-240+60x60" },
            { metric: "pi_cluster_backup_stale_after_seconds", labels: node("pi-lb", { kind: "full" }), values: "120x60" },
            // Never succeeded (a new cluster's first incremental): ServiceFailed's, not this.
            { metric: "pi_cluster_backup_last_success_timestamp_seconds", labels: node("pi-lb", { kind: "incremental" }), values: "0x60" },
            { metric: "pi_cluster_backup_stale_after_seconds", labels: node("pi-lb", { kind: "incremental" }), values: "60x60" },
            // Shipped every minute.
            { metric: "pi_cluster_backup_last_success_timestamp_seconds", labels: node("pi-lb", { kind: "binlog" }), values: "0+60x60" },
            { metric: "pi_cluster_backup_stale_after_seconds", labels: node("pi-lb", { kind: "binlog" }), values: "120x60" },
        ],
        fires: [{ labels: { ...node("pi-lb", { kind: "full" }), severity: "critical" }, value: "4m 0s" }],
    },
    {
        alert: "BinlogStreamDown",
        onsetMinutes: 3,
        series: [
            // Down at minute 3, its report fresh.
            { metric: "pi_cluster_binlog_stream_up", labels: node("pi-lb"), values: "1 1 1 0x60" },
            { metric: "pi_cluster_binlog_stream_report_timestamp_seconds", labels: node("pi-lb"), values: "0+60x60" },
            // Says up, but its report stopped at 60 s: a stream that hangs.
            { metric: "pi_cluster_binlog_stream_up", labels: node("pi-db"), values: "1x60" },
            { metric: "pi_cluster_binlog_stream_report_timestamp_seconds", labels: node("pi-db"), values: "60x60" },
            { metric: "pi_cluster_binlog_stream_up", labels: node("pi-web1"), values: "1x60" },
            { metric: "pi_cluster_binlog_stream_report_timestamp_seconds", labels: node("pi-web1"), values: "0+60x60" },
        ],
        fires: [{ labels: { ...node("pi-lb"), severity: "critical" } }, { labels: { ...node("pi-db"), severity: "critical" } }],
    },
    {
        alert: "BinlogStreamLagging",
        onsetMinutes: 2,
        series: [
            { metric: "pi_cluster_binlog_stream_lag_seconds", labels: node("pi-lb"), values: "0 0 10x60" },
            { metric: "pi_cluster_binlog_stream_max_lag_seconds", labels: node("pi-lb"), values: "5x60" },
            { metric: "pi_cluster_binlog_stream_lag_seconds", labels: node("pi-db"), values: "3x60" },
            { metric: "pi_cluster_binlog_stream_max_lag_seconds", labels: node("pi-db"), values: "5x60" },
        ],
        fires: [{ labels: { ...node("pi-lb"), severity: "warning" }, value: "10" }],
    },
    {
        alert: "BackupStatusMissing",
        onsetMinutes: 6,
        series: [
            // status.json gone at minute 6.
            { metric: "pi_cluster_backup_status_ok", labels: node("pi-lb"), values: "1x5 0x60" },
            { metric: "pi_cluster_backup_metrics_timestamp_seconds", labels: node("pi-lb"), values: "0+60x60" },
            // The converter stopped at 0 s: its file is 360 s old at minute 6.
            { metric: "pi_cluster_backup_status_ok", labels: node("pi-db"), values: "1x60" },
            { metric: "pi_cluster_backup_metrics_timestamp_seconds", labels: node("pi-db"), values: "0x60" },
            { metric: "pi_cluster_backup_status_ok", labels: node("pi-web1"), values: "1x60" },
            { metric: "pi_cluster_backup_metrics_timestamp_seconds", labels: node("pi-web1"), values: "0+60x60" },
        ],
        fires: [{ labels: { ...node("pi-lb"), severity: "warning" } }, { labels: { ...node("pi-db"), severity: "warning" } }],
    },
    {
        alert: "AppErrorRateHigh",
        // rate() needs two samples.
        onsetMinutes: 1,
        series: [
            // 10 requests a second, one of them a 503: 10%.
            appRequests("pi-web1", "200", "0+540x60"),
            appRequests("pi-web1", "503", "0+60x60"),
            // 1%: under the bound.
            appRequests("pi-web2", "200", "0+594x60"),
            appRequests("pi-web2", "500", "0+6x60"),
            // Every answer a 503, but one every 10 s: too few to judge.
            appRequests("pi-web3", "503", "0+6x60"),
        ],
        fires: [{ labels: { instance: "pi-web1", severity: "critical" }, value: "10%" }],
    },
    {
        alert: "AppLatencyHigh",
        onsetMinutes: 1,
        series: [
            // Every request between 1 and 2 s: p99 interpolates to 1.99 s.
            ...appLatency("pi-web1", { "0.5": "0x60", "1": "0x60", "2": "0+600x60", "+Inf": "0+600x60" }),
            appRequests("pi-web1", "200", "0+600x60"),
            // Every request under 0.5 s.
            ...appLatency("pi-web2", { "0.5": "0+600x60", "1": "0+600x60", "2": "0+600x60", "+Inf": "0+600x60" }),
            appRequests("pi-web2", "200", "0+600x60"),
            // Slow, but one request a minute.
            ...appLatency("pi-web3", { "0.5": "0x60", "1": "0x60", "2": "0+1x60", "+Inf": "0+1x60" }),
            appRequests("pi-web3", "200", "0+1x60"),
        ],
        fires: [{ labels: { instance: "pi-web1", severity: "warning" }, value: "1.99s" }],
    },
    {
        alert: "AppNotAnswering",
        onsetMinutes: 0,
        series: [
            { metric: "up", labels: app("pi-web1"), values: "0x60" },
            unitState("pi-web1", "pi-cluster-app.service", "active", "simple", "1x60"),
            // Its service stopped: ServiceDown's, not this.
            { metric: "up", labels: app("pi-web2"), values: "0x60" },
            unitState("pi-web2", "pi-cluster-app.service", "active", "simple", "0x60"),
            { metric: "up", labels: app("pi-web3"), values: "1x60" },
            unitState("pi-web3", "pi-cluster-app.service", "active", "simple", "1x60"),
        ],
        fires: [{ labels: { ...app("pi-web1"), severity: "critical" } }],
    },
    {
        alert: "AppRestarting",
        onsetMinutes: 3,
        series: [
            // Started anew at minutes 1, 2 and 3.
            { metric: "process_start_time_seconds", labels: app("pi-web1"), values: "100 160 220 280x60" },
            // Once: a deploy.
            { metric: "process_start_time_seconds", labels: app("pi-web2"), values: "100 160x60" },
        ],
        fires: [{ labels: { ...app("pi-web1"), severity: "warning" }, value: "3" }],
    },
    {
        alert: "DatabaseUnreachable",
        onsetMinutes: 1,
        series: [
            { metric: "pi_cluster_db_breaker_open", labels: app("pi-web1", { pool: "primary" }), values: "0 1x60" },
            // A replica's breaker: ReplicaOutOfReadSet's.
            { metric: "pi_cluster_db_breaker_open", labels: app("pi-web1", { pool: "pi-replica1" }), values: "1x60" },
            { metric: "pi_cluster_db_breaker_open", labels: app("pi-web2", { pool: "primary" }), values: "0x60" },
        ],
        fires: [{ labels: { ...app("pi-web1", { pool: "primary" }), severity: "critical" } }],
    },
    {
        alert: "ReplicaOutOfReadSet",
        onsetMinutes: 2,
        series: [
            // Out for both web servers from minute 2.
            { metric: "pi_cluster_replica_in_read_set", labels: app("pi-web1", { replica: "pi-replica1" }), values: "1 1 0x60" },
            { metric: "pi_cluster_replica_in_read_set", labels: app("pi-web2", { replica: "pi-replica1" }), values: "1 1 0x60" },
            // Out for one web server only: its own network, perhaps.
            { metric: "pi_cluster_replica_in_read_set", labels: app("pi-web1", { replica: "pi-replica2" }), values: "0x60" },
            { metric: "pi_cluster_replica_in_read_set", labels: app("pi-web2", { replica: "pi-replica2" }), values: "1x60" },
        ],
        // Named by the replica as `instance`, so that its PiDown inhibits it.
        fires: [{ labels: { replica: "pi-replica1", instance: "pi-replica1", severity: "critical" } }],
    },
    {
        alert: "ClockNotSynchronised",
        onsetMinutes: 0,
        series: [
            { metric: "node_timex_sync_status", labels: node("pi-db"), values: "0x60" },
            { metric: "node_timex_sync_status", labels: node("pi-web1"), values: "1x60" },
        ],
        fires: [{ labels: { ...node("pi-db"), severity: "warning" } }],
    },
];

function selector(s: Series): string {
    const labels = Object.entries(s.labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
    return `${s.metric}{${labels.join(", ")}}`;
}

/** A Go template of the rules as Prometheus expands it for one alert; only what the rules use. */
function expand(template: string, f: Fired): string {
    const text = template.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, k: string) => {
        assert.ok(k in f.labels, `the template uses label ${k}, which the alert lacks`);
        return f.labels[k];
    });
    const out = text.replace(/\{\{ \$value( \| \w+)? \}\}/g, () => {
        assert.ok(f.value !== undefined, `the template prints $value; give the scenario's value: ${template}`);
        return f.value;
    });
    assert.doesNotMatch(out, /\{\{/, `a template this test cannot expand: ${template}`);
    return out;
}

/**
 * promtool's unit-test file for `rules`: per scenario, no firing alert one evaluation before
 * its `for` has passed, and exactly the expected ones (with their annotations) once it has.
 */
function unitTests(rules: string, rulesFile: string) {
    return {
        rule_files: [rulesFile],
        evaluation_interval: "1m",
        tests: SCENARIOS.map((s) => {
            const rule = ruleOf(rules, s.alert);
            const firesAt = s.onsetMinutes + Math.ceil(seconds(rule.for) / 60);
            return {
                interval: "1m",
                input_series: s.series.map((x) => ({ series: selector(x), values: x.values })),
                alert_rule_test: [
                    { eval_time: `${firesAt - 1}m`, alertname: s.alert, exp_alerts: [] },
                    {
                        eval_time: `${firesAt}m`,
                        alertname: s.alert,
                        exp_alerts: s.fires.map((f) => ({
                            exp_labels: f.labels,
                            exp_annotations: { summary: expand(rule.annotations.summary, f), description: expand(rule.annotations.description, f) },
                        })),
                    },
                ],
            };
        }),
    };
}

/** Writes the rules and their unit tests and runs `promtool test rules`. */
function testRules(rules: string, tests = (file: string) => unitTests(rules, file)): { status: number | null; output: string } {
    const dir = tmpDir("pi-alerts-");
    fs.writeFileSync(path.join(dir, "alerts.rules.json"), rules);
    fs.writeFileSync(path.join(dir, "alerts.test.json"), JSON.stringify(tests("alerts.rules.json"), null, 2) + "\n");
    return promtool(["test", "rules", path.join(dir, "alerts.test.json")]);
}

describe("alerting rules", () => {
    const rules = renderAlertRules({ scrapeIntervalSeconds: 15 });

    it("are accepted by promtool check rules", () => {
        const f = path.join(tmpDir("pi-alerts-"), "alerts.rules.json");
        fs.writeFileSync(f, rules);
        const r = promtool(["check", "rules", f]);
        assert.strictEqual(r.status, 0, r.output);
        assert.match(r.output, new RegExp(`SUCCESS: ${ALERT_NAMES.length} rules found`));
        // The check is real: a broken expression fails it.
        fs.writeFileSync(f, rules.replace('"up{job=\\"node\\"} == 0"', '"up{job=\\"node\\" == 0"'));
        assert.notStrictEqual(promtool(["check", "rules", f]).status, 0);
    });

    it("name every alert in ALERT_NAMES, in file order, each with a severity, a summary and a description that says where", () => {
        const all = rulesOf(rules);
        assert.deepStrictEqual(all.map((r) => r.alert), [...ALERT_NAMES]);
        assert.deepStrictEqual(ALERT_NAMES, [
            "PiDown",
            "DiskFreeLow",
            "DiskFullIn24h",
            "FilesystemReadOnly",
            "TemperatureHigh",
            "MemoryPressure",
            "ServiceFailed",
            "ServiceDown",
            "BackupStale",
            "BinlogStreamDown",
            "BinlogStreamLagging",
            "BackupStatusMissing",
            "AppErrorRateHigh",
            "AppLatencyHigh",
            "AppNotAnswering",
            "AppRestarting",
            "DatabaseUnreachable",
            "ReplicaOutOfReadSet",
            "ClockNotSynchronised",
        ]);
        for (const r of all) {
            assert.deepStrictEqual(Object.keys(r.labels), ["severity"], r.alert);
            assert.ok(["critical", "warning"].includes(r.labels.severity), r.alert);
            assert.match(r.annotations.summary, /\{\{ \$labels\.instance \}\}/, r.alert);
            assert.match(r.annotations.description, /\{\{ \$labels\.instance \}\}/, r.alert);
        }
    });

    it("page for a Pi that stopped answering scrapes after 30 s at a 15 s scrape interval", () => {
        const pidown = ruleOf(rules, "PiDown");
        assert.strictEqual(pidown.expr, 'up{job="node"} == 0');
        assert.strictEqual(pidown.for, "30s");
        assert.strictEqual(pidown.labels.severity, "critical");
        assert.strictEqual(pidown.annotations.summary, "{{ $labels.instance }} is down");
    });

    it("watch the root whatever its type and real filesystems, never tmpfs or overlays elsewhere", () => {
        for (const alert of ["DiskFreeLow", "DiskFullIn24h", "FilesystemReadOnly"]) {
            const { expr } = ruleOf(rules, alert);
            assert.match(expr, /\{job="node", mountpoint="\/"\}/, alert);
            assert.match(expr, /\{job="node", fstype!~"tmpfs\|ramfs\|devtmpfs\|overlay\|squashfs\|[^"]*"\}/, alert);
        }
        assert.match(ruleOf(rules, "DiskFullIn24h").expr, /predict_linear\(node_filesystem_avail_bytes\{[^}]*\}\[6h\], 86400\)/);
        assert.strictEqual(ruleOf(rules, "MemoryPressure").expr, 'node_memory_MemAvailable_bytes{job="node"} / node_memory_MemTotal_bytes{job="node"} < 0.1');
    });

    it("have a promtool unit test in which each alert fires", () => {
        const tested = unitTests(rules, "alerts.rules.json").tests.flatMap((t) => t.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname));
        assert.deepStrictEqual(ALERT_NAMES.filter((a) => !tested.includes(a)), [], "every alert needs a scenario in which it fires");
    });

    it("fire after their `for` for the failing series only, with their annotations expanded (promtool test rules)", () => {
        const r = testRules(rules);
        assert.strictEqual(r.status, 0, r.output);
        assert.match(r.output, /SUCCESS/);
    });

    it("fail promtool's unit test when an expected alert does not fire (the harness can fail)", () => {
        const wrong = (file: string) => {
            const t = unitTests(rules, file);
            t.tests[0].alert_rule_test[1].exp_alerts[0].exp_labels = { ...node("pi-web2"), severity: "critical" };
            return t;
        };
        const r = testRules(rules, wrong);
        assert.notStrictEqual(r.status, 0, r.output);
        assert.match(r.output, /PiDown/);
    });

    it("wait at least 4 scrape intervals, PiDown 2: 60 s gives FilesystemReadOnly 4m and PiDown 2m", () => {
        const slow = renderAlertRules({ scrapeIntervalSeconds: 60 });
        assert.strictEqual(ruleOf(slow, "PiDown").for, "2m");
        assert.strictEqual(ruleOf(slow, "FilesystemReadOnly").for, "4m");
        // Longer ones keep their own.
        assert.strictEqual(ruleOf(slow, "DiskFullIn24h").for, "30m");
        for (const r of rulesOf(slow)) assert.ok(seconds(r.for) >= (r.alert === "PiDown" ? PI_DOWN_MIN_SCRAPES : 4) * 60, `${r.alert} for ${r.for}`);
        for (const r of rulesOf(rules)) assert.ok(seconds(r.for) <= seconds(ruleOf(slow, r.alert).for), r.alert);
        assert.strictEqual(ruleOf(renderAlertRules({ scrapeIntervalSeconds: 17 }), "FilesystemReadOnly").for, "68s");
        // And the alerts still fire after the longer wait, not before.
        const r = testRules(slow);
        assert.strictEqual(r.status, 0, r.output);
    });

    it("page a powered-off Pi within 90 s at the default interval, and send its resolve within 60 s of it answering again (the rendered files' worst case)", () => {
        const every = MONITORING_DEFAULTS.scrapeIntervalSeconds;
        const prom = JSON.parse(renderPrometheusConfig({ scrapeIntervalSeconds: every, pis: [] })).global;
        const route = JSON.parse(renderAlertmanagerConfig({ webhookUrl: "https://hooks.example.invalid/T0/secret" })).route;
        const pidown = ruleOf(renderAlertRules({ scrapeIntervalSeconds: every }), "PiDown");
        // Power goes just after a scrape: the next one fails at its timeout, the evaluation after
        // that finds up == 0, the alert fires `for` later, and Alertmanager waits group_wait.
        const page = seconds(prom.scrape_interval) + seconds(prom.scrape_timeout) + seconds(prom.evaluation_interval) + seconds(pidown.for) + seconds(route.group_wait);
        assert.ok(page <= 90, `PiDown pages up to ${page} s after the power cut`);
        // Back: the next scrape succeeds, the evaluation after resolves the alert, and
        // Alertmanager sends the group's change at its next group_interval.
        const resolve = seconds(prom.scrape_interval) + seconds(prom.evaluation_interval) + seconds(route.group_interval);
        assert.ok(resolve <= 60, `the resolve reaches the receiver up to ${resolve} s after the Pi answers`);
        // One missed scrape alone never pages.
        assert.ok(seconds(pidown.for) >= 2 * every, pidown.for);
    });

    it("refuses a scrape interval that is not a positive number", () => {
        for (const s of [0, -15, NaN, Infinity]) assert.throws(() => renderAlertRules({ scrapeIntervalSeconds: s }), /scrapeIntervalSeconds/);
    });
});
