// Monitoring's files as rendered: Prometheus's config checked by the real promtool, and the
// settings files Debian's units read.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import {
    renderAlertmanagerConfig,
    renderAlertmanagerDefaults,
    renderNodeExporterDefaults,
    renderPrometheusConfig,
    renderPrometheusDefaults,
} from "../../components/render/monitoring";
import { tmpDir } from "./helpers";

const pis = [
    { name: "pi-lb", address: "10.254.0.121", role: "lb" as const },
    { name: "pi-web1", address: "10.254.0.122", role: "web" as const },
    { name: "pi-db", address: "10.254.0.124", role: "db" as const },
];

/** A validator's verdict (promtool, amtool): its exit status and words. */
function tool(name: "promtool" | "amtool", ...args: string[]): { status: number | null; out: string } {
    const r = spawnSync(name, args, { encoding: "utf8" });
    const pkg = name === "promtool" ? "prometheus" : "prometheus-alertmanager";
    assert.strictEqual(r.error, undefined, `${name} must be installed (Debian's ${pkg} package: apt-get install ${pkg})`);
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
}
const promtool = (...args: string[]) => tool("promtool", ...args);

describe("monitoring's files", () => {
    it("renders a Prometheus config that promtool accepts, one node target per Pi and one app target per web server, named by its host name", () => {
        const text = renderPrometheusConfig({ scrapeIntervalSeconds: 15, pis });
        const file = path.join(tmpDir("pi-prom-"), "prometheus.yml");
        fs.writeFileSync(file, text);
        const r = promtool("check", "config", "--syntax-only", file);
        assert.strictEqual(r.status, 0, r.out);
        const config = JSON.parse(text);
        assert.deepStrictEqual(config.global, { scrape_interval: "15s", evaluation_interval: "15s", scrape_timeout: "10s" });
        assert.deepStrictEqual(config.rule_files, ["/etc/prometheus/pi-cluster-alerts.yml"]);
        assert.deepStrictEqual(config.alerting, { alertmanagers: [{ static_configs: [{ targets: ["127.0.0.1:9093"] }] }] });
        const node = config.scrape_configs.find((j: { job_name: string }) => j.job_name === "node");
        assert.deepStrictEqual(node.static_configs[1], { targets: ["10.254.0.122:9100"], labels: { instance: "pi-web1", role: "web" } });
        // The app's own metrics: the web servers only, on the app's metrics listener.
        const app = config.scrape_configs.find((j: { job_name: string }) => j.job_name === "app");
        assert.deepStrictEqual(app.static_configs, [{ targets: ["10.254.0.122:9464"], labels: { instance: "pi-web1", role: "web" } }]);
    });

    it("keeps the scrape timeout under a short interval, which promtool would refuse otherwise", () => {
        const text = renderPrometheusConfig({ scrapeIntervalSeconds: 5, pis });
        assert.strictEqual(JSON.parse(text).global.scrape_timeout, "4s");
        const file = path.join(tmpDir("pi-prom-"), "prometheus.yml");
        fs.writeFileSync(file, text);
        assert.strictEqual(promtool("check", "config", "--syntax-only", file).status, 0);
        // The check can fail: a timeout past the interval is refused.
        fs.writeFileSync(file, text.replace('"scrape_timeout": "4s"', '"scrape_timeout": "9s"'));
        const bad = promtool("check", "config", "--syntax-only", file);
        assert.notStrictEqual(bad.status, 0);
        assert.match(bad.out, /scrape timeout greater than scrape interval/);
    });

    it("keeps Prometheus on loopback with the retention asked for, and the node exporter on the Pi's own address", () => {
        assert.strictEqual(
            renderPrometheusDefaults({ retentionDays: 15, retentionSizeMb: 1024 }).split("\n")[1],
            'ARGS="--web.listen-address=127.0.0.1:9090 --storage.tsdb.path=/var/lib/prometheus/metrics2 --storage.tsdb.retention.time=15d --storage.tsdb.retention.size=1024MB"',
        );
        assert.strictEqual(
            renderNodeExporterDefaults("10.254.0.122").split("\n")[1],
            'ARGS="--web.listen-address=10.254.0.122:9100 --collector.textfile.directory=/var/lib/prometheus/node-exporter --collector.filesystem.fs-types-exclude=^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$ --collector.systemd --collector.systemd.unit-include=(pi-cluster-.*|nginx|mariadb)[.](service|timer)"',
        );
    });

    it("renders an Alertmanager config amtool accepts: every alert to the webhook, or to no receiver without one, a down Pi's other alerts inhibited", () => {
        const dir = tmpDir("pi-am-");
        for (const webhookUrl of ["https://hooks.example.invalid/T0/B0/secret", undefined]) {
            const text = renderAlertmanagerConfig({ webhookUrl });
            const file = path.join(dir, "alertmanager.yml");
            fs.writeFileSync(file, text);
            const r = tool("amtool", "check-config", file);
            assert.strictEqual(r.status, 0, r.out);
            const config = JSON.parse(text);
            assert.strictEqual(config.route.receiver, webhookUrl ? "webhook" : "none");
            assert.deepStrictEqual(config.receivers, [webhookUrl ? { name: "webhook", webhook_configs: [{ url: webhookUrl, send_resolved: true }] } : { name: "none" }]);
            assert.deepStrictEqual(config.inhibit_rules, [{ source_matchers: ['alertname="PiDown"'], target_matchers: ['alertname!="PiDown"'], equal: ["instance"] }]);
        }
        // The check can fail: a receiver the route does not know is refused.
        const file = path.join(dir, "bad.yml");
        fs.writeFileSync(file, renderAlertmanagerConfig({}).replace('"receiver": "none"', '"receiver": "nobody"'));
        assert.notStrictEqual(tool("amtool", "check-config", file).status, 0);
    });

    it("keeps Alertmanager on loopback with its gossip port off", () => {
        assert.strictEqual(
            renderAlertmanagerDefaults().split("\n")[1],
            'ARGS="--web.listen-address=127.0.0.1:9093 --cluster.listen-address= --storage.path=/var/lib/prometheus/alertmanager"',
        );
    });
});
