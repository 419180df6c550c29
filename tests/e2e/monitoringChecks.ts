// Monitoring on the lab: Prometheus on the load balancer, asked on its own loopback port
// over SSH (it listens nowhere else), and what monitoring leaves on a Pi when it goes.
import * as assert from "assert";
import * as fs from "fs";
import { dashboardScript } from "./checks";
import { http, LB, LB_URL, onHost, tcpOpenFromHost, tcpProbeFromMachine } from "./lib";
import { ALERTMANAGER_PORT, APP_METRICS_PORT, BACKUP_METRICS_SCRIPT, BACKUP_METRICS_UNIT, NODE_EXPORTER_PORT, PROMETHEUS_PORT } from "../../components/constants";

const ADDRESSES: Record<string, string> = { "pi-lb": LB, "pi-web1": "10.254.0.122", "pi-web2": "10.254.0.123", "pi-db": "10.254.0.124" };

/** A GET on Prometheus's HTTP API from the load balancer itself; its `data`. */
export function prometheusApi(pathAndQuery: string): any {
    const r = onHost("pi-lb", `curl -fsS --max-time 5 'http://127.0.0.1:${PROMETHEUS_PORT}${pathAndQuery}'`);
    assert.strictEqual(r.status, 0, `Prometheus's API ${pathAndQuery}: ${r.out}`);
    const body = JSON.parse(r.out);
    assert.strictEqual(body.status, "success", r.out);
    return body.data;
}

