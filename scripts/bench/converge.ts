// The converge report (issue 19): where a `pulumi up` spent its time, from the engine's event
// log (when each step started and ended) and the stack's state (what each step waited for,
// its dependencies). For each Pi, its critical path: the chain of steps, each after the one
// it waited for longest, that ended with the Pi's last step. Then the time by step kind over
// all Pis, and the slowest steps. Pure but for the command line at the bottom.
// Usage: node -r sucrase/register/ts scripts/bench/converge.ts EVENTS.jsonl STATE.json
//   EVENTS.jsonl  `pulumi up --event-log` (PULUMI_DEBUG_COMMANDS=true), one event a line;
//                 only the metadata of resource events is read
//   STATE.json    `pulumi stack export` after that up (no secrets needed)
import * as fs from "fs";

export interface ConvergeEvent {
    timestamp: number;
    resourcePreEvent?: { metadata: { op: string; urn: string; type: string } };
    resOutputsEvent?: { metadata: { op: string; urn: string; type: string } };
    resOpFailedEvent?: { metadata: { op: string; urn: string; type: string } };
}

export interface StateExport {
    deployment: { resources?: { urn: string; dependencies?: string[] }[] };
}

/** One step of the run: seconds from the run's first step. */
export interface Span {
    name: string;
    urn: string;
    op: string;
    start: number;
    end: number;
    failed: boolean;
}

/** A step on a critical path, with the step it waited for (undefined for the first). */
export interface PathStep extends Span {
    after?: string;
}

export interface ConvergeReport {
    /** Seconds from the first step's start to the last step's end. */
    seconds: number;
    steps: number;
    /** By Pi (the step name's prefix), in the order of their last end. */
    paths: { host: string; end: number; steps: PathStep[] }[];
    /** Seconds of steps by kind (the name without its Pi), the largest first. */
    byKind: { kind: string; seconds: number; steps: number }[];
}

const nameOf = (urn: string) => urn.split("::").pop()!;

/**
 * The Pi a step belongs to by its name: the longest of `hosts` it starts with (so
 * pi-db-read1's steps are not pi-db's), or "cluster" for a step named after no Pi.
 */
export function hostOfStep(hosts: string[], step: string): string {
    let best = "";
    for (const h of hosts) if (step.startsWith(`${h}-`) && h.length > best.length) best = h;
    return best || "cluster";
}
const isStep = (type: string) => !type.startsWith("pi-cluster:") && !type.startsWith("pulumi:");

/** The steps of a run that did something (create, update, replace, delete), from its events. */
export function spansOf(events: ConvergeEvent[]): Span[] {
    const starts = new Map<string, { op: string; at: number }>();
    const spans: Span[] = [];
    for (const e of events) {
        const pre = e.resourcePreEvent?.metadata;
        if (pre && isStep(pre.type) && pre.op !== "same" && pre.op !== "read") starts.set(`${pre.op} ${pre.urn}`, { op: pre.op, at: e.timestamp });
        const done = e.resOutputsEvent?.metadata ?? e.resOpFailedEvent?.metadata;
        const started = done && starts.get(`${done.op} ${done.urn}`);
        if (done && started) {
            spans.push({ name: nameOf(done.urn), urn: done.urn, op: done.op, start: started.at, end: e.timestamp, failed: !e.resOutputsEvent });
            starts.delete(`${done.op} ${done.urn}`);
        }
    }
    const t0 = Math.min(...spans.map((s) => s.start));
    return spans.map((s) => ({ ...s, start: s.start - t0, end: s.end - t0 }));
}

/**
 * The report. `hosts` are the Pis' names (the stack's `nodes` output), longest first when
 * matching, so pi-db-read1's steps are not pi-db's; a step named after no Pi is the cluster's.
 */
