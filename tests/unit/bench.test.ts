// scripts/bench.sh for real: wrk against a local HTTP server that fails an exact, known set
// of requests, a fault command part way through, and an early stop by signal.
import * as assert from "assert";
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import { AddressInfo } from "net";
import * as path from "path";
import { BenchFigures } from "../../scripts/bench/figures";
import { tmpDir } from "./helpers";

const SCRIPT = path.join(__dirname, "..", "..", "scripts", "bench.sh");

/** Answers 200, except the requests numbered here (the first is 1), in arrival order. */
type Failures = Record<number, { status: number; retryAfter?: boolean }>;

interface TestServer {
    url: string;
    served(): number;
    close(): Promise<void>;
}

function startServer(failures: Failures): Promise<TestServer> {
    let n = 0;
    const server = http.createServer((req, res) => {
        const fail = failures[++n];
        if (fail) res.writeHead(fail.status, fail.retryAfter ? { "Retry-After": "1" } : {});
        res.end(fail ? "failed on purpose\n" : "ok\n");
    });
    return new Promise((resolve) =>
        server.listen(0, "127.0.0.1", () => {
            const { port } = server.address() as AddressInfo;
            resolve({
                url: `http://127.0.0.1:${port}/`,
                served: () => n,
                close: () => new Promise<void>((done) => server.close(() => done())),
            });
            // wrk keeps its connections alive; close() must not wait on them.
            server.on("close", () => server.closeAllConnections());
        }),
    );
}

// 12 x 502, then 4 x 503 of which 3 carry Retry-After: all in the first 0.7 s of a run at
// 100 req/s, so that the runs below need last only about a second.
const FAILURES: Failures = {
    ...Object.fromEntries(Array.from({ length: 12 }, (_, i) => [31 + i, { status: 502 }])),
    61: { status: 503, retryAfter: true },
    62: { status: 503, retryAfter: true },
    63: { status: 503 },
    64: { status: 503, retryAfter: true },
};

interface Run {
    code: number | null;
    stdout: string;
    stderr: string;
    ms: number;
}

/** Runs a command to its end without blocking the event loop the test server answers on. */
function run(cmd: string, args: string[], started?: (child: ChildProcess) => void): Promise<Run> {
    const t = Date.now();
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    started?.(child);
    return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr, ms: Date.now() - t })));
}