/** Polls `probe` every half second until it returns a value, or fails after `ms` saying what it waited for and what it saw last. */
export async function until<T>(what: string, ms: number, probe: () => { value?: T; seen: string }): Promise<T> {
    const deadline = Date.now() + ms;
    let seen = "";
    for (;;) {
        const r = probe();
        if (r.value !== undefined) return r.value;
        seen = r.seen;
        if (Date.now() > deadline) assert.fail(`${what}: not within ${ms / 1000} s; last seen: ${seen}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
    }
}

/** "job instance health" for each of Prometheus's targets, sorted. */
export function targetHealth(): string[] {
    const data = prometheusApi("/api/v1/targets?state=active");
    return data.activeTargets.map((t: { labels: { job: string; instance: string }; health: string }) => `${t.labels.job} ${t.labels.instance} ${t.health}`).sort();
}

/** Every Pi's node exporter, each web server's app and Prometheus itself scraped and up, within a minute of the up. */
export async function everyTargetUp(hosts: string[], webs: string[]): Promise<void> {
    const want = [...hosts.map((h) => `node ${h} up`), ...webs.map((w) => `app ${w} up`), "prometheus prometheus up"].sort();
    await until("every target up", 60_000, () => {
        const have = targetHealth();
        return { value: JSON.stringify(have) === JSON.stringify(want) ? true : undefined, seen: have.join(", ") };
    });
}

/**
 * The app's own metrics in Prometheus, from each web server: requests counted by route pattern
 * (`/notes/:id`, never a raw path) and status, and the latency histogram beside them.
 */
export async function appMetricsScraped(webs: string[]): Promise<void> {
    const counted = await until("the app's request counts in Prometheus", 60_000, () => {
        const r = prometheusQuery('sum by (instance) (pi_cluster_http_requests_total{job="app"})');
        const have = r.map((x: { metric: { instance: string } }) => x.metric.instance).sort();
        return { value: JSON.stringify(have) === JSON.stringify([...webs].sort()) ? r : undefined, seen: JSON.stringify(r) };
    });
    for (const x of counted) assert.ok(Number(x.value[1]) > 0, JSON.stringify(x));
    const routes: string[] = prometheusQuery('count by (route) (pi_cluster_http_requests_total{job="app"})').map((x: { metric: { route: string } }) => x.metric.route);
    for (const r of routes) assert.ok(r === "unmatched" || (r.startsWith("/") && !/\/\d+(\/|$)/.test(r)), `a route label that is not a pattern: ${r}`);
    const buckets = prometheusQuery('count by (instance) (pi_cluster_http_request_duration_seconds_bucket{job="app"})');
    assert.deepStrictEqual(buckets.map((x: { metric: { instance: string } }) => x.metric.instance).sort(), [...webs].sort());
}

/** An instant query's result vector, from Prometheus's HTTP API on the load balancer. */
export function prometheusQuery(q: string): any[] {
    return prometheusApi(`/api/v1/query?query=${encodeURIComponent(q)}`).result;
}

/**
 * 9100 answers the load balancer (Prometheus) only: not another Pi, not this machine; and each
 * web server's app metrics (APP_METRICS_PORT) the same.
 */
export function nodeExporterReachableFromPrometheusOnly(): void {
    const apps: [string, string, boolean][] = [
        ["pi-lb", ADDRESSES["pi-web1"], true],
        ["pi-lb", ADDRESSES["pi-web2"], true],
        ["pi-web2", ADDRESSES["pi-web1"], false],
        ["pi-db", ADDRESSES["pi-web2"], false],
    ];
    assert.deepStrictEqual(apps.map(([from, to]) => [from, to, tcpOpenFromHost(from, to, APP_METRICS_PORT)]), apps);
    for (const to of [ADDRESSES["pi-web1"], ADDRESSES["pi-web2"]]) {
        const p = tcpProbeFromMachine(to, APP_METRICS_PORT);
        assert.strictEqual(p.open, false, `this machine reached ${p.detail}`);
    }
    const port = NODE_EXPORTER_PORT;
    const matrix: [string, string, boolean][] = [
        ["pi-lb", ADDRESSES["pi-web1"], true],
        ["pi-lb", ADDRESSES["pi-web2"], true],
        ["pi-lb", ADDRESSES["pi-db"], true],
        ["pi-web2", ADDRESSES["pi-web1"], false],
        ["pi-db", ADDRESSES["pi-web1"], false],
        ["pi-web1", ADDRESSES["pi-db"], false],
        ["pi-web1", LB, false],
    ];
    assert.deepStrictEqual(matrix.map(([from, to]) => [from, to, tcpOpenFromHost(from, to, port)]), matrix);
    for (const to of Object.values(ADDRESSES)) {
        const p = tcpProbeFromMachine(to, port);
        assert.strictEqual(p.open, false, `this machine reached ${p.detail}`);
    }
    // Prometheus and Alertmanager listen on the load balancer's loopback only, gossip off.
    for (const port of [PROMETHEUS_PORT, ALERTMANAGER_PORT, 9094]) assert.strictEqual(tcpProbeFromMachine(LB, port).open, false, `${port} answers off the load balancer`);
    const listening = onHost("pi-lb", "ss -Hltn").out;
    assert.doesNotMatch(listening, /:9094\b/, "Alertmanager's gossip port is open");
}

/** The alerts Prometheus holds for `alertname`, as "instance state". */
export function alertsNamed(alertname: string): string[] {
    const data = prometheusApi("/api/v1/alerts");
    return data.alerts
        .filter((a: { labels: { alertname: string } }) => a.labels.alertname === alertname)
        .map((a: { labels: { instance: string }; state: string }) => `${a.labels.instance} ${a.state}`)
        .sort();
}

/** The alerts Prometheus holds for `alertname`, with their labels and state. */
export function alertsWith(alertname: string): { labels: Record<string, string>; state: string }[] {
    const data = prometheusApi("/api/v1/alerts");
    return data.alerts.filter((a: { labels: { alertname: string } }) => a.labels.alertname === alertname);
}

/** What a Pi has that monitoring could leave: prometheus packages, their files and ports. */
export function monitoringLeftovers(host: string): string[] {
    const r = onHost(
        host,
        String.raw`dpkg-query -W -f '${"$"}{Package} ${"$"}{db:Status-Abbrev}\n' 2>/dev/null | awk '$1 ~ /prometheus|promtool/ {print "package " $1 " " $2}'
for p in /etc/prometheus /var/lib/prometheus /etc/default/prometheus /etc/default/prometheus-node-exporter ${BACKUP_METRICS_SCRIPT} /etc/systemd/system/${BACKUP_METRICS_UNIT}.service /etc/systemd/system/${BACKUP_METRICS_UNIT}.timer; do [ -e "$p" ] && echo "path $p"; done
systemctl list-units --all --no-legend '${BACKUP_METRICS_UNIT}.*' | awk '{print "unit " $1}'
ss -Hltn | awk '$4 ~ /:(9090|9093|9094|9100|${APP_METRICS_PORT})$/ {print "listening " $4}'
sudo nft list ruleset | grep -q 'dport 9100' && echo "firewall rule for 9100"
sudo nft list ruleset | grep -q 'dport ${APP_METRICS_PORT}' && echo "firewall rule for ${APP_METRICS_PORT}"
true`,
    );
    assert.strictEqual(r.status, 0, r.out);
    return r.out.split("\n").filter(Boolean);
}

/** The Debian packages installed on a Pi, one per line. */
export function packagesOf(host: string): string[] {
    const r = onHost(host, String.raw`dpkg-query -W -f '${"$"}{Package} ${"$"}{Version} ${"$"}{db:Status-Abbrev}\n'`);
    assert.strictEqual(r.status, 0, r.out);
    return r.out.split("\n").filter(Boolean).sort();
}

/**
 * A webhook receiver on the load balancer's loopback, as a transient unit: it appends each
 * POST's body as one line to HOOK_LOG. Returns its URL, whose last segment is a token that
 * must never show in the state, the engine's output or a process list.
 */
export const HOOK_LOG = "/run/pi-e2e-hook.log";
const HOOK_PORT = 9999;

/** The receiver's URL for `token`: set it as alertWebhookUrl before the receiver runs, if need be. */
export function webhookUrl(token: string): string {
    return `http://127.0.0.1:${HOOK_PORT}/hook/${token}`;
}

export function startWebhookReceiver(token: string): string {
    const code = [
        "import http.server",
        "class H(http.server.BaseHTTPRequestHandler):",
        "    def do_POST(self):",
        "        body = self.rfile.read(int(self.headers.get('content-length', 0)))",
        `        open('${HOOK_LOG}', 'ab').write(body.replace(b'\\n', b' ') + b'\\n')`,
        "        self.send_response(200); self.end_headers()",
        "    def log_message(self, *a): pass",
        `http.server.HTTPServer(('127.0.0.1', ${HOOK_PORT}), H).serve_forever()`,
    ].join("\n");
    const r = onHost("pi-lb", `sudo rm -f ${HOOK_LOG}; sudo systemd-run --quiet --unit=pi-e2e-hook python3 -c "$(cat)"`, code);
    assert.strictEqual(r.status, 0, r.out);
    return webhookUrl(token);
}

export function stopWebhookReceiver(): void {
    onHost("pi-lb", `sudo systemctl stop pi-e2e-hook; sudo rm -f ${HOOK_LOG}`);
}

/** What the receiver got: one JSON body per line. */
export function webhookBodies(): any[] {
    const r = onHost("pi-lb", `sudo cat ${HOOK_LOG} 2>/dev/null || true`);
    return r.out.split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** An alert posted to Alertmanager's own API on the load balancer, as Prometheus posts them. */
export function postAlert(labels: Record<string, string>): void {
    const body = JSON.stringify([{ labels, annotations: { summary: "posted by the e2e suite" } }]);
    const r = onHost("pi-lb", `curl -fsS --max-time 5 -X POST -H 'content-type: application/json' --data-binary @- http://127.0.0.1:${ALERTMANAGER_PORT}/api/v2/alerts`, body);
    assert.strictEqual(r.status, 0, r.out);
}

/**
 * Waits until the receiver has a notification with `alertname` for `instance` in `status`
 * ("firing" or "resolved"); the seconds from `sinceMs` until it was seen there (polled every
 * half second), or a failure after `ms` naming what the receiver had.
 */
export async function webhookSeesAlert(alertname: string, instance: string, status: "firing" | "resolved", sinceMs: number, ms: number): Promise<number> {
    await until(`${alertname} ${status} for ${instance} at the webhook`, ms, () => {
        const alerts = webhookBodies().flatMap((b) => (b.alerts ?? []) as { status: string; labels: Record<string, string> }[]);
        const hit = alerts.some((a) => a.status === status && a.labels.alertname === alertname && a.labels.instance === instance);
        return { value: hit ? true : undefined, seen: JSON.stringify(alerts.map((a) => `${a.labels.alertname} ${a.labels.instance} ${a.status}`)) };
    });
    return (Date.now() - sinceMs) / 1000;
}

/**
 * The dashboard in Chromium (assets/dashboard, `npm run e2e:alerts`) lists `alert` ("PiDown
 * pi-web2") in its alerts panel, from Alertmanager through the LB's /internal/alerts; its
 * screenshot goes to `screenshot`, its output to test-output/dashboard-alerts-e2e.log.
 */
export function alertsPanelInBrowser(alert: string, screenshot: string): void {
    dashboardScript("e2e:alerts", { E2E_ALERT: alert, E2E_SCREENSHOT: screenshot }, "dashboard-alerts-e2e.log");
    assert.ok(fs.existsSync(screenshot), `no screenshot at ${screenshot}`);
}

/** GET /internal/alerts through the LB from this machine (the management network): status and body. */
export async function internalAlerts(): Promise<{ status: number; body: string }> {
    const r = await http(`${LB_URL}/internal/alerts`, { timeoutMs: 5000 });
    return { status: r.status, body: r.body };
}
