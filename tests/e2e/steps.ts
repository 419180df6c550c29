// Runs the cluster's steps on the lab without the Pulumi engine: the program is evaluated
// with Pulumi's mocks only to read each step's inputs (the exact command, stdin and upload
// it would send) and its dependsOn; each step then runs for real over SSH, in dependency
// order, as pulumi-command would run it. This proves the scripts on real (simulated) Pis
// while the command provider plugin cannot be built here; it does not replace
// tests/e2e/cluster.test.ts, which drives the real engine.
import * as crypto from "crypto";
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { installMocks, promiseOf, recorder, settle } from "../unit/helpers";
import { LAB, REPO } from "./lib";

export interface Step {
    name: string;
    kind: "command" | "copy";
    host: string;
    create?: string;
    delete?: string;
    stdin?: string;
    file?: string;
    remotePath?: string;
    deps: string[];
}

export interface StepResult {
    name: string;
    out: string;
    seconds: number;
}

/** The stack config the lab wrote, as `pulumi config` would hand it to the program. */
export function labConfig(): Record<string, unknown> {
    const doc = yaml.load(fs.readFileSync(path.join(REPO, "Pulumi.lab.yaml"), "utf8")) as { config: Record<string, unknown> };
    return Object.fromEntries(Object.entries(doc.config).map(([k, v]) => [k.replace(/^pi-cluster:/, ""), v]));
}

export function newPassword(): string {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    return Array.from(crypto.randomBytes(32), (b) => alphabet[b % alphabet.length]).join("");
}

/** Evaluates the program for `raw` config and returns its steps in a valid order. */
export async function planSteps(raw: Record<string, unknown>, password: string): Promise<Step[]> {
    const recorded = installMocks(password);
    const mod = await import("../../components");
    const config = mod.parseConfig(raw);
    const cluster = new mod.PiCluster("pi-cluster", { config, artifacts: mod.buildClusterArtifacts() }, { transformations: [recorder(recorded)] });
    await promiseOf(cluster.webServers);
    await settle(recorded);
    const hosts = new Map<string, string>();
    for (const key of ["loadBalancer", "database"]) {
        const h = raw[key] as { name: string; address: string };
        hosts.set(h.address, h.name);
    }
    for (const h of raw.webServers as { name: string; address: string }[]) hosts.set(h.address, h.name);
    const steps: Step[] = [];
    for (const r of recorded.values()) {
        if (r.type !== "command:remote:Command" && r.type !== "command:remote:CopyToRemote") continue;
        const host = hosts.get(r.inputs.connection.host)!;
        if (r.type === "command:remote:Command") {
            steps.push({ name: r.name, kind: "command", host, create: r.inputs.create, delete: r.inputs.delete, stdin: r.inputs.stdin, deps: r.dependsOn });
        } else {
            // A FileAsset; its path is a promise.
            const file = await (r.inputs.source as { path: Promise<string> }).path;
            steps.push({ name: r.name, kind: "copy", host, file, remotePath: r.inputs.remotePath, deps: r.dependsOn });
        }
    }
    return order(steps);
}

function order(steps: Step[]): Step[] {
    const byName = new Map(steps.map((s) => [s.name, s]));
    const done = new Set<string>();
    const out: Step[] = [];
    const visit = (s: Step, stack: string[]) => {
        if (done.has(s.name)) return;
        if (stack.includes(s.name)) throw new Error(`dependency cycle: ${[...stack, s.name].join(" -> ")}`);
        for (const d of s.deps) {
            const dep = byName.get(d);
            if (!dep) throw new Error(`${s.name} depends on unknown ${d}`);
            visit(dep, [...stack, s.name]);
        }
        done.add(s.name);
        out.push(s);
    };
    for (const s of steps) visit(s, []);
    return out;
}

function sshStep(host: string, command: string, input: Buffer | string | undefined): Promise<{ status: number; out: string }> {
    return new Promise((resolve) => {
        const child = spawn(LAB, ["ssh", host, command], { stdio: ["pipe", "pipe", "pipe"] });
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (out += d));
        child.on("close", (code) => resolve({ status: code ?? -1, out }));
        child.stdin.end(input ?? "");
    });
}

async function runOne(step: Step, action: "create" | "delete"): Promise<StepResult> {
    const started = Date.now();
    let r: { status: number; out: string };
    if (step.kind === "copy") {
        if (action === "delete") return { name: step.name, out: "", seconds: 0 };
        r = await sshStep(step.host, `cat > ${step.remotePath}.tmp && mv ${step.remotePath}.tmp ${step.remotePath}`, fs.readFileSync(step.file!));
    } else {
        const command = action === "create" ? step.create : step.delete;
        if (!command) return { name: step.name, out: "", seconds: 0 };
        r = await sshStep(step.host, command, step.stdin);
    }
    if (r.status !== 0) throw new Error(`${step.name} (${action}) on ${step.host} exited ${r.status}:\n${r.out}`);
    return { name: step.name, out: r.out, seconds: (Date.now() - started) / 1000 };
}

/**
 * Runs the steps as the engine would: each as soon as everything it depends on is done,
 * in parallel otherwise; "delete" runs in reverse dependency order.
 */
export async function runSteps(steps: Step[], action: "create" | "delete" = "create"): Promise<StepResult[]> {
    const names = new Set(steps.map((s) => s.name));
    const waitsOn = new Map<string, string[]>();
    for (const s of steps) {
        const deps = s.deps.filter((d) => names.has(d));
        if (action === "create") waitsOn.set(s.name, deps);
        else {
            waitsOn.set(s.name, waitsOn.get(s.name) ?? []);
            for (const d of deps) waitsOn.set(d, [...(waitsOn.get(d) ?? []), s.name]);
        }
    }
    const results: StepResult[] = [];
    const finished = new Map<string, Promise<void>>();
    const byName = new Map(steps.map((s) => [s.name, s]));
    const start = (name: string): Promise<void> => {
        let p = finished.get(name);
        if (!p) {
            p = Promise.all((waitsOn.get(name) ?? []).map(start)).then(async () => {
                results.push(await runOne(byName.get(name)!, action));
            });
            finished.set(name, p);
        }
        return p;
    };
    await Promise.all(steps.map((s) => start(s.name)));
    return results;
}

/** Lines in which a step says it changed something (scripts log every change they make). */
export function changesIn(results: StepResult[]): string[] {
    const marker = /\] (updated |removed |installing |refreshing |switched |created user|firewall loaded|nginx reloaded|app started|app reloaded|mariadb started|mariadb restarted|max_connections set|applying migration|dropping |PM2 upgraded)/;
    return results.flatMap((r) => r.out.split("\n").filter((l) => marker.test(l)).map((l) => `${r.name}: ${l.trim()}`));
}
