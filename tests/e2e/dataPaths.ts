// The data paths broken halfway, under a writer that records every acknowledged write: the
// harness of tests/e2e/faults.test.ts (issue 17). Each case runs its fault and its one
// recovery command while notes are written through the LB, then counts the acknowledged
// writes that the database no longer has. Nothing here is mocked: the faults are real kills,
// cut links, full disks and power cuts on the lab's Pis.
import * as assert from "assert";
import { spawn } from "child_process";
import * as path from "path";
import { record, waitFor } from "./checks";
import { onHost, pulumi, REPO } from "./lib";
import { sleep } from "./replicaLab";
import { titlesOn, Write, writer, writeSucceeds } from "./writer";

export const TARGET = "pi-lb";
export const TARGET_DIR = "/srv/pi-cluster-backups";
/** The lab's throwaway age key (lab/lab makes it); the private half lives only on this machine. */
export const AGE_KEY = path.join(process.env.PI_LAB_STATE ?? "/var/lib/pi-cluster-lab", "backup", "age.key");

export interface CaseFigures {
    /** The acknowledged writes themselves (not recorded). */
    writes?: Write[];
    /** Writes the LB acknowledged (201) while the case ran. */
    acked: number;
    /** Of those, the ones the database does not hold after the recovery. */
    lost: number;
    /** Writes refused or failed while the case ran (the database was away for a moment). */
    refused: number;
    /** From the recovery command's start to the first write acknowledged after it. */
    recoverySeconds: number | null;
}

/** The database Pi the stack names now (a promotion changes it). */
export function databaseHost(): string {
    return JSON.parse(pulumi(["config", "get", "database"]).stdout).name;
}

/**
 * Starts a command without blocking this process, in a process group of its own (detached),
 * so that a case can kill it and everything it started: the operator's machine going away.
 */
export function startAsync(cmd: string, args: string[]): { pid: number; done: Promise<{ status: number | null; output: string; seconds: number }> } {
    const started = Date.now();
    const child = spawn(cmd, args, { cwd: REPO, detached: true });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (output += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (output += d));
    const done = new Promise<{ status: number | null; output: string; seconds: number }>((resolve) =>
        child.on("close", (code) => resolve({ status: code, output, seconds: (Date.now() - started) / 1000 })),
    );
    return { pid: child.pid!, done };
}

/** scripts/restore.sh with the lab's key, to the latest point unless `args` says otherwise. */
export function restoreCommand(args: string[] = []): [string, string[]] {
    return ["bash", [path.join(REPO, "scripts", "restore.sh"), "--identity", AGE_KEY, "--stack", "lab", ...args]];
}

/**
 * Runs `body` under a writer. `body` injects the fault and runs the recovery; it returns when
 * the recovery command was started (ms), so the time to the first acknowledged write after it
 * is measured here. Every acknowledged write must be on the database afterwards.
 */
export async function dataCase(label: string, body: () => Promise<{ recoveryStartedAt?: number }>): Promise<CaseFigures> {
    await currentSeriesFull();
    const prefix = `${label.replace(/[^a-z0-9]/gi, "")}${Date.now()}`;
    const w = writer(prefix);
    let recoveryStartedAt: number | undefined;
    let acked: Write[] = [];
    try {
        await sleep(3000);
        ({ recoveryStartedAt } = await body());
        await waitFor(`a write through the LB after ${label}`, 120, writeSucceeds);
        const recovered = Date.now();
        // A few more acknowledged writes after the recovery: they must stay too.
        await sleep(3000);
        acked = [...w.acked];
        const figures = {
            acked: acked.length,
            lost: 0,
            refused: w.failed,
            recoverySeconds: recoveryStartedAt ? (recovered - recoveryStartedAt) / 1000 : null,
        };
        await w.stop();
        const present = titlesOn(databaseHost(), prefix);
        const lost = acked.filter((x) => !present.has(x.title)).map((x) => x.title);
        figures.lost = lost.length;
        record(`faults.${label}`, figures);
        const result: CaseFigures = { ...figures, writes: acked };
        assert.ok(acked.length > 20, `only ${acked.length} writes were acknowledged: the case proves nothing`);
        assert.deepStrictEqual(lost, [], `${label}: acknowledged writes lost`);
        return result;
    } finally {
        await w.stop();
    }
}

