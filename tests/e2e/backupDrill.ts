// Issue 10's drill: backups proven by a restore, through the real engine on the lab.
// A short schedule; rows written through the LB with every acknowledged write recorded; the
// database Pi's power cut and its disk wiped; scripts/restore.sh then pi-cluster recover;
// RPO (acknowledged writes lost, and seconds) and RTO (restore start to a write through the
// LB) measured; a point-in-time restore checked against the writes; every host scanned for a
// plaintext backup or an age private key.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { record, waitFor } from "./checks";
import { http, lab, LB, LB_URL, onHost, pulumi, recoverCommand, REPO, run, tcpOpenFromHost, up } from "./lib";
import { titlesOn, writer, writeSucceeds } from "./writer";

const HOSTS = ["pi-lb", "pi-web1", "pi-web2", "pi-db"];
const TARGET_DIR = "/srv/pi-cluster-backups";
/** The lab's throwaway age key (lab/lab makes it); the private half lives only on this machine. */
const AGE_KEY = path.join(process.env.PI_LAB_STATE ?? "/var/lib/pi-cluster-lab", "backup", "age.key");
/** The drill's schedule: a full every 5 minutes, an incremental every minute, binlogs every 10 s. */
const SCHEDULE: Record<string, string> = { fullOnCalendar: "*:0/5", incrementalOnCalendar: "*:*:00", binlogShipSeconds: "10" };

/** 'YYYY-MM-DD HH:MM:SS' in UTC, as scripts/restore.sh --to takes it. */
function utc(ms: number): string {
    return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
}

function targetStatus(): any {
    const r = onHost("pi-lb", `sudo cat ${TARGET_DIR}/status.json`);
    return r.status === 0 ? JSON.parse(r.out) : null;
}

function restore(args: string[]): { seconds: number; output: string } {
    const started = Date.now();
    const r = run("bash", [path.join(REPO, "scripts", "restore.sh"), "--identity", AGE_KEY, "--stack", "lab", ...args]);
    return { seconds: (Date.now() - started) / 1000, output: `${r.stdout}${r.stderr}` };
}

/**
 * No plaintext backup and no age private key on any Pi: the target holds only age files (and
 * their hashes and status), the database Pi no staging or work copy, and no host a secret key.
 */
export function noPlaintextBackupsOrKeys(): void {
    for (const h of HOSTS) {
        const key = onHost(h, "sudo grep -rIl -- 'AGE-SECRET-KEY-' /etc /home /root /var /srv /opt /tmp /usr/local 2>/dev/null || true");
        assert.strictEqual(key.out.trim(), "", `an age private key on ${h}: ${key.out}`);
        // mariadb-backup's own metadata files mark a plaintext backup wherever they lie, but for
        // the data directory and the LSNs the next incremental starts from: lsn/, and lsn.new/
        // while a scheduled run writes it (CI met one). Those two hold metadata only, which
        // the second find proves: --extra-lsndir writes the checkpoints and info files, no data.
        const meta = onHost(
            h,
            "sudo find / -xdev \\( -name xtrabackup_checkpoints -o -name mariadb_backup_checkpoints -o -name '*.xbstream' \\) -not -path '/var/lib/mysql/*' -not -path '/var/lib/pi-cluster-backup/lsn/*' -not -path '/var/lib/pi-cluster-backup/lsn.new/*' 2>/dev/null || true",
        );
        assert.strictEqual(meta.out.trim(), "", `a plaintext backup on ${h}: ${meta.out}`);
        const lsn = onHost(h, "sudo find /var/lib/pi-cluster-backup/lsn /var/lib/pi-cluster-backup/lsn.new -mindepth 1 -printf '%f\\n' 2>/dev/null || true");
        for (const f of lsn.out.split("\n").filter(Boolean)) {
            assert.match(f, /^(xtrabackup|mariadb_backup)_(checkpoints|info)$/, `more than LSNs in pi-cluster-backup's lsn directories on ${h}: ${f}`);
        }
    }
    const files = onHost("pi-lb", `sudo find ${TARGET_DIR} -maxdepth 1 -type f -printf '%f\\n'`).out.split("\n").filter(Boolean);
    const ages = files.filter((f) => f.endsWith(".age"));
    assert.ok(ages.length > 0, "no backups on the target");
    // The tools write their metadata through a temporary file of the same name (mktemp, then
    // mv): one may stand there at the instant of listing (CI saw .status.cjslOV).
    for (const f of files) {
        assert.match(f, /^(\S+\.age|\S+\.age\.sha256|status\.json|\.ledger|\.series|\.stream\.json|\.ok-\w+|\.failed-\w+|\.verify|\..+\.partial|\.(status|ledger|series|stream\.json)\.[A-Za-z0-9]{6})$/, `unexpected file on the target: ${f}`);
    }
    // Every stored backup starts with age's header: nothing left the DB Pi unencrypted.
    // The directory is the backup account's alone (0700): read it as root.
    const headers = onHost("pi-lb", `sudo bash -c 'cd ${TARGET_DIR} && for f in *.age; do head -c 21 "$f"; echo; done'`).out.split("\n").filter(Boolean);
    assert.deepStrictEqual([...new Set(headers)], ["age-encryption.org/v1"]);
    assert.strictEqual(onHost("pi-db", "sudo test -e /var/lib/pi-cluster-restore").status, 1, "the restore left its staging directory");
}

export interface DrillFigures {
    ackedWrites: number;
    lostWrites: number;
    rpoSeconds: number;
    restoreSeconds: number;
    recoverSeconds: number;
    rtoSeconds: number;
    pitrRestoreSeconds: number;
    fullBytes: number;
    incrementalBytes: number | null;
}

