// Turns what scripts/bench/bench.lua wrote in wrk's done() into the figures of one bench
// run (what `scripts/bench.sh --json` writes), and decides the exit status. Pure: text and
// timings in, figures out; scripts/bench.sh runs wrk and the fault command.

/** Figures of one run, as --json writes them. Times are seconds since the stream started. */
export interface BenchFigures {
    url: string;
    /** Answered requests, whatever their status. */
    requests: number;
    /** Sent but never answered: in flight at the stop, or lost with their connection. wrk waits on a request that gets no answer and counts it in no other figure. */
    unanswered: number;
    durationSeconds: number;
    rps: number;
    /** Stopped by SIGINT/SIGTERM before --duration. */
    stoppedEarly: boolean;
    latencyMs: { p50: number; p90: number; p99: number; max: number };
    failed: {
        /** Socket errors plus answers with a failed status. */
        total: number;
        /** wrk's counters. A `timeout` is an answer slower than --timeout, so a slow 502 counts under both. */
        socket: SocketErrors;
        /** Count per failed HTTP status, e.g. {"502": 12}. */
        status: Record<string, number>;
    };
    /** 503 answers that carried a Retry-After header. */
    retryAfter503: number;
    /** One entry per second since the start, none left out. */
    perSecond: { t: number; ok: number; failed: number }[];
    fault: FaultFigures | null;
}

export interface SocketErrors {
    connect: number;
    read: number;
    write: number;
    timeout: number;
}

export interface FaultFigures {
    cmd: string;
    /** null: the stream stopped before the fault was due, so it never ran. */
    startedAt: number | null;
    endedAt: number | null;
    exitCode: number | null;
}

/** The figures bench.lua writes, as it writes them. */
export interface WrkFigures {
    requests: number;
    sent: number;
    durationUs: number;
    socket: SocketErrors;
    latencyUs: { p50: number; p90: number; p99: number; max: number };
    /** status -> count */
    statuses: Map<number, number>;
    retryAfter503: number;
    /** second since t0 -> status -> count */
    seconds: Map<number, Map<number, number>>;
}

/** The fault command as scripts/bench.sh ran it, in epoch milliseconds. */
export interface FaultRun {
    cmd: string;
    startedMs?: number;
    endedMs?: number;
    exitCode?: number;
}

export interface RunContext {
    url: string;
    /** When the stream started, epoch milliseconds (bench.lua's BENCH_T0_MS). */
    t0Ms: number;
    stoppedEarly: boolean;
    fault?: FaultRun;
}

/** A status that counts as failed: anything but 2xx and 3xx. */
export function isFailedStatus(status: number): boolean {
    return status < 200 || status >= 400;
}

const FIELDS: Record<string, number> = {
    requests: 1,
    sent: 1,
    duration_us: 1,
    socket: 4,
    latency_us: 4,
    status: 2,
    retry_after_503: 1,
    second: 3,
};
const ONCE = ["requests", "sent", "duration_us", "socket", "latency_us", "retry_after_503"];

/** Parses bench.lua's output: one `key n...` line per figure. Throws, naming the line, on anything else. */
export function parseWrkFigures(text: string): WrkFigures {
    const seen = new Map<string, number[]>();
    const statuses = new Map<number, number>();
    const seconds = new Map<number, Map<number, number>>();
    text.split("\n").forEach((line, i) => {
        if (line.trim() === "") return;
        const [key, ...rest] = line.trim().split(/\s+/);
        const where = `line ${i + 1} ("${line}")`;
        if (!(key in FIELDS)) throw new Error(`wrk figures: unknown key at ${where}`);
        if (rest.length !== FIELDS[key] || !rest.every((n) => /^\d+$/.test(n))) {
            throw new Error(`wrk figures: ${key} expects ${FIELDS[key]} whole number(s) at ${where}`);
        }
        const nums = rest.map(Number);
        if (key === "status") statuses.set(nums[0], nums[1]);
        else if (key === "second") {
            const at = seconds.get(nums[0]) ?? new Map<number, number>();
            at.set(nums[1], nums[2]);
            seconds.set(nums[0], at);
        } else seen.set(key, nums);
    });
    const missing = ONCE.filter((k) => !seen.has(k));
    if (missing.length) throw new Error(`wrk figures: no ${missing.join(", ")} (did wrk's done() run?)`);
    const get = (k: string) => seen.get(k)!;
    const [connect, read, write, timeout] = get("socket");
    const [p50, p90, p99, max] = get("latency_us");
    return {
        requests: get("requests")[0],
        sent: get("sent")[0],
        durationUs: get("duration_us")[0],
        socket: { connect, read, write, timeout },
        latencyUs: { p50, p90, p99, max },
        statuses,
        retryAfter503: get("retry_after_503")[0],
        seconds,
    };
}

