// scripts/verify.sh as a user runs it, read back as JSON: drift detection on the lab.
import * as assert from "assert";
import type { HostResult } from "../../scripts/verify/state";
import { run } from "./lib";

export interface VerifyRun {
    status: number;
    ok: boolean;
    hosts: HostResult[];
    seconds: number;
}

export function verify(): VerifyRun {
    const started = Date.now();
    const r = run("bash", ["scripts/verify.sh", "--json"], { allowFail: true });
    assert.ok(r.status === 0 || r.status === 3, `verify exited ${r.status}: ${r.stderr}`);
    const report = JSON.parse(r.stdout) as { ok: boolean; hosts: HostResult[] };
    return { status: r.status!, ok: report.ok, hosts: report.hosts, seconds: (Date.now() - started) / 1000 };
}

/** Every drift item, as "host step: item", for messages and matching. */
export function driftItems(v: VerifyRun): string[] {
    return v.hosts.flatMap((h) => h.steps.filter((s) => s.status !== "ok").flatMap((s) => s.items.map((i) => `${h.name} ${s.name} [${s.status}]: ${i}`)));
}

export function assertAsDesired(v: VerifyRun): void {
    assert.strictEqual(v.status, 0, `verify found drift:\n${driftItems(v).join("\n")}`);
    assert.ok(v.ok);
    assert.ok(v.hosts.length >= 4 && v.hosts.every((h) => h.steps.length > 0), "every Pi was checked");
}