/**
 * The whole drill. It leaves the cluster serving on the point-in-time restore, with the
 * drill's schedule removed again (the seed's policy) and converged.
 */
export async function backupDrill(): Promise<DrillFigures> {
    for (const [k, v] of Object.entries(SCHEDULE)) pulumi(["config", "set", "--path", `backup.${k}`, v]);
    up("backup-drill-schedule");
    // The database reaches the target's sshd, and nothing new beside it.
    assert.strictEqual(tcpOpenFromHost("pi-db", LB, 22), true);
    assert.strictEqual(tcpOpenFromHost("pi-db", "10.254.0.122", 22), false);

    // The backup step starts a full at once; the drill waits for it and one incremental.
    await waitFor("a full and an incremental on the target", 300, async () => {
        const s = targetStatus();
        return !!s?.full && !!s?.incremental;
    });
    const prefix = `drill${Date.now()}`;
    const w = writer(prefix);
    // The writer keeps the process alive until stopped: stop it whatever fails.
    let failedAt = 0;
    let pit = 0;
    let status: any;
    try {
        // Writes on both sides of the point in time, and an incremental taken after it (the
        // schedule's next minute), so that the point-in-time restore must stop short of that
        // incremental and replay binlogs instead, and the restore to the end must apply it.
        await new Promise((r) => setTimeout(r, 10_000));
        pit = Math.floor(Date.now() / 1000) * 1000;
        await waitFor("an incremental taken after the point in time", 90, async () => {
            const s = targetStatus();
            return !!s?.incremental && Date.parse(s.incremental.at) > pit;
        });
        // Writes after the incremental, which only the binlogs carry.
        await new Promise((r) => setTimeout(r, 5_000));
        status = targetStatus();
        assert.deepStrictEqual(status.failures, [], "a backup run failed");
        assert.strictEqual(onHost("pi-db", "systemctl list-units --failed --no-legend 'pi-cluster-backup-*'").out.trim(), "");
        // The app serves the target's status as lastBackup (published into the database), fresh.
        const last = (await http(`${LB_URL}/api/internal/status`)).json().db.lastBackup;
        assert.ok(last, "lastBackup is null: the backup status does not reach the app");
        for (const kind of ["full", "incremental", "binlog"]) {
            assert.ok(last[kind].name, `no ${kind} in lastBackup: ${JSON.stringify(last)}`);
            assert.strictEqual(last[kind].stale, false, `${kind} is stale in lastBackup: ${JSON.stringify(last[kind])}`);
        }
        assert.strictEqual(last.problem, false, JSON.stringify(last));
        record("backupLastBackupAges", Object.fromEntries(["full", "incremental", "binlog"].map((k) => [k, last[k].ageSeconds])));

        // The SD card dies: power cut, then a bare disk with a new host key.
        failedAt = Date.now();
        lab("stop", "pi-db");
        await new Promise((r) => setTimeout(r, 3000));
    } finally {
        await w.stop();
    }
    lab("reset", "pi-db");

    const t0 = Date.now();
    const restored = restore([]);
    assert.match(restored.output, /restore: done in/);
    const recovered = up("backup-drill-recover", { command: recoverCommand("pi-db") });
    await waitFor("a write through the LB", 120, writeSucceeds);
    const rtoSeconds = (Date.now() - t0) / 1000;

    const present = titlesOn("pi-db", prefix);
    const lost = w.acked.filter((x) => !present.has(x.title));
    const lastRestored = Math.max(...w.acked.filter((x) => present.has(x.title)).map((x) => x.ackedAt));
    const rpoSeconds = (failedAt - lastRestored) / 1000;
    // Nothing acknowledged before the last shipment can be lost: only a tail.
    const gaps = lost.filter((x) => x.ackedAt < lastRestored - 1000).map((x) => x.title);
    assert.deepStrictEqual(gaps, [], "writes lost from before the last restored one");

    // Point in time: exactly the writes acknowledged before it, none sent after it.
    const pitr = restore(["--to", utc(pit)]);
    const atPit = titlesOn("pi-db", prefix);
    const before = w.acked.filter((x) => x.ackedAt < pit);
    const after = w.acked.filter((x) => x.sentAt > pit);
    assert.deepStrictEqual(before.filter((x) => !atPit.has(x.title)).map((x) => x.title), [], "writes before the point are missing");
    assert.deepStrictEqual(after.filter((x) => atPit.has(x.title)).map((x) => x.title), [], "writes after the point are there");
    await waitFor("a write through the LB after the point-in-time restore", 60, writeSucceeds);

    noPlaintextBackupsOrKeys();

    for (const k of Object.keys(SCHEDULE)) pulumi(["config", "rm", "--path", `backup.${k}`]);
    up("backup-drill-policy");
    assert.deepStrictEqual(up("backup-drill-noop").changes, {});

    const figures: DrillFigures = {
        ackedWrites: w.acked.length,
        lostWrites: lost.length,
        rpoSeconds,
        restoreSeconds: restored.seconds,
        recoverSeconds: recovered.seconds,
        rtoSeconds,
        pitrRestoreSeconds: pitr.seconds,
        fullBytes: status.full.bytes,
        incrementalBytes: status.incremental?.bytes ?? null,
    };
    record("backupDrill", figures);
    fs.writeFileSync(path.join(REPO, "test-output", "backup-drill.log"), `${restored.output}\n${pitr.output}\n`);
    // Issue 17's objective without replicas: RPO 1 s, the binlog stream's copy on the target
    // (the seed asked 15 min); the seed's RTO 5 min.
    assert.ok(rpoSeconds <= 1, `RPO ${rpoSeconds} s (${lost.length} of ${w.acked.length} acknowledged writes lost)`);
    assert.ok(rtoSeconds <= 300, `RTO ${rtoSeconds} s`);
    return figures;
}