const round = (n: number, places: number) => Number(n.toFixed(places));
const sinceStart = (ms: number | undefined, t0Ms: number) => (ms === undefined ? null : round((ms - t0Ms) / 1000, 3));

/** The run's figures from wrk's and the run's own record. */
export function benchFigures(wrk: WrkFigures, run: RunContext): BenchFigures {
    const durationSeconds = wrk.durationUs / 1e6;
    const status: Record<string, number> = {};
    for (const [code, n] of [...wrk.statuses].sort(([a], [b]) => a - b)) {
        if (isFailedStatus(code)) status[String(code)] = n;
    }
    const socketTotal = Object.values(wrk.socket).reduce((a, b) => a + b, 0);
    const statusTotal = Object.values(status).reduce((a, b) => a + b, 0);
    return {
        url: run.url,
        requests: wrk.requests,
        unanswered: Math.max(0, wrk.sent - wrk.requests),
        durationSeconds: round(durationSeconds, 3),
        rps: durationSeconds > 0 ? round(wrk.requests / durationSeconds, 1) : 0,
        stoppedEarly: run.stoppedEarly,
        latencyMs: {
            p50: round(wrk.latencyUs.p50 / 1000, 3),
            p90: round(wrk.latencyUs.p90 / 1000, 3),
            p99: round(wrk.latencyUs.p99 / 1000, 3),
            max: round(wrk.latencyUs.max / 1000, 3),
        },
        failed: { total: socketTotal + statusTotal, socket: { ...wrk.socket }, status },
        retryAfter503: wrk.retryAfter503,
        perSecond: perSecond(wrk.seconds, durationSeconds),
        fault: run.fault
            ? {
                  cmd: run.fault.cmd,
                  startedAt: sinceStart(run.fault.startedMs, run.t0Ms),
                  endedAt: sinceStart(run.fault.endedMs, run.t0Ms),
                  exitCode: run.fault.exitCode ?? null,
              }
            : null,
    };
}

/**
 * Every second from 0 to the end, so a second with no answer at all shows as 0/0. A last
 * second the run spent less than half of is left out unless it has answers: it would look
 * like a stall.
 */
function perSecond(seconds: Map<number, Map<number, number>>, durationSeconds: number): BenchFigures["perSecond"] {
    const last = Math.max(Math.round(durationSeconds) - 1, ...seconds.keys());
    const out: BenchFigures["perSecond"] = [];
    for (let t = 0; t <= last; t++) {
        let ok = 0;
        let failed = 0;
        for (const [code, n] of seconds.get(t) ?? []) {
            if (isFailedStatus(code)) failed += n;
            else ok += n;
        }
        out.push({ t, ok, failed });
    }
    return out;
}

export const EXIT_OK = 0;
export const EXIT_TOO_FEW_REQUESTS = 2;
export const EXIT_FAULT_FAILED = 3;

/** The bench's exit status and why. Failed requests are data, not an error. A failed fault wins over too few requests. */
export function verdict(figures: BenchFigures, minRequests?: number): { code: number; problems: string[] } {
    const problems: string[] = [];
    let code = EXIT_OK;
    if (minRequests !== undefined && figures.requests < minRequests) {
        problems.push(`only ${figures.requests} requests were answered, fewer than --min-requests ${minRequests}`);
        code = EXIT_TOO_FEW_REQUESTS;
    }
    const exit = figures.fault?.exitCode;
    if (exit !== null && exit !== undefined && exit !== 0) {
        problems.push(`the fault command exited ${exit}: ${figures.fault!.cmd}`);
        code = EXIT_FAULT_FAILED;
    }
    return { code, problems };
}