export function convergeReport(events: ConvergeEvent[], state: StateExport, hosts: string[]): ConvergeReport {
    const spans = spansOf(events);
    const byUrn = new Map(spans.map((s) => [s.urn, s]));
    const deps = new Map((state.deployment.resources ?? []).map((r) => [r.urn, r.dependencies ?? []]));
    const hostOf = (step: string) => hostOfStep(hosts, step);

    const pathTo = (last: Span): PathStep[] => {
        const chain: PathStep[] = [];
        let at: Span | undefined = last;
        const seen = new Set<string>();
        while (at && !seen.has(at.urn)) {
            seen.add(at.urn);
            const waited: Span | undefined = (deps.get(at.urn) ?? [])
                .map((u) => byUrn.get(u))
                .filter((s): s is Span => s !== undefined)
                .sort((a, b) => b.end - a.end)[0];
            chain.unshift({ ...at, after: waited?.name });
            at = waited;
        }
        return chain;
    };

    const lastByHost = new Map<string, Span>();
    for (const s of spans) {
        const h = hostOf(s.name);
        const last = lastByHost.get(h);
        if (!last || s.end > last.end) lastByHost.set(h, s);
    }
    const paths = [...lastByHost.entries()]
        .map(([host, last]) => ({ host, end: last.end, steps: pathTo(last) }))
        .sort((a, b) => b.end - a.end || a.host.localeCompare(b.host));

    const kinds = new Map<string, { seconds: number; steps: number }>();
    for (const s of spans) {
        const h = hostOf(s.name);
        const kind = h === "cluster" ? s.name : s.name.slice(h.length + 1);
        const k = kinds.get(kind) ?? { seconds: 0, steps: 0 };
        k.seconds += s.end - s.start;
        k.steps += 1;
        kinds.set(kind, k);
    }
    const byKind = [...kinds.entries()].map(([kind, k]) => ({ kind, ...k })).sort((a, b) => b.seconds - a.seconds || a.kind.localeCompare(b.kind));
    return { seconds: spans.length ? Math.max(...spans.map((s) => s.end)) : 0, steps: spans.length, paths, byKind };
}

/** The report as text: each Pi's critical path, then the time by step kind. */
export function renderConvergeReport(r: ConvergeReport, title = "converge"): string {
    const out = [`${title}: ${r.steps} steps in ${r.seconds} s (engine event times, 1 s resolution)`];
    for (const p of r.paths) {
        out.push(`${p.host}: last step done at ${p.end} s; its critical path:`);
        for (const s of p.steps) {
            const span = `${String(s.start).padStart(5)} -> ${String(s.end).padStart(4)} s`;
            out.push(`  ${span}  ${s.name} ${s.op}${s.failed ? " FAILED" : ""} (${s.end - s.start} s)${s.after ? `, after ${s.after}` : ""}`);
        }
    }
    const total = r.byKind.reduce((n, k) => n + k.seconds, 0);
    out.push(`step time by kind, all Pis (${total} s of steps; they overlap):`);
    for (const k of r.byKind.filter((x) => x.seconds > 0)) {
        out.push(`  ${k.kind.padEnd(34)} ${String(k.seconds).padStart(5)} s  ${String(Math.round((100 * k.seconds) / Math.max(total, 1))).padStart(3)} %  in ${k.steps} step${k.steps === 1 ? "" : "s"}`);
    }
    return `${out.join("\n")}\n`;
}

/** Parses an event log (one JSON event a line; blank lines ignored). */
export function parseEventLog(text: string): ConvergeEvent[] {
    return text
        .split("\n")
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as ConvergeEvent);
}

/** The Pis' names from a state export: the stack's `nodes` output. */
export function hostsOf(state: StateExport): string[] {
    const stack = (state.deployment.resources ?? []).find((r) => (r as { type?: string }).type === "pulumi:pulumi:Stack") as { outputs?: { nodes?: { name: string }[] } } | undefined;
    return (stack?.outputs?.nodes ?? []).map((n) => n.name);
}

if (require.main === module) {
    const [eventsFile, stateFile] = process.argv.slice(2);
    if (!eventsFile || !stateFile) {
        process.stderr.write("usage: converge.ts EVENTS.jsonl STATE.json\n");
        process.exit(2);
    }
    const state = JSON.parse(fs.readFileSync(stateFile, "utf8")) as StateExport;
    process.stdout.write(renderConvergeReport(convergeReport(parseEventLog(fs.readFileSync(eventsFile, "utf8")), state, hostsOf(state))));
}
