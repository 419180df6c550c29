// The pure half of scripts/verify.sh: which step runs on which Pi, read from the stack's
// state, and the report of what the Pis said. The desired state is exactly what the last
// `pulumi up` applied: each remote step's script (its stdin), which also knows how to
// check, read-only, that the Pi still holds what it installed (`bash -s -- verify`).
import { APPLY } from "../../components/remote";

/** One remote step, as the state holds it, with its script and how to reach its Pi. */
export interface VerifyStep {
    /** The step's resource name, e.g. pi-lb-nginx-conf. */
    name: string;
    /** The Pi it runs on (by the stack's `nodes` output), e.g. pi-lb. */
    host: string;
    address: string;
    port: number;
    user: string;
    privateKey: string;
    hostKey: string;
    script: string;
}

interface StateResource {
    urn: string;
    type: string;
    inputs?: Record<string, unknown>;
    outputs?: Record<string, unknown>;
}

export interface StackExport {
    deployment: { resources?: StateResource[] };
}

// `pulumi stack export --show-secrets` writes a secret as {<sig>: ..., plaintext: JSON}.
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

/** A value with every secret in it opened (the export was made with --show-secrets). */
export function opened(v: unknown): any {
    if (Array.isArray(v)) return v.map(opened);
    if (v && typeof v === "object") {
        const o = v as Record<string, unknown>;
        if (SECRET_SIG in o) {
            if (typeof o.plaintext !== "string") throw new Error("the state holds encrypted secrets: export it with --show-secrets");
            return opened(JSON.parse(o.plaintext));
        }
        return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, opened(x)]));
    }
    return v;
}

/**
 * The remote steps of the state, in its (dependency) order, each with its Pi. Only the
 * steps that run a rendered script (`sudo bash -s -- apply`) are checked: the wait-for-SSH
 * probe and the uploads hold nothing of their own that a later step does not check.
 */
export function stepsFromState(exported: StackExport): VerifyStep[] {
    const resources = exported.deployment.resources ?? [];
    const stack = resources.find((r) => r.type === "pulumi:pulumi:Stack");
    const nodes = opened(stack?.outputs?.nodes) as { name: string; address: string }[] | undefined;
    if (!nodes?.length) throw new Error("the stack has no `nodes` output: run `pulumi up` first");
    const byAddress = new Map(nodes.map((n) => [n.address, n.name]));
    const steps: VerifyStep[] = [];
    for (const r of resources) {
        if (r.type !== "command:remote:Command" || r.inputs?.create !== APPLY) continue;
        const name = r.urn.split("::").pop()!;
        const inputs = opened(r.inputs) as { connection?: Record<string, unknown>; stdin?: string };
        const c = inputs.connection ?? {};
        const address = String(c.host ?? "");
        const host = byAddress.get(address);
        if (!host) throw new Error(`${name} runs on ${address || "no address"}, which no node of the stack has`);
        if (typeof c.privateKey !== "string" || typeof c.hostKey !== "string") {
            throw new Error(`${name}: its connection has no private key or no pinned host key in the state`);
        }
        steps.push({
            name,
            host,
            address,
            port: Number(c.port ?? 22),
            user: String(c.user ?? "pi"),
            privateKey: c.privateKey,
            hostKey: c.hostKey,
            script: String(inputs.stdin ?? ""),
        });
    }
    return steps;
}

export { knownHostsLine } from "../../components/render/sshd";

/**
 * ssh's options for a pinned connection to a Pi: no ssh_config, this key only, and the Pi's
 * pinned host key only (its own known_hosts file, its key type), never a prompt.
 */
export function pinnedSshOptions(o: { port: number; keyFile: string; knownHostsFile: string; hostKey: string; connectTimeoutSeconds: number }): string[] {
    return [
        "-F", "/dev/null",
        "-p", String(o.port),
        "-i", o.keyFile,
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", `UserKnownHostsFile=${o.knownHostsFile}`,
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", `HostKeyAlgorithms=${o.hostKey.split(" ")[0]}`,
        "-o", `ConnectTimeout=${o.connectTimeoutSeconds}`,
    ];
}

export type StepStatus = "ok" | "drift" | "failed" | "unreachable" | "host-key";