const bench = (args: string[], started?: (child: ChildProcess) => void) => run("bash", [SCRIPT, ...args], started);
const out = (r: Run) => `exit ${r.code}\n${r.stdout}${r.stderr}`;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe("scripts/bench.sh with wrk", function () {
    this.timeout(30000);
    let dir: string;
    let server: TestServer;
    const json = () => path.join(dir, "bench.json");
    const figures = () => JSON.parse(fs.readFileSync(json(), "utf8")) as BenchFigures;

    before(() => {
        const wrk = spawnSync("wrk", ["--version"], { encoding: "utf8" });
        if (wrk.error) throw new Error(`wrk is not installed (${wrk.error.message}): apt-get install -y wrk, or run scripts/setup.sh`);
    });

    beforeEach(async () => {
        dir = tmpDir("pi-bench-");
        server = await startServer(FAILURES);
    });

    afterEach(async () => {
        await server.close();
        fs.rmSync(dir, { recursive: true, force: true });
    });

    it("counts each failed status exactly and sends about --rate requests a second", async () => {
        const r = await bench(["--url", server.url, "--duration", "1", "--rate", "100", "--connections", "4", "--json", json()]);
        assert.strictEqual(r.code, 0, out(r));
        const f = figures();
        assert.deepStrictEqual(f.failed, { total: 16, socket: { connect: 0, read: 0, write: 0, timeout: 0 }, status: { "502": 12, "503": 4 } });
        assert.strictEqual(f.retryAfter503, 3);
        assert.ok(Math.abs(f.durationSeconds - 1) < 0.2, `ran ${f.durationSeconds} s`);
        const expected = 100 * f.durationSeconds;
        assert.ok(Math.abs(f.requests - expected) <= 0.1 * expected, `${f.requests} requests, expected about ${expected}`);
        assert.ok(f.requests <= server.served() && server.served() <= f.requests + f.unanswered, `served ${server.served()}`);
        assert.strictEqual(sum(f.perSecond.map((s) => s.ok + s.failed)), f.requests);
        assert.strictEqual(sum(f.perSecond.map((s) => s.failed)), 16);
        assert.match(r.stdout, /^ {2}HTTP 502 {4}12$/m);
        assert.match(r.stdout, /^ {2}HTTP 503 {4}4 \(3 with Retry-After\)$/m);
        assert.strictEqual(f.fault, null);
    });

    it("runs the fault command once, --fault-at seconds in, and records when it ran", async () => {
        const marker = path.join(dir, "fault-ran");
        const r = await bench([
            "--url", server.url, "--duration", "1", "--rate", "20", "--connections", "2",
            "--fault-cmd", `echo once >> '${marker}'; sleep 0.3`, "--fault-at", "0.4", "--json", json(),
        ]);
        assert.strictEqual(r.code, 0, out(r));
        assert.strictEqual(fs.readFileSync(marker, "utf8"), "once\n");
        const { fault } = figures();
        assert.ok(fault && fault.startedAt !== null && fault.endedAt !== null, JSON.stringify(fault));
        assert.strictEqual(fault.exitCode, 0);
        assert.ok(fault.startedAt >= 0.4 && fault.startedAt < 0.8, `started at ${fault.startedAt} s`);
        const took = fault.endedAt - fault.startedAt;
        assert.ok(took >= 0.3 && took < 0.6, `took ${took} s`);
        assert.match(r.stdout, /^Fault {9}0\.[4-7]\d s to \d\.\d\d s, exit 0: echo once/m);
    });

    it("exits 3 with the fault command's output when it fails, the report still printed", async () => {
        const r = await bench([
            "--url", server.url, "--duration", "1", "--rate", "20", "--connections", "2",
            "--fault-cmd", "echo 'lab: no such host pi-web9' >&2; exit 4", "--fault-at", "0", "--json", json(),
        ]);
        assert.strictEqual(r.code, 3, out(r));
        assert.match(r.stderr, /\| lab: no such host pi-web9/);
        assert.match(r.stderr, /the fault command exited 4/);
        assert.strictEqual(figures().fault?.exitCode, 4);
        assert.match(r.stdout, /^Requests {6}\d+ in 1\.\d\d s/m);
    });

    it("exits 2 with fewer answers than --min-requests", async () => {
        const r = await bench(["--url", server.url, "--duration", "1", "--rate", "10", "--connections", "2", "--min-requests", "1000"]);
        assert.strictEqual(r.code, 2, out(r));
        assert.match(r.stderr, /only \d+ requests were answered, fewer than --min-requests 1000/);
    });

    for (const signal of ["SIGINT", "SIGTERM"] as const) {
        it(`stops early on ${signal} with the whole report and JSON`, async () => {
            const r = await bench(["--url", server.url, "--duration", "60", "--rate", "100", "--connections", "4", "--json", json()], (child) => {
                setTimeout(() => child.kill(signal), 1200);
            });
            assert.strictEqual(r.code, 0, out(r));
            assert.ok(r.ms < 8000, `took ${r.ms} ms`);
            const f = figures();
            assert.strictEqual(f.stoppedEarly, true);
            assert.ok(f.durationSeconds > 0.7 && f.durationSeconds < 2.2, `ran ${f.durationSeconds} s`);
            assert.ok(Math.abs(f.requests - 100 * f.durationSeconds) <= 12, `${f.requests} requests in ${f.durationSeconds} s`);
            assert.deepStrictEqual(f.failed.status, { "502": 12, "503": 4 });
            assert.match(r.stdout, /\(stopped early by a signal\)/);
        });
    }

    it("stops early on SIGINT also when a script started it with &", async () => {
        // A non-interactive bash starts a background job with SIGINT ignored, which the
        // job's own bash could not undo.
        const script = `bash '${SCRIPT}' --url ${server.url} --duration 60 --rate 20 --connections 2 --json '${json()}' & pid=$!; echo "pid $pid"; wait $pid`;
        const r = await run("bash", ["-c", script], (child) => {
            child.stdout!.once("data", (d) => {
                const pid = Number(/^pid (\d+)$/m.exec(String(d))![1]);
                setTimeout(() => process.kill(pid, "SIGINT"), 1000);
            });
        });
        assert.strictEqual(r.code, 0, out(r));
        assert.ok(r.ms < 8000, `took ${r.ms} ms`);
        assert.strictEqual(figures().stoppedEarly, true);
    });

    it("fails with wrk's message when nothing listens", async () => {
        const r = await bench(["--url", "http://127.0.0.1:9/", "--duration", "1"]);
        assert.strictEqual(r.code, 1, out(r));
        assert.match(r.stderr, /bench: error: wrk exited 1 without its figures: unable to connect to 127\.0\.0\.1:9/);
    });
});
