// How verify reaches a Pi: one SSH connection per Pi (a ControlMaster), every step's check a
// session on it, SESSIONS_PER_PI at once, the results in the steps' order. The key and the
// pinned host key go to 0600 files in the caller's private directory; each script travels
// on its session's stdin.
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { HostResult, knownHostsLine, pinnedSshOptions, StackExport, stepResult, StepResult, stepsFromState, VerifyStep } from "./state";

/** What each session runs: the step's script, from stdin, with "verify" for "apply". */
export const VERIFY = "sudo bash -s -- verify";
/** A Pi's steps checked at once over its connection: under sshd's MaxSessions (10), and a Pi has 4 cores. */
export const SESSIONS_PER_PI = 4;

/** ssh's options for a Pi: its key and pinned host key only, and its connection's control socket. */
function sshOptions(step: VerifyStep, dir: string): string[] {
    const key = path.join(dir, `${step.host}.key`);
    const known = path.join(dir, `${step.host}.known_hosts`);
    if (!fs.existsSync(key)) {
        fs.writeFileSync(key, step.privateKey.endsWith("\n") ? step.privateKey : `${step.privateKey}\n`, { mode: 0o600 });
        fs.writeFileSync(known, `${knownHostsLine(step.address, step.port, step.hostKey)}\n`, { mode: 0o600 });
    }
    return [
        ...pinnedSshOptions({ port: step.port, keyFile: key, knownHostsFile: known, hostKey: step.hostKey, connectTimeoutSeconds: 10 }),
        "-o", `ControlPath=${path.join(dir, `${step.host}.sock`)}`,
    ];
}

/**
 * Opens the Pi's one connection (ssh -M -N) and resolves once its control socket is there,
 * with a stop function that closes it; or, when ssh gives up first (no answer, another host key), with its
 * exit status and what it said, for stepResult to name.
 */
function openConnection(step: VerifyStep, dir: string): Promise<{ stop: () => Promise<void> } | { code: number; out: string }> {
    const sock = path.join(dir, `${step.host}.sock`);
    const master = spawn("ssh", [...sshOptions(step, dir), "-M", "-N", "-o", "ControlMaster=yes", "-o", "ControlPersist=no", `${step.user}@${step.address}`], {
        stdio: ["ignore", "ignore", "pipe"],
    });
    let out = "";
    master.stderr.on("data", (d) => (out += d));
    const closed = new Promise<void>((resolve) => master.on("close", () => resolve()));
    return new Promise((resolve) => {
        let settled = false;
        const poll = setInterval(() => {
            if (settled || !fs.existsSync(sock)) return;
            settled = true;
            clearInterval(poll);
            // `ssh -O exit` asks the master to close over its socket, which ssh removes as it
            // exits (a SIGTERM was seen to leave it running).
            resolve({
                stop: () => {
                    const exit = spawn("ssh", [...sshOptions(step, dir), "-O", "exit", `${step.user}@${step.address}`], { stdio: "ignore" });
                    // No master listening any more to ask: end it outright.
                    exit.on("close", (code) => code === 0 || master.kill("SIGKILL"));
                    return closed;
                },
            });
        }, 20);
        master.on("close", (code) => {
            clearInterval(poll);
            if (!settled) {
                settled = true;
                resolve({ code: code ?? 255, out });
            }
        });
    });
}

/** One step's check, a session on the Pi's connection. */
function runStep(step: VerifyStep, dir: string, command: string): Promise<StepResult> {
    const args = [...sshOptions(step, dir), "-o", "ControlMaster=no", `${step.user}@${step.address}`, command];
    return new Promise((resolve) => {
        const p = spawn("ssh", args, { stdio: ["pipe", "pipe", "pipe"] });
        let out = "";
        p.stdout.on("data", (d) => (out += d));
        p.stderr.on("data", (d) => (out += d));
        p.on("close", (code) => resolve(stepResult(step.name, code ?? 255, out)));
        p.stdin.on("error", () => undefined);
        p.stdin.end(step.script);
    });
}

export interface VerifyHostOptions {
    /** What each session runs. Default VERIFY. */
    command?: string;
    /** Steps checked at once. Default SESSIONS_PER_PI. */
    sessions?: number;
}

/** Checks one Pi's steps (all of one host, in the state's order) over one connection. */
export async function verifyHost(steps: VerifyStep[], dir: string, opts: VerifyHostOptions = {}): Promise<HostResult> {
    const result: HostResult = { name: steps[0].host, address: steps[0].address, steps: [] };
    const connection = await openConnection(steps[0], dir);
    // The Pi itself is not there (or not the pinned one): its steps say nothing more.
    if ("code" in connection) {
        result.steps.push(stepResult(steps[0].name, connection.code, connection.out));
        return result;
    }
    try {
        const results: StepResult[] = new Array(steps.length);
        let next = 0;
        const worker = async () => {
            while (next < steps.length) {
                const i = next++;
                results[i] = await runStep(steps[i], dir, opts.command ?? VERIFY);
            }
        };
        await Promise.all(Array.from({ length: Math.min(opts.sessions ?? SESSIONS_PER_PI, steps.length) }, worker));
        result.steps = results;
    } finally {
        await connection.stop();
    }
    return result;
}

/**
 * Checks every Pi of an exported state (`pulumi stack export --show-secrets`), side by side,
 * from a private directory removed after.
 */
export async function verifyState(exported: StackExport): Promise<HostResult[]> {
    const byHost = new Map<string, VerifyStep[]>();
    for (const s of stepsFromState(exported)) byHost.set(s.host, [...(byHost.get(s.host) ?? []), s]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pi-cluster-verify-"));
    try {
        return await Promise.all([...byHost.values()].map((s) => verifyHost(s, dir)));
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}