export interface StepResult {
    name: string;
    status: StepStatus;
    /** One line per difference ("DRIFT" lines), or why the check could not run. */
    items: string[];
    /** The lines under the items: diffs of non-secret files. */
    detail: string[];
}

export interface HostResult {
    name: string;
    address: string;
    steps: StepResult[];
}

/** Reads what `bash -s -- verify` printed (stdout and stderr) and how it exited. */
export function stepResult(name: string, exitCode: number, out: string): StepResult {
    const lines = out.split("\n");
    if (exitCode === 0) return { name, status: "ok", items: [], detail: [] };
    if (exitCode === 255) {
        // ssh itself: the key check, or no answer at all.
        if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|host key .*(differs|mismatch)/i.test(out)) {
            return { name, status: "host-key", items: ["presents another SSH host key than the pinned one: a replaced or wiped Pi"], detail: [] };
        }
        const why = lines.filter((l) => l.trim()).slice(-1)[0] ?? "no answer";
        return { name, status: "unreachable", items: [`does not answer SSH: ${why.trim()}`], detail: [] };
    }
    if (out.includes("unknown action 'verify'")) {
        return { name, status: "failed", items: ["its script, from the last pulumi up, predates verify: run pulumi up once"], detail: [] };
    }
    const items = lines.filter((l) => l.startsWith("DRIFT ")).map((l) => l.slice("DRIFT ".length));
    const detail = lines.filter((l) => l.startsWith("    "));
    if (exitCode === 3 && items.length) return { name, status: "drift", items, detail };
    const tail = lines.filter((l) => l.trim() && !l.startsWith("    ")).slice(-5);
    return { name, status: "failed", items: [`the check exited ${exitCode}`, ...tail], detail: [] };
}

export function hostOk(h: HostResult): boolean {
    return h.steps.every((s) => s.status === "ok");
}

/** The per-host report, then what to run to repair each host that is not as desired. */
export function renderReport(hosts: HostResult[], stack: string): string {
    const out: string[] = [];
    for (const h of hosts) {
        const bad = h.steps.filter((s) => s.status !== "ok");
        out.push(`${h.name} (${h.address}): ${bad.length ? `DRIFT in ${bad.length} of ${h.steps.length} steps` : `as desired (${h.steps.length} steps)`}`);
        for (const s of bad) {
            out.push(`  ${s.name}:`);
            for (const i of s.items) out.push(`    - ${i}`);
            for (const d of s.detail) out.push(`      ${d.slice(4)}`);
        }
    }
    const drifted = hosts.filter((h) => !hostOk(h));
    out.push("");
    if (!drifted.length) {
        out.push(`verify: every Pi of stack ${stack} is as the last pulumi up left it`);
        return `${out.join("\n")}\n`;
    }
    out.push(`verify: ${drifted.length} of ${hosts.length} Pis drifted. To repair:`);
    const flag = stack === "lab" ? "" : ` --stack ${stack}`;
    const names = hosts.map((h) => h.name);
    const rerun = new Set<string>();
    for (const h of drifted) {
        if (h.steps.some((s) => s.status === "host-key")) {
            out.push(`  ${h.name}: a new machine or a wiped one. Read its host key on its console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then`);
            out.push(`    npx pi-cluster recover ${h.name} --host-key '<its key>'${flag}   (on the lab, lab/lab reset already pinned it: npx pi-cluster recover ${h.name})`);
        } else if (h.steps.some((s) => s.status === "unreachable")) {
            out.push(`  ${h.name}: power it on or fix its network, then run verify again`);
        } else {
            for (const s of h.steps.filter((x) => x.status !== "ok")) rerun.add(stepOwner(s.name, names) ?? h.name);
        }
    }
    // A step belongs to the Pi whose name it starts with: a web server's drain and admit
    // steps run on the load balancer, and run again with that web server's steps.
    for (const name of [...rerun].sort()) out.push(`  npx pi-cluster recover ${name}${flag}   (runs every step of ${name} again)`);
    return `${out.join("\n")}\n`;
}

/** The Pi a step belongs to: the longest Pi name the step's name starts with, then "-". */
export function stepOwner(step: string, hosts: string[]): string | undefined {
    return hosts.filter((h) => step.startsWith(`${h}-`)).sort((a, b) => b.length - a.length)[0];
}
