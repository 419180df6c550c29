// scripts/verify.sh as a user runs it, read back as JSON: drift detection on the lab.
import * as assert from "assert";
import type { HostResult } from "../../scripts/verify/state";
import { onHost, run } from "./lib";

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

/**
 * The journal's last lines of each unit whose failed run verify names ("HOST STEP [drift]:
 * service UNIT: its last run failed"), so a failure says why the unit failed, not only that.
 */
function failedUnitJournals(items: string[]): string {
    return items
        .map((i) => /^(\S+) \S+ \[drift\]: service (\S+): its last run failed/.exec(i))
        .filter((m): m is RegExpExecArray => m !== null)
        .map(([, host, unit]) => `--- ${host}: journalctl -u ${unit}\n${onHost(host, `sudo journalctl -u ${unit} -n 40 --no-pager`).out}`)
        .join("\n");
}

export function assertAsDesired(v: VerifyRun): void {
    if (v.status !== 0) {
        const items = driftItems(v);
        assert.fail(`verify found drift:\n${items.join("\n")}\n${failedUnitJournals(items)}`);
    }
    assert.ok(v.ok);
    assert.ok(v.hosts.length >= 4 && v.hosts.every((h) => h.steps.length > 0), "every Pi was checked");
}