/**
 * Waits until the target holds a full of the database's current binlog series (the series
 * the target was last told, `.series`). A restore or a promotion starts a new series and
 * its full with --no-block: a case started before that full lands would have its restore
 * refused, rightly, as a gap (the newest chain cannot reach the new series' writes). CI saw
 * it once, when a restore followed the previous case's by 12 s.
 */
export async function currentSeriesFull(): Promise<void> {
    let series = "";
    await waitFor("a full of the database's current binlog series on the target", 600, async () => {
        const r = onHost(TARGET, `sudo cat ${TARGET_DIR}/.series`);
        series = r.status === 0 ? r.out.trim() : "";
        return series !== "" && storedBackups().some((n) => n.startsWith("full-") && n.endsWith(`-${series}.xb.zst.age`));
    });
}

/** The stored backup names on the target. */
export function storedBackups(): string[] {
    const r = onHost(TARGET, `sudo find ${TARGET_DIR} -maxdepth 1 -type f -name '*.age' -printf '%f\\n'`);
    assert.strictEqual(r.status, 0, r.out);
    return r.out.split("\n").filter(Boolean).sort();
}

export function targetStatus(): any {
    const r = onHost(TARGET, `sudo cat ${TARGET_DIR}/status.json`);
    assert.strictEqual(r.status, 0, r.out);
    return JSON.parse(r.out);
}

/** A backup unit's ActiveState, Result and InvocationID on the database Pi. */
function backupUnit(db: string, kind: "full" | "incremental"): Record<string, string> {
    // By name: `systemctl show --value` prints values in the unit's own property order.
    const r = onHost(db, `systemctl show -p ActiveState -p Result -p InvocationID pi-cluster-backup-${kind}.service`);
    assert.strictEqual(r.status, 0, r.out);
    return Object.fromEntries(r.out.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
}

/**
 * Starts a run of a backup unit on the database Pi and returns once it runs, without waiting
 * for its end, with the backups stored and the target's status from just before it. A backup
 * run already going (the backup step and each restore start a full at once) ends first: a
 * start would only join it, and what it commits is not this run's.
 */
export async function startBackup(db: string, kind: "full" | "incremental"): Promise<{ stored: string[]; status: any }> {
    for (const k of ["full", "incremental"] as const) {
        await waitFor(`the running pi-cluster-backup-${k} to end on ${db}`, 600, async () => !["activating", "active", "deactivating"].includes(backupUnit(db, k).ActiveState));
    }
    // What the target held before this run: what the run adds is measured against it.
    const stored = storedBackups();
    const status = targetStatus();
    const before = backupUnit(db, kind).InvocationID;
    const r = onHost(db, `sudo systemctl reset-failed pi-cluster-backup-${kind}.service; sudo systemctl start --no-block pi-cluster-backup-${kind}.service`);
    assert.strictEqual(r.status, 0, r.out);
    await waitFor(`pi-cluster-backup-${kind} to start on ${db}`, 60, async () => backupUnit(db, kind).InvocationID !== before);
    return { stored, status };
}

/** Waits for the backup unit's run to end; returns its result ("success" or systemd's failure word). */
export async function backupResult(db: string, kind: "full" | "incremental", seconds = 300): Promise<string> {
    let result = "";
    await waitFor(`pi-cluster-backup-${kind} to finish on ${db}`, seconds, async () => {
        const u = backupUnit(db, kind);
        result = u.Result;
        return u.ActiveState === "inactive" || u.ActiveState === "failed";
    });
    return result;
}

/** Runs a full or incremental to the end and asserts it succeeded; returns the new name. */
export async function backupNow(db: string, kind: "full" | "incremental"): Promise<string> {
    const before = new Set((await startBackup(db, kind)).stored);
    assert.strictEqual(await backupResult(db, kind), "success", onHost(db, `sudo journalctl -u pi-cluster-backup-${kind} -n 30 --no-pager`).out);
    const added = storedBackups().filter((n) => !before.has(n) && n.startsWith(kind === "full" ? "full-" : "inc-"));
    assert.strictEqual(added.length, 1, `expected one new ${kind}, got ${added.join(", ")}`);
    return added[0];
}
