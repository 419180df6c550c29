// Monitoring on the lab: Prometheus on the load balancer, asked on its own loopback port
// over SSH (it listens nowhere else), and what monitoring leaves on a Pi when it goes.
import * as assert from "assert";
import { LB, onHost, tcpOpenFromHost, tcpProbeFromMachine } from "./lib";
import { NODE_EXPORTER_PORT, PROMETHEUS_PORT } from "../../components/constants";

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

/** Every Pi's node exporter and Prometheus itself scraped and up, within a minute of the up. */
export async function everyTargetUp(hosts: string[]): Promise<void> {
    const want = [...hosts.map((h) => `node ${h} up`), "prometheus prometheus up"].sort();
    await until("every target up", 60_000, () => {
        const have = targetHealth();
        return { value: JSON.stringify(have) === JSON.stringify(want) ? true : undefined, seen: have.join(", ") };
    });
}

/** 9100 answers the load balancer (Prometheus) only: not another Pi, not this machine. */
export function nodeExporterReachableFromPrometheusOnly(): void {
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
    // Prometheus itself listens on the load balancer's loopback only.
    assert.strictEqual(tcpProbeFromMachine(LB, PROMETHEUS_PORT).open, false, "Prometheus answers off its host");
}

/** The alerts Prometheus holds for `alertname`, as "instance state". */
export function alertsNamed(alertname: string): string[] {
    const data = prometheusApi("/api/v1/alerts");
    return data.alerts
        .filter((a: { labels: { alertname: string } }) => a.labels.alertname === alertname)
        .map((a: { labels: { instance: string }; state: string }) => `${a.labels.instance} ${a.state}`)
        .sort();
}

/** What a Pi has that monitoring could leave: prometheus packages, their files and ports. */
export function monitoringLeftovers(host: string): string[] {
    const r = onHost(
        host,
        String.raw`dpkg-query -W -f '${"$"}{Package} ${"$"}{db:Status-Abbrev}\n' 2>/dev/null | awk '$1 ~ /prometheus|promtool/ {print "package " $1 " " $2}'
for p in /etc/prometheus /var/lib/prometheus /etc/default/prometheus /etc/default/prometheus-node-exporter; do [ -e "$p" ] && echo "path $p"; done
ss -Hltn | awk '$4 ~ /:(9090|9100)$/ {print "listening " $4}'
sudo nft list ruleset | grep -q 'dport 9100' && echo "firewall rule for 9100"
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
