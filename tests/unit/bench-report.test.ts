// The bench's figures and report (scripts/bench): bench.lua's output parsed, failures
// counted by kind, the exit status, and the report's exact text. tests/unit/bench.test.ts
// runs the real thing with wrk.
import * as assert from "assert";
import { benchFigures, BenchFigures, parseWrkFigures, RunContext, verdict } from "../../scripts/bench/figures";
import { renderReport, timeline } from "../../scripts/bench/report";

const T0 = 1_700_000_000_000;

// What bench.lua's done() writes for a 3 s run with a few failures.
const WRK_OUT = [
    "requests 150",
    "sent 152",
    "duration_us 3004000",
    "socket 1 2 0 3",
    "latency_us 420 1180 3090 12345",
    "status 200 130",
    "status 301 4",
    "status 502 12",
    "status 503 4",
    "retry_after_503 3",
    "second 0 200 50",
    "second 1 200 30",
    "second 1 301 4",
    "second 1 502 12",
    "second 2 200 50",
    "second 2 503 4",
    "",
].join("\n");

const RUN: RunContext = { url: "http://127.0.0.1:8080/", t0Ms: T0, stoppedEarly: false };

function figures(text = WRK_OUT, run: Partial<RunContext> = {}): BenchFigures {
    return benchFigures(parseWrkFigures(text), { ...RUN, ...run });
}

