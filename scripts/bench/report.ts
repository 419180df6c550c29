// The human-readable report of a bench run (figures.ts): totals, latency, failed requests
// by kind, the fault, and a compact timeline of failures per second since the start.
// Pure: figures in, text out.
import { BenchFigures } from "./figures";

const LABEL = 14;
const line = (label: string, value: string) => `${label.padEnd(LABEL)}${value}`.trimEnd();
const seconds = (s: number) => `${s.toFixed(2)} s`;

export function renderReport(f: BenchFigures): string {
    const { socket } = f.failed;
    const out = [
        line("Bench", f.url),
        line("Requests", `${f.requests} in ${seconds(f.durationSeconds)}, ${f.rps.toFixed(1)} req/s${f.stoppedEarly ? " (stopped early by a signal)" : ""}`),
        line("Latency ms", `p50 ${ms(f.latencyMs.p50)}  p90 ${ms(f.latencyMs.p90)}  p99 ${ms(f.latencyMs.p99)}  max ${ms(f.latencyMs.max)}`),
        line("Failed", `${f.failed.total}`),
        line("  socket", `connect ${socket.connect}  read ${socket.read}  write ${socket.write}  timeout ${socket.timeout}`),
        ...Object.entries(f.failed.status).map(([code, n]) =>
            line(`  HTTP ${code}`, `${n}${code === "503" ? ` (${f.retryAfter503} with Retry-After)` : ""}`),
        ),
        line("Unanswered", `${f.unanswered} (sent, no answer by the stop)`),
    ];
    if (f.fault) out.push(line("Fault", faultText(f.fault)));
    out.push(line("Timeline", "seconds since the start: answers ok, failed"), ...timeline(f).map((l) => `  ${l}`));
    return `${out.join("\n")}\n`;
}

function ms(n: number): string {
    return n.toFixed(n < 10 ? 2 : 1);
}

function faultText(fault: NonNullable<BenchFigures["fault"]>): string {
    if (fault.startedAt === null) return `did not run (stopped before it was due): ${fault.cmd}`;
    const end = fault.endedAt === null ? "still running" : `to ${seconds(fault.endedAt)}, exit ${fault.exitCode}`;
    return `${seconds(fault.startedAt)} ${end}: ${fault.cmd}`;
}

interface Segment {
    from: number;
    to: number;
    ok: number;
    failed: number;
}

/**
 * Seconds in runs: a run of seconds with only ok answers is one line, so is a run with no
 * answer at all; a second with failures has a line of its own. The seconds the fault ran
 * in are runs of their own, marked.
 */
export function timeline(f: BenchFigures): string[] {
    const fault = f.fault?.startedAt != null ? { from: f.fault.startedAt, to: f.fault.endedAt ?? Infinity } : null;
    const inFault = (t: number) => fault !== null && fault.from < t + 1 && fault.to >= t;
    const kind = (s: { ok: number; failed: number }) => (s.failed > 0 ? "failed" : s.ok > 0 ? "ok" : "none");
    const segments: Segment[] = [];
    for (const s of f.perSecond) {
        const last = segments[segments.length - 1];
        if (last && kind(s) !== "failed" && kind(last) === kind(s) && inFault(last.to) === inFault(s.t)) {
            last.to = s.t;
            last.ok += s.ok;
        } else {
            segments.push({ from: s.t, to: s.t, ok: s.ok, failed: s.failed });
        }
    }
    return segments.map((s) => {
        const when = s.from === s.to ? `${s.from} s` : `${s.from}-${s.to} s`;
        const what = kind(s) === "none" ? "no answers" : `${s.ok} ok${s.failed ? `, ${s.failed} failed` : ""}`;
        return `${when.padEnd(LABEL - 2)}${what}${inFault(s.from) ? "  <- fault" : ""}`;
    });
}
