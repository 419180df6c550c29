// What the operator commands (promote, recover) share: the stack's config as the program
// reads it, and SSH to its Pis as root through sudo, pinned to each host key, one
// multiplexed connection per Pi, every script on its session's stdin. Keys go to 0600 files
// in the command's private directory.
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig, parseConfig } from "../components/config";
import { NAMESPACE } from "../components/config/messages";
import { knownHostsLine, pinnedSshOptions } from "../scripts/verify/state";

export { NAMESPACE };

export interface Host {
    name: string;
    address: string;
    sshPort: number;
    hostKey: string;
}

export interface RunResult {
    code: number;
    out: string;
    err: string;
}

/** SSH to the stack's Pis as root through sudo, pinned to each host key, one multiplexed connection per Pi. */
export class Pis {
    private readonly opened = new Set<string>();

    constructor(
        private readonly dir: string,
        private readonly key: string,
        private readonly user: string,
    ) {}

    private args(h: Host): string[] {
        const known = path.join(this.dir, `${h.name}.known_hosts`);
        if (!fs.existsSync(known)) fs.writeFileSync(known, `${knownHostsLine(h.address, h.sshPort, h.hostKey)}\n`, { mode: 0o600 });
        this.opened.add(h.name);
        // The control socket's path must stay short (a unix socket path is at most 108 bytes).
        return [
            ...pinnedSshOptions({ port: h.sshPort, keyFile: this.key, knownHostsFile: known, hostKey: h.hostKey, connectTimeoutSeconds: 3 }),
            "-o", "ServerAliveInterval=2",
            "-o", "ServerAliveCountMax=3",
            "-o", "ControlMaster=auto",
            "-o", `ControlPath=${path.join(this.dir, `${h.name}.cm`)}`,
            "-o", "ControlPersist=60",
            "-o", "LogLevel=ERROR",
            `${this.user}@${h.address}`,
        ];
    }

    /** Runs `command` on the Pi with `stdin` (a string, or a file streamed) on its stdin. */
    private session(h: Host, command: string, stdin: { text: string } | { file: string }, timeoutMs: number): Promise<RunResult> {
        return new Promise((resolve) => {
            const p = spawn("ssh", [...this.args(h), command], { stdio: ["pipe", "pipe", "pipe"] });
            let out = "";
            let err = "";
            const timer = setTimeout(() => p.kill("SIGTERM"), timeoutMs);
            p.stdout.on("data", (d) => (out += d));
            p.stderr.on("data", (d) => (err += d));
            p.on("close", (code) => {
                clearTimeout(timer);
                resolve({ code: code ?? 255, out, err });
            });
            p.stdin.on("error", () => undefined);
            if ("text" in stdin) p.stdin.end(stdin.text);
            else fs.createReadStream(stdin.file).on("error", (e) => p.stdin.destroy(e)).pipe(p.stdin);
        });
    }

    /** Runs a rendered script as root with ACTION and its arguments; the script goes on stdin. */
    run(h: Host, script: string, action: string[], timeoutMs = 120_000): Promise<RunResult> {
        return this.session(h, `sudo bash -s -- ${action.join(" ")}`, { text: script }, timeoutMs);
    }

    /** Copies a local file to `dest` on the Pi, root's and 0600, over the session's stdin. */
    put(h: Host, file: string, dest: string, timeoutMs = 600_000): Promise<RunResult> {
        if (!/^\/[A-Za-z0-9_./-]+$/.test(dest)) throw new Error(`put: not a plain absolute path: ${dest}`);
        return this.session(h, `sudo install -m 0600 /dev/stdin ${dest}`, { file }, timeoutMs);
    }

    /** Ends the multiplexed connections, before their sockets' directory goes. */
    close(hosts: Host[]): void {
        for (const h of hosts.filter((x) => this.opened.has(x.name))) {
            spawnSync("ssh", ["-o", `ControlPath=${path.join(this.dir, `${h.name}.cm`)}`, "-O", "exit", h.address], { stdio: "ignore", timeout: 5000 });
        }
    }
}

/** The last meaningful line of a failed run, for a message. */
export const why = (r: RunResult) => (r.err.trim() || r.out.trim()).split("\n").filter(Boolean).pop() ?? `exit ${r.code}`;

/** The `pi-cluster:` keys of the stack, namespace left off, values as `pulumi config` holds them. */
export function rawConfigOf(all: Record<string, { value: string; secret?: boolean }>): { raw: Record<string, unknown>; secretKey?: string } {
    const raw: Record<string, unknown> = {};
    let secretKey: string | undefined;
    for (const [k, v] of Object.entries(all)) {
        if (!k.startsWith(`${NAMESPACE}:`)) continue;
        const key = k.slice(NAMESPACE.length + 1);
        if (key === "sshPrivateKey") secretKey = v.value;
        if (v.secret) continue;
        try {
            raw[key] = JSON.parse(v.value);
        } catch {
            raw[key] = v.value;
        }
    }
    return { raw, secretKey };
}

/** The stack's config as the program reads it (defaults, checks). */
export function configOf(raw: Record<string, unknown>, secretKey: string | undefined): ClusterConfig {
    return parseConfig(raw, secretKey === undefined ? undefined : pulumi.secret(secretKey));
}

/** The deploy key in `dir`, 0600: the secret sshPrivateKey, else the file sshPrivateKeyPath names. */
export function privateKeyFile(dir: string, raw: Record<string, unknown>, secretKey: string | undefined): string {
    const file = path.join(dir, "key");
    const keyPath = typeof raw.sshPrivateKeyPath === "string" ? raw.sshPrivateKeyPath : "~/.ssh/id_ed25519";
    const text = secretKey ?? fs.readFileSync(keyPath.replace(/^~(?=\/)/, os.homedir()), "utf8");
    fs.writeFileSync(file, text.endsWith("\n") ? text : `${text}\n`, { mode: 0o600 });
    return file;
}
