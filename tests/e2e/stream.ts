// A request stream through the LB while something happens: the bench command
// (scripts/bench.sh, wrk) runs in the background, the operation runs, and the stream stops
// once it has carried enough requests. The zero-failure checks of the day-2 cases read its
// JSON report; the human report lands in test-output/.
import * as assert from "assert";
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { record } from "./checks";
import { LB_URL, OUT, REPO } from "./lib";

/** Issue 8's floor: every fault case runs under at least this many requests. */
export const MIN_REQUESTS = 5000;
/**
 * Requests per second through the LB: enough for MIN_REQUESTS in about 17 s on the lab. One
 * connection per request (--no-keepalive): the LB's reloads close idle keep-alive
 * connections, which wrk would count as read errors although no request was lost.
 */
const RATE = 300;

export interface BenchReport {
    requests: number;
    durationSeconds: number;
    rps: number;
    latencyMs: { p50: number; p90: number; p99: number; max: number };
    failed: { total: number; socket: Record<string, number>; status: Record<string, number> };
    retryAfter503: number;
    /** Sent but not answered when the stream stopped: those in flight at the stop (as wrk counts them). */
    unanswered: number;
    perSecond: { t: number; ok: number; failed: number }[];
    /** When the bench was started (this machine's clock, ms), for reading perSecond. */
    startedAtMs: number;
}

/**
 * Runs `operation` under a request stream to `urlPath` through the LB and returns the bench
 * report. The stream starts 2 s before the operation and goes on at least `tailSeconds`
 * after it, and until MIN_REQUESTS have been sent.
 */
export async function underStream(label: string, operation: () => unknown | Promise<unknown>, opts: { urlPath?: string; tailSeconds?: number } = {}): Promise<BenchReport> {
    fs.mkdirSync(OUT, { recursive: true });
    const json = path.join(OUT, `bench-${label}.json`);
    const text = fs.openSync(path.join(OUT, `bench-${label}.txt`), "w");
    fs.rmSync(json, { force: true });
    const started = Date.now();
    const bench = spawn(
        "bash",
        [path.join(REPO, "scripts", "bench.sh"), "--url", `${LB_URL}${opts.urlPath ?? "/api/notes?limit=5"}`, "--duration", "900", "--rate", String(RATE), "--connections", "8", "--threads", "2", "--no-keepalive", "--json", json],
        { stdio: ["ignore", text, text] },
    );
    const exited = new Promise<number | null>((resolve) => bench.on("exit", (code) => resolve(code)));
    try {
        await sleep(2000);
        await operation();
        // Half again the time MIN_REQUESTS take at RATE: a fault stalls some connections for
        // seconds (a powered-off server holds its requests until nginx's read timeout).
        const minSeconds = (1.5 * MIN_REQUESTS) / RATE + 2;
        await sleep(Math.max((opts.tailSeconds ?? 3) * 1000, started + minSeconds * 1000 - Date.now()));
    } finally {
        bench.kill("SIGINT");
    }
    const code = await exited;
    fs.closeSync(text);
    if (code !== 0) throw new Error(`bench (${label}) exited ${code}: see ${path.join(OUT, `bench-${label}.txt`)}`);
    const report = { ...JSON.parse(fs.readFileSync(json, "utf8")), startedAtMs: started } as BenchReport;
    record(`bench.${label}`, {
        requests: report.requests,
        rps: report.rps,
        p50: report.latencyMs.p50,
        p99: report.latencyMs.p99,
        failed: report.failed,
    });
    return report;
}

/** A failure count by kind, for assertion messages. */
export function failures(r: BenchReport): string {
    return JSON.stringify({ total: r.failed.total, socket: r.failed.socket, status: r.failed.status });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/**
 * Asserts that requests failed only while a fault lasted: none before `downAt`, and none
 * from `graceSeconds` after `upAt` on (per-second buckets; one bucket of slack for wrk's
 * start-up, since the stream is started a moment before its clock).
 */
export function assertFailuresOnlyDuring(r: BenchReport, downAt: number, upAt: number, graceSeconds: number): void {
    const sec = (ms: number) => (ms - r.startedAtMs) / 1000;
    const before = r.perSecond.filter((b) => b.t + 1 < sec(downAt) - 1 && b.failed > 0);
    const after = r.perSecond.filter((b) => b.t >= Math.ceil(sec(upAt) + graceSeconds) && b.failed > 0);
    assert.deepStrictEqual(before, [], `failures before the fault: ${failures(r)}`);
    assert.deepStrictEqual(after, [], `failures more than ${graceSeconds}s after recovery: ${failures(r)}`);
    const total = r.perSecond.reduce((n, b) => n + b.ok + b.failed, 0);
    assert.ok(r.perSecond.filter((b) => b.t >= Math.ceil(sec(upAt) + graceSeconds)).reduce((n, b) => n + b.ok, 0) > 0, `no requests after recovery (of ${total})`);
}

/**
 * One plain bench run of `seconds`, unthrottled, from this machine or from inside a lab
 * host's network namespace (its address, so its firewall lets the requests through).
 */
export function benchOnce(label: string, url: string, opts: { seconds?: number; fromHost?: string } = {}): BenchReport {
    fs.mkdirSync(OUT, { recursive: true });
    const json = path.join(OUT, `bench-${label}.json`);
    const args = [path.join(REPO, "scripts", "bench.sh"), "--url", url, "--duration", String(opts.seconds ?? 10), "--connections", "8", "--threads", "2", "--json", json];
    const cmd = opts.fromHost ? ["ip", "netns", "exec", opts.fromHost, "bash", ...args] : ["bash", ...args];
    const started = Date.now();
    const r = spawnSync(cmd[0], cmd.slice(1), { encoding: "utf8" });
    fs.writeFileSync(path.join(OUT, `bench-${label}.txt`), `${r.stdout}\n${r.stderr}`);
    if (r.status !== 0) throw new Error(`bench (${label}) exited ${r.status}: ${r.stderr.slice(-2000)}`);
    const report = { ...JSON.parse(fs.readFileSync(json, "utf8")), startedAtMs: started } as BenchReport;
    record(`bench.${label}`, { requests: report.requests, rps: report.rps, p50: report.latencyMs.p50, p99: report.latencyMs.p99, failed: report.failed.total });
    return report;
}
