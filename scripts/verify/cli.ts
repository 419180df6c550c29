// Checks every Pi of a stack against what its last `pulumi up` applied, read-only: each
// remote step's script from the state runs again on its Pi over SSH with "verify" in place
// of "apply" (assets/scripts/lib.sh, expect_*). Pis are checked in parallel, each over one
// SSH connection (a ControlMaster; every step is a session on it, SESSIONS_PER_PI at once),
// reported in the state's order. The opened state stays in memory; the SSH key goes to a
// 0600 file in a private directory that is removed at exit, and the scripts, which may
// hold the DB password, travel on SSH's stdin.
// Usage: node -r sucrase/register/ts scripts/verify/cli.ts STACK [--json]
// Exit status: 0 every Pi as desired, 3 drift (or a Pi that cannot be checked), 2 usage.
import { spawnSync } from "child_process";
import { verifyState } from "./ssh";
import { hostOk, renderReport, StackExport } from "./state";

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
    const hosts = await verifyState(JSON.parse(exported.stdout) as StackExport);
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
