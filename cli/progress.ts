// What `pi-cluster deploy` shows while the engine works: per Pi, the step running now and
// how long it has run, and how many of its steps are done; on a terminal as lines redrawn
// in place, otherwise one line per finished step. Pure but for the clock it is given.
import { EngineEvent } from "@pulumi/pulumi/automation";
import { hostOfStep } from "../scripts/bench/converge";

interface Running {
    step: string;
    op: string;
    since: number;
}

interface HostProgress {
    running: Running[];
    done: number;
    failed: number;
}

const STEP_PREFIXES = ["command:", "random:"];
const nameOf = (urn: string) => urn.split("::").pop()!;

export class ConvergeProgress {
    private readonly hosts = new Map<string, HostProgress>();
    private readonly started: number;

    /** `hosts`: the Pis' names (the stack's config), so a step is shown under its Pi. */
    constructor(
        private readonly hostNames: string[],
        private readonly now: () => number = Date.now,
    ) {
        this.started = now();
    }

    private host(name: string): HostProgress {
        let h = this.hosts.get(name);
        if (!h) this.hosts.set(name, (h = { running: [], done: 0, failed: 0 }));
        return h;
    }

    /**
     * Takes an engine event; returns the line to print for it when not on a terminal (a step
     * that finished or failed), else undefined.
     */
    onEvent(e: EngineEvent): string | undefined {
        const pre = e.resourcePreEvent?.metadata;
        const done = e.resOutputsEvent?.metadata ?? e.resOpFailedEvent?.metadata;
        const meta = pre ?? done;
        if (!meta || !STEP_PREFIXES.some((p) => meta.type.startsWith(p)) || meta.op === "same" || meta.op === "read") return undefined;
        const step = nameOf(meta.urn);
        const h = this.host(hostOfStep(this.hostNames, step));
        if (pre) {
            h.running.push({ step, op: pre.op, since: this.now() });
            return undefined;
        }
        const i = h.running.findIndex((r) => r.step === step);
        const ran = i >= 0 ? (this.now() - h.running[i].since) / 1000 : 0;
        if (i >= 0) h.running.splice(i, 1);
        const failed = !!e.resOpFailedEvent;
        if (failed) h.failed++;
        else h.done++;
        return `${this.elapsed()}  ${step} ${meta.op}${failed ? " FAILED" : " done"} (${ran.toFixed(1)} s)`;
    }

    /** Seconds since the start, as the lines show them. */
    elapsed(): string {
        return `${((this.now() - this.started) / 1000).toFixed(1).padStart(6)} s`;
    }

    /** One line per Pi that has done or is doing something: what runs now, and for how long. */
    lines(): string[] {
        const width = Math.max(0, ...[...this.hosts.keys()].map((h) => h.length));
        return [...this.hosts.entries()]
            .sort(([a], [b]) => a.localeCompare(b))
            .map(([name, h]) => {
                const now = h.running.map((r) => `${r.step.startsWith(`${name}-`) ? r.step.slice(name.length + 1) : r.step} ${r.op} ${((this.now() - r.since) / 1000).toFixed(0)} s`).join(", ");
                const counts = `${h.done} done${h.failed ? `, ${h.failed} failed` : ""}`;
                return `${name.padEnd(width)}  ${counts.padEnd(9)}  ${now || "-"}`;
            });
    }

    /** What finished, per Pi, for the summary. */
    summary(): Record<string, { done: number; failed: number }> {
        return Object.fromEntries([...this.hosts.entries()].map(([n, h]) => [n, { done: h.done, failed: h.failed }]));
    }
}