describe("bench figures (scripts/bench/figures.ts)", () => {
    it("reads every figure bench.lua writes", () => {
        const w = parseWrkFigures(WRK_OUT);
        assert.deepStrictEqual(
            { ...w, statuses: [...w.statuses], seconds: [...w.seconds].map(([t, m]) => [t, [...m]]) },
            {
                requests: 150,
                sent: 152,
                durationUs: 3004000,
                socket: { connect: 1, read: 2, write: 0, timeout: 3 },
                latencyUs: { p50: 420, p90: 1180, p99: 3090, max: 12345 },
                statuses: [[200, 130], [301, 4], [502, 12], [503, 4]],
                retryAfter503: 3,
                seconds: [[0, [[200, 50]]], [1, [[200, 30], [301, 4], [502, 12]]], [2, [[200, 50], [503, 4]]]],
            },
        );
    });

    it("rejects an unknown or malformed line, naming it", () => {
        assert.throws(() => parseWrkFigures(`${WRK_OUT}bogus 1\n`), /unknown key at line 17 \("bogus 1"\)/);
        assert.throws(() => parseWrkFigures(WRK_OUT.replace("socket 1 2 0 3", "socket 1 2 0")), /socket expects 4 whole number\(s\) at line 4/);
        assert.throws(() => parseWrkFigures(WRK_OUT.replace("requests 150", "requests -1")), /requests expects 1 whole number/);
    });

    it("rejects output with a figure missing, as when done() never ran", () => {
        assert.throws(() => parseWrkFigures(""), /no requests, sent, duration_us, socket, latency_us, retry_after_503 \(did wrk's done\(\) run\?\)/);
        assert.throws(() => parseWrkFigures(WRK_OUT.replace("retry_after_503 3\n", "")), /no retry_after_503/);
    });

    it("counts each failed status and socket error, and never a 2xx or 3xx", () => {
        const f = figures();
        assert.deepStrictEqual(f.failed, { total: 22, socket: { connect: 1, read: 2, write: 0, timeout: 3 }, status: { "502": 12, "503": 4 } });
        assert.strictEqual(f.retryAfter503, 3);
        const odd = figures(WRK_OUT.replace("status 301 4", "status 101 1\nstatus 404 2\nstatus 399 1"));
        assert.deepStrictEqual(odd.failed.status, { "101": 1, "404": 2, "502": 12, "503": 4 });
    });

    it("gives the totals, throughput and latency in milliseconds", () => {
        const f = figures();
        assert.strictEqual(f.requests, 150);
        assert.strictEqual(f.unanswered, 2);
        assert.strictEqual(f.durationSeconds, 3.004);
        assert.strictEqual(f.rps, 49.9);
        assert.deepStrictEqual(f.latencyMs, { p50: 0.42, p90: 1.18, p99: 3.09, max: 12.345 });
        assert.strictEqual(f.stoppedEarly, false);
    });

    it("has every second in the timeline, one with no answer as 0/0", () => {
        const gap = WRK_OUT.replace(/second 1 .*\n/g, "");
        assert.deepStrictEqual(figures(gap).perSecond, [
            { t: 0, ok: 50, failed: 0 },
            { t: 1, ok: 0, failed: 0 },
            { t: 2, ok: 50, failed: 4 },
        ]);
    });

    it("ends the timeline at the run's end: a silent last second counts only when the run spent half of it", () => {
        const quiet = WRK_OUT.replace(/second 2 .*\n/g, "");
        assert.deepStrictEqual(figures(quiet.replace("duration_us 3004000", "duration_us 2400000")).perSecond.map((s) => s.t), [0, 1]);
        assert.deepStrictEqual(figures(quiet.replace("duration_us 3004000", "duration_us 2600000")).perSecond.map((s) => s.t), [0, 1, 2]);
    });

    it("puts the fault's times in seconds since the stream started", () => {
        const f = figures(WRK_OUT, { fault: { cmd: "lab power off pi-web2", startedMs: T0 + 1050, endedMs: T0 + 1375, exitCode: 0 } });
        assert.deepStrictEqual(f.fault, { cmd: "lab power off pi-web2", startedAt: 1.05, endedAt: 1.375, exitCode: 0 });
        assert.strictEqual(figures().fault, null);
        assert.deepStrictEqual(figures(WRK_OUT, { fault: { cmd: "x" } }).fault, { cmd: "x", startedAt: null, endedAt: null, exitCode: null });
    });

    it("exits 0 however many requests failed", () => {
        assert.deepStrictEqual(verdict(figures()), { code: 0, problems: [] });
        assert.deepStrictEqual(verdict(figures(), 150), { code: 0, problems: [] });
    });

    it("exits 2 below --min-requests and 3 when the fault failed, 3 winning", () => {
        assert.deepStrictEqual(verdict(figures(), 151), { code: 2, problems: ["only 150 requests were answered, fewer than --min-requests 151"] });
        const failedFault = figures(WRK_OUT, { fault: { cmd: "false", startedMs: T0, endedMs: T0 + 5, exitCode: 1 } });
        assert.deepStrictEqual(verdict(failedFault), { code: 3, problems: ["the fault command exited 1: false"] });
        assert.strictEqual(verdict(failedFault, 1000).code, 3);
        assert.strictEqual(verdict(failedFault, 1000).problems.length, 2);
    });
});

describe("bench report (scripts/bench/report.ts)", () => {
    it("prints totals, latency, failures by kind, the fault and the timeline", () => {
        const f = figures(WRK_OUT, { stoppedEarly: true, fault: { cmd: "lab power off pi-web2", startedMs: T0 + 1050, endedMs: T0 + 1375, exitCode: 0 } });
        assert.strictEqual(
            renderReport(f),
            [
                "Bench         http://127.0.0.1:8080/",
                "Requests      150 in 3.00 s, 49.9 req/s (stopped early by a signal)",
                "Latency ms    p50 0.42  p90 1.18  p99 3.09  max 12.3",
                "Failed        22",
                "  socket      connect 1  read 2  write 0  timeout 3",
                "  HTTP 502    12",
                "  HTTP 503    4 (3 with Retry-After)",
                "Unanswered    2 (sent, no answer by the stop)",
                "Fault         1.05 s to 1.38 s, exit 0: lab power off pi-web2",
                "Timeline      seconds since the start: answers ok, failed",
                "  0 s         50 ok",
                "  1 s         34 ok, 12 failed  <- fault",
                "  2 s         50 ok, 4 failed",
                "",
            ].join("\n"),
        );
    });

    it("says so when the fault never ran", () => {
        const f = figures(WRK_OUT, { fault: { cmd: "lab power off pi-web2" } });
        assert.match(renderReport(f), /^Fault {9}did not run \(stopped before it was due\): lab power off pi-web2$/m);
    });

    it("folds runs of good seconds and of silent seconds, but not failing ones or the fault's", () => {
        const perSecond = [
            [10, 0], [10, 0], [10, 0], // 0-2 ok
            [0, 0], [0, 0], // 3-4 silent
            [8, 2], [7, 3], // 5, 6 failing: a line each
            [10, 0], [10, 0], // 7-8: the fault ran in them
            [10, 0], [10, 0], // 9-10 ok
        ].map(([ok, failed], t) => ({ t, ok, failed }));
        const f: BenchFigures = { ...figures(), perSecond, fault: { cmd: "x", startedAt: 7.2, endedAt: 8.9, exitCode: 0 } };
        assert.deepStrictEqual(timeline(f), [
            "0-2 s       30 ok",
            "3-4 s       no answers",
            "5 s         8 ok, 2 failed",
            "6 s         7 ok, 3 failed",
            "7-8 s       20 ok  <- fault",
            "9-10 s      20 ok",
        ]);
    });
});
