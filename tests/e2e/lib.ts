// Helpers for the end-to-end tests: drive the real lab, the real Pulumi engine and real
// HTTP through the load balancer. Nothing here is mocked.
import { spawn, spawnSync, SpawnSyncReturns } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { convergeReport, hostsOf, renderConvergeReport, StateExport } from "../../scripts/bench/converge";

export const REPO = path.join(__dirname, "..", "..");
export const LAB = path.join(REPO, "lab", "lab");
export const OUT = path.join(REPO, "test-output");
export const LB = "10.254.0.121";
export const LB_URL = `http://${LB}`;

/** Runs a command, throwing with its output when it fails. */
export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; allowFail?: boolean } = {}): SpawnSyncReturns<string> {
    const r = spawnSync(cmd, args, {
        cwd: opts.cwd ?? REPO,
        env: opts.env ?? process.env,
        input: opts.input,
        encoding: "utf8",
        maxBuffer: 256 * 1024 * 1024,
    });
    if (!opts.allowFail && r.status !== 0) {
        throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
    }
    return r;
}

export function lab(...args: string[]): string {
    return run(LAB, args).stdout;
}

/** Runs a command on a lab host as pi; returns exit status and output. */
export function onHost(host: string, command: string, input?: string): { status: number; out: string } {
    const r = run(LAB, ["ssh", host, command], { allowFail: true, input });
    return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

export function pulumi(args: string[], opts: { allowFail?: boolean; cwd?: string } = {}): SpawnSyncReturns<string> {
    return run("pulumi", [...args, "--stack", "lab", "--non-interactive"], { allowFail: opts.allowFail, cwd: opts.cwd });
}

let token: string | undefined;

/**
 * The bearer token API writes need, read once from the lab stack's secret output. It stays
 * in this process: never in an argument, a log line or a test name.
 */
export function writeToken(): string {
    token ??= pulumi(["stack", "output", "--show-secrets", "apiWriteToken"]).stdout.trim();
    if (!token) throw new Error("the lab stack has no apiWriteToken output: run `pulumi up` first");
    return token;
}

/** The headers of a JSON write through the LB. */
export function writeHeaders(): Record<string, string> {
    return { "content-type": "application/json", authorization: `Bearer ${writeToken()}` };
}

/**
 * A stack on a throwaway file backend, for previews that need no lab: the pinned CLI and
 * language host, an empty passphrase (no secret is set), and a config file per preview.
 * `init` in a before hook, `remove` in an after hook (it also deletes the stack's
 * Pulumi.<stack>.yaml, which `stack init` writes into the repo).
 */
export function throwawayStack(prefix: string): {
    dir: string;
    name: string;
    /** Runs pulumi on the stack with the config given; allowFail: the status is the caller's. */
    preview(config: Record<string, unknown>, extraArgs?: string[]): { status: number | null; out: string };
    init(): void;
    remove(): void;
} {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pi-${prefix}-`));
    const stack = `${prefix}-${process.pid}`;
    const env = { ...process.env, PULUMI_BACKEND_URL: `file://${dir}/state`, PULUMI_CONFIG_PASSPHRASE: "", PULUMI_SKIP_UPDATE_CHECK: "true", NO_COLOR: "1" };
    return {
        dir,
        name: stack,
        preview(config, extraArgs = []) {
            const file = path.join(dir, "config.yaml");
            // JSON is YAML: the stack file Pulumi reads.
            const entries = Object.entries(config).map(([k, v]) => [`pi-cluster:${k}`, v]);
            fs.writeFileSync(file, JSON.stringify({ config: Object.fromEntries(entries) }));
            const r = run("pulumi", ["preview", "--stack", stack, "--config-file", file, ...extraArgs, "--non-interactive", "--color", "never"], { env, allowFail: true });
            return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
        },
        init() {
            fs.mkdirSync(path.join(dir, "state"));
            run("pulumi", ["stack", "init", stack, "--non-interactive"], { env, cwd: REPO });
        },
        remove() {
            run("pulumi", ["stack", "rm", "--yes", "--force", stack, "--non-interactive"], { env, allowFail: true });
            fs.rmSync(dir, { recursive: true, force: true });
        },
    };
}

export function setConfig(key: string, value: string): void {
    pulumi(["config", "set", key, value]);
}

export function removeConfig(key: string): void {
    pulumi(["config", "rm", key]);
}

export interface EngineEvent {
    sequence: number;
    timestamp: number;
    resourcePreEvent?: { metadata: { op: string; urn: string; type: string } };
    resOutputsEvent?: { metadata: { op: string; urn: string; type: string } };
    resOpFailedEvent?: { metadata: { op: string; urn: string; type: string } };
}

export interface UpResult {
    /** pulumi's exit status. */
    status: number;
    /** Its stdout and stderr, as a user would see them. */
    output: string;
    seconds: number;
    events: EngineEvent[];
    /** op -> resource names (the last URN segment), for custom resources only. */
    changes: Record<string, string[]>;
}

/**
 * `pulumi up` with an engine event log, so the test sees what changed and when.
 *
 * The raw event log holds secrets in plaintext (the SDK's debug diagnostics echo every
 * RegisterResource response), so it is written to a private temp dir, reduced to the
 * metadata the tests read, and deleted; only the reduced copy lands in test-output/.
 * `--event-log` exists only with PULUMI_DEBUG_COMMANDS=true.
 */
/** `npx pi-cluster recover ARGS...` as a command for `up` (its flags appended there). */
export function recoverCommand(...args: string[]): string[] {
    return ["node", path.join(REPO, "cli", "pi-cluster.js"), "recover", ...args];
}

export function up(label: string, opts: { allowFail?: boolean; command?: string[] } = {}): UpResult {
    const { dir, log, cmd, args, env } = upCommand(opts);
    const started = Date.now();
    try {
        const r = run(cmd, args, { env, allowFail: true });
        return upResult(label, opts, started, log, r.status, r.stdout, r.stderr);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/**
 * `up` without blocking this process: what runs in it meanwhile (a writer loop, a poller)
 * goes on during the engine's run.
 */
export async function upAsync(label: string, opts: { allowFail?: boolean; command?: string[] } = {}): Promise<UpResult> {
    const { dir, log, cmd, args, env } = upCommand(opts);
    const started = Date.now();
    try {
        const child = spawn(cmd, args, { cwd: REPO, env });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
        child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        const status = await new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
        return upResult(label, opts, started, log, status, stdout, stderr);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

function upCommand(opts: { command?: string[] }): { dir: string; log: string; cmd: string; args: string[]; env: NodeJS.ProcessEnv } {
    fs.mkdirSync(OUT, { recursive: true });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pi-cluster-events-"));
    const log = path.join(dir, "events.jsonl");
    // `command` is a CLI command that runs pulumi up itself (recoverCommand): it takes the
    // stack and the event log, and runs up as the Automation API does (--yes --skip-preview).
    const [cmd, ...args] = opts.command
        ? [...opts.command, "--event-log", log, "--stack", "lab"]
        : ["pulumi", "up", "--yes", "--skip-preview", "--event-log", log, "--stack", "lab", "--non-interactive"];
    return { dir, log, cmd, args, env: { ...process.env, PULUMI_DEBUG_COMMANDS: "true" } };
}

function upResult(label: string, opts: { allowFail?: boolean }, started: number, log: string, status: number | null, stdout: string, stderr: string): UpResult {
    const seconds = (Date.now() - started) / 1000;
    const output = `${stdout}\n${stderr}`;
    fs.writeFileSync(path.join(OUT, `up-${label}.log`), output);
    const parsed = readEvents(log);
    fs.writeFileSync(path.join(OUT, `events-${label}.jsonl`), parsed.events.map((e) => JSON.stringify(e)).join("\n") + "\n");
    if (status !== 0 && !opts.allowFail) {
        throw new Error(`pulumi up (${label}) failed:\n${stdout.slice(-6000)}\n${stderr.slice(-3000)}`);
    }
    return { status: status ?? -1, output, seconds, ...parsed };
}

/**
 * The converge report (scripts/bench/converge.ts) of the up labelled `label`: each Pi's
 * critical path and the time by step kind, from its events and the state after it. Printed,
 * and kept as test-output/converge-LABEL.txt.
 */
export function convergeReportOf(label: string, events: EngineEvent[]): string {
    const state = JSON.parse(pulumi(["stack", "export"]).stdout) as StateExport;
    const text = renderConvergeReport(convergeReport(events, state, hostsOf(state)), label);
    fs.writeFileSync(path.join(OUT, `converge-${label}.txt`), text);
    process.stdout.write(text);
    return text;
}

/** Reads an engine event log, keeping only the metadata of resource events. */
export function readEvents(log: string): { events: EngineEvent[]; changes: Record<string, string[]> } {
    const meta = (m?: { op: string; urn: string; type: string }) => (m ? { metadata: { op: m.op, urn: m.urn, type: m.type } } : undefined);
    const events: EngineEvent[] = (fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as EngineEvent)
        .filter((e) => e.resourcePreEvent || e.resOutputsEvent || e.resOpFailedEvent)
        .map((e) => ({
            sequence: e.sequence,
            timestamp: e.timestamp,
            resourcePreEvent: meta(e.resourcePreEvent?.metadata),
            resOutputsEvent: meta(e.resOutputsEvent?.metadata),
            resOpFailedEvent: meta(e.resOpFailedEvent?.metadata),
        }));
    const changes: Record<string, string[]> = {};
    for (const e of events) {
        const m = e.resourcePreEvent?.metadata;
        if (!m || m.type.startsWith("pi-cluster:") || m.type.startsWith("pulumi:")) continue;
        (changes[m.op] ??= []).push(m.urn.split("::").pop()!);
    }
    for (const k of Object.keys(changes)) changes[k].sort();
    delete changes.same;
    return { events, changes };
}

/** The engine sequence numbers at which `name` started and finished an operation. */
export function opSpan(events: EngineEvent[], op: string, name: string): { start: number; end: number } {
    const is = (m?: { op: string; urn: string }) => m?.op === op && m.urn.endsWith(`::${name}`);
    const start = events.find((e) => is(e.resourcePreEvent?.metadata));
    const end = events.find((e) => is(e.resOutputsEvent?.metadata));
    if (!start || !end) throw new Error(`no ${op} of ${name} in this run`);
    return { start: start.sequence, end: end.sequence };
}

/** Seconds between the first and the last engine event of resources whose name starts with `prefix-`. */
export function hostShare(events: EngineEvent[], prefix: string): number {
    const ts = events
        .filter((e) => {
            const m = e.resourcePreEvent?.metadata ?? e.resOutputsEvent?.metadata;
            return m && !m.type.startsWith("pi-cluster:") && m.urn.split("::").pop()!.startsWith(`${prefix}-`);
        })
        .map((e) => e.timestamp);
    return ts.length ? Math.max(...ts) - Math.min(...ts) : 0;
}

/**
 * One HTTP request on a connection of its own (Connection: close). A kept-alive connection
 * would be closed by the LB at its next reload (every drain and admit reloads nginx), and
 * the next request on it would fail in the client, not in the cluster.
 */
export async function http(
    url: string,
    init: RequestInit & { timeoutMs?: number } = {},
): Promise<{ status: number; body: string; json: () => any; headers: Headers }> {
    const headers = new Headers(init.headers);
    headers.set("connection", "close");
    const res = await fetch(url, { ...init, headers, signal: AbortSignal.timeout(init.timeoutMs ?? 10000) });
    const body = await res.text();
    return { status: res.status, body, headers: res.headers, json: () => JSON.parse(body) };
}

/**
 * Whether a TCP connect from this machine to host:port completes within `ms`, with what the
 * connect said and how long it took, for a failure's message.
 */
export function tcpProbeFromMachine(host: string, port: number, ms = 2000): { open: boolean; detail: string } {
    const started = Date.now();
    const r = spawnSync("timeout", [String(ms / 1000), "bash", "-c", `exec 3<>/dev/tcp/${host}/${port}`], { encoding: "utf8" });
    const said = r.status === 124 ? "no answer (timed out)" : (r.stderr.trim().split("\n").pop() ?? "");
    return { open: r.status === 0, detail: `${host}:${port} exit ${r.status} after ${Date.now() - started} ms${said ? `: ${said}` : ""}` };
}

/** True when a TCP connect from a lab host to host:port completes. */
export function tcpOpenFromHost(from: string, host: string, port: number): boolean {
    return onHost(from, `timeout 2 bash -c 'exec 3<>/dev/tcp/${host}/${port}'`).status === 0;
}
