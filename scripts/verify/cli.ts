// Checks every Pi of a stack against what its last `pulumi up` applied, read-only: each
// remote step's script from the state runs again on its Pi over SSH with "verify" in place
// of "apply" (assets/scripts/lib.sh, expect_*). Pis are checked in parallel, the steps of
// one Pi in the state's order. The opened state stays in memory; the SSH key goes to a
// 0600 file in a private directory that is removed at exit, and the scripts, which may
// hold the DB password, travel on SSH's stdin.
// Usage: node -r sucrase/register/ts scripts/verify/cli.ts STACK [--json]
// Exit status: 0 every Pi as desired, 3 drift (or a Pi that cannot be checked), 2 usage.
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { hostOk, HostResult, knownHostsLine, renderReport, StackExport, stepResult, StepResult, stepsFromState, VerifyStep } from "./state";

const VERIFY = "sudo bash -s -- verify";

function runStep(step: VerifyStep, dir: string): Promise<StepResult> {
    const key = path.join(dir, `${step.host}.key`);
    const known = path.join(dir, `${step.host}.known_hosts`);
    if (!fs.existsSync(key)) {
        fs.writeFileSync(key, step.privateKey.endsWith("\n") ? step.privateKey : `${step.privateKey}\n`, { mode: 0o600 });
        fs.writeFileSync(known, `${knownHostsLine(step.address, step.port, step.hostKey)}\n`, { mode: 0o600 });
    }
    const args = [
        "-F", "/dev/null",
        "-p", String(step.port),
        "-i", key,
        "-o", "IdentitiesOnly=yes",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", `UserKnownHostsFile=${known}`,
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", `HostKeyAlgorithms=${step.hostKey.split(" ")[0]}`,
        "-o", "ConnectTimeout=10",
        `${step.user}@${step.address}`,
        VERIFY,
    ];
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

async function verifyHost(steps: VerifyStep[], dir: string): Promise<HostResult> {
    const result: HostResult = { name: steps[0].host, address: steps[0].address, steps: [] };
    for (const step of steps) {
        const r = await runStep(step, dir);
        result.steps.push(r);
        // The Pi itself is not there (or not the pinned one): its other steps say nothing more.
        if (r.status === "unreachable" || r.status === "host-key") break;
    }
    return result;
}

async function main(argv: string[]): Promise<number> {
    const stack = argv.find((a) => !a.startsWith("--"));
    const json = argv.includes("--json");
    if (!stack) {
        process.stderr.write("usage: cli.ts STACK [--json]\n");
        return 2;
    }
    const exported = spawnSync("pulumi", ["stack", "export", "--show-secrets", "--stack", stack, "--non-interactive"], {
        encoding: "utf8",
        maxBuffer: 512 * 1024 * 1024,
    });
    if (exported.status !== 0) {
        process.stderr.write(`verify: pulumi stack export failed for stack ${stack}:\n${exported.stderr}`);
        return 2;
    }
    const steps = stepsFromState(JSON.parse(exported.stdout) as StackExport);
    // A Pi's steps run on it in order; the Pis, from the load balancer on, side by side.
    const byHost = new Map<string, VerifyStep[]>();
    for (const s of steps) byHost.set(s.host, [...(byHost.get(s.host) ?? []), s]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pi-cluster-verify-"));
    let hosts: HostResult[];
    try {
        hosts = await Promise.all([...byHost.values()].map((s) => verifyHost(s, dir)));
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
    if (json) process.stdout.write(`${JSON.stringify({ stack, ok: hosts.every(hostOk), hosts }, null, 2)}\n`);
    else process.stdout.write(renderReport(hosts, stack));
    return hosts.every(hostOk) ? 0 : 3;
}

main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: Error) => {
        process.stderr.write(`verify: ${e.message}\n`);
        process.exitCode = 2;
    },
);
