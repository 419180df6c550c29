// Issue 17 on the lab, through the real engine: every data path broken halfway under a
// writer that records each acknowledged write, then its one recovery command. Each case
// prints the writes acknowledged, the writes lost (must be 0) and the time from the recovery
// command to the first acknowledged write after it (test-output/fault-figures.json).
//
// In scripts/test.sh it follows tests/e2e/replicas.test.ts on the lab that suite leaves: the
// database and two replicas. First the promotion cases (8-10: a replica with an unapplied
// relay log, two replicas at different positions, the old primary powered back on), then a
// restore after the promotion (11), then, with the last replica removed, the backup cases
// (1-4: a backup broken, then a restore to the latest point that must not be blocked by what
// the fault left) and the restore cases (5-7: the restore itself broken).
import * as assert from "assert";
import { BACKUP_STATE_DIR } from "../../components/constants";
import { backupUnitName } from "../../components/render/backup";
import { record, waitFor } from "./checks";
import { backupNow, backupResult, dataCase, databaseHost, restoreCommand, startAsync, startBackup, storedBackups, TARGET, TARGET_DIR, targetStatus } from "./dataPaths";
import { http, lab, LB_URL, onHost, opSpan, pulumi, up } from "./lib";
import {
    assertSemiSync, labWithReplicas, postNote, promoteUnderWrites, readSetIs, REPLICA_STEPS, runAsync, semiSyncCounters, sql, steps, WEBS,
} from "./replicaLab";
import { failures, underStream } from "./stream";

function sh(host: string, command: string): string {
    const r = onHost(host, command);
    assert.strictEqual(r.status, 0, `${host}: ${command}: ${r.out}`);
    return r.out.trim();
}

/** The table addBallast fills with random rows: backups big enough to be caught mid-run. */
const BALLAST_TABLE = "faults_ballast";
/** What the backup tool's run tells of mariadb-backup's progress (assets/backup/pi-cluster-backup.sh). */
const BACKUP_LOG = `${BACKUP_STATE_DIR}/mariadb-backup.log`;
/** mariadb-backup's line as it starts to stream the ballast table's pages (10.11 and 11.x alike). */
const STREAMING_BALLAST = `Streaming ./webapp_db/${BALLAST_TABLE}.ibd`;

/**
 * SIGKILLs the processes `pattern` (an extended regex) matches on `host` once the backup run's
 * mariadb-backup has begun streaming the ballast table (its log says STREAMING_BALLAST): mid-run
 * by the run's own progress, never by a clock (on a quick day a run ended before a fixed 1 s,
 * and the case failed without proving anything). Tens of megabytes of ballast and the end of the
 * backup still lie ahead at that line. One command on the Pi, so no round trip lies between the
 * line and the kill; it fails when the run ended first. Write the pattern's first letter as a
 * class ("[m]ariadb-backup"): its own text then does not match it.
 */
function killMidBallast(host: string, pattern: string): void {
    // The run's log is truncated by the shell that starts mariadb-backup: once that process is
    // there, the log is this run's.
    const script = [
        "for ((i = 0; i < 2400; i++)); do pgrep -f -- '[m]ariadb-backup --backup' >/dev/null && break; sleep 0.05; done",
        `for ((i = 0; i < 6000; i++)); do grep -qF -- '${STREAMING_BALLAST}' ${BACKUP_LOG} && break; sleep 0.01; done`,
        `grep -qF -- '${STREAMING_BALLAST}' ${BACKUP_LOG} || { echo 'no ${STREAMING_BALLAST} in ${BACKUP_LOG}'; exit 1; }`,
        `grep -q 'completed OK!' ${BACKUP_LOG} && { echo 'the run completed before the kill'; exit 1; }`,
        `pkill -KILL -f -- '${pattern}' || { echo 'nothing to kill'; exit 1; }`,
    ].join("; ");
    const r = onHost(host, `sudo bash -c ${JSON.stringify(script)}`);
    assert.strictEqual(r.status, 0, `${host}: killing ${pattern} mid-ballast: ${r.out}`);
}

/** Bytes of the hidden partial uploads of KIND on the target (0 when there is none); a binlog shipping run may be putting one of its own. */
function partialBytes(kind = "full"): number {
    const r = onHost(TARGET, `sudo find ${TARGET_DIR} -maxdepth 1 -name '.${kind}-*.partial' -printf '%s\\n'`);
    return r.out.split("\n").filter(Boolean).reduce((n, s) => n + Number(s), 0);
}

/**
 * Runs `fn` with the database Pi's shipping to the target paused: the binlog shipping, full
 * and incremental timers stopped, and a run in progress waited out (a \`put\` streaming into
 * the target's directory keeps a file open there, so the directory cannot be unmounted under
 * it). A full runs without its timer too: a restore starts one when it is done. The timers
 * start again after.
 */
function withShippingPaused(db: string, fn: () => void): void {
    const units = (["ship-binlogs", "full", "incremental"] as const).map((k) => backupUnitName(k));
    sh(db, `sudo systemctl stop ${units.map((u) => `${u}.timer`).join(" ")}`);
    try {
        const wait = `for u in ${units.map((u) => `${u}.service`).join(" ")}; do for ((i = 0; i < 900; i++)); do s=$(systemctl show -p ActiveState --value $u); [[ $s == inactive || $s == failed ]] && continue 2; sleep 0.2; done; echo "$u still $s after 180 s"; exit 1; done\n`;
        const r = onHost(db, "bash -s", wait);
        assert.strictEqual(r.status, 0, `${db}: ${r.out}`);
        fn();
    } finally {
        sh(db, `sudo systemctl start ${units.map((u) => `${u}.timer`).join(" ")}`);
    }
}

/** What has files open (or its working directory) under DIR on HOST: the processes, for a "target is busy". */
function holdersOf(host: string, dir: string): string {
    const script = `for p in /proc/[0-9]*; do if ls -l $p/cwd $p/fd 2>/dev/null | grep -q -- ' -> ${dir}'; then echo "$(cat $p/comm) $(tr '\\0' ' ' <$p/cmdline)"; fi; done\n`;
    return onHost(host, "sudo bash -s", script).out.trim() || "(none found)";
}

/** Incompressible rows, so that a full backup runs for seconds and can be broken mid-run. */
function addBallast(db: string, megabytes: number): void {
    sql(db, `CREATE TABLE IF NOT EXISTS webapp_db.${BALLAST_TABLE} (id INT PRIMARY KEY, b BLOB NOT NULL) ENGINE=InnoDB`);
    sql(db, `INSERT IGNORE INTO webapp_db.${BALLAST_TABLE} SELECT seq, RANDOM_BYTES(1024) FROM webapp_db.seq_1_to_${megabytes * 1024}`);
}

/** A full that fails: nothing new is committed, the status still names the last good full, the failure is reported. */
async function assertFailedFullLeftNothing(db: string, before: string[], newestFull: string | undefined): Promise<void> {
    assert.notStrictEqual(await backupResult(db, "full"), "success", "the broken full succeeded");
    assert.deepStrictEqual(storedBackups().filter((n) => !before.includes(n) && !n.startsWith("binlog-")), [], "the broken full left a backup on the target");
    const st = targetStatus();
    assert.strictEqual(st.full?.name, newestFull, "status.json names the broken full as the newest");
    assert.ok(st.failures.some((f: any) => f.kind === "full"), `the failure is not in status.json: ${JSON.stringify(st.failures)}`);
}

/** scripts/restore.sh to the latest point; returns when it started (for the recovery time). */
async function restoreLatest(extra: string[] = []): Promise<{ recoveryStartedAt: number; output: string }> {
    const recoveryStartedAt = Date.now();
    const r = await runAsync(...restoreCommand(extra));
    assert.strictEqual(r.status, 0, r.output.slice(-4000));
    assert.match(r.output, /restored in/);
    return { recoveryStartedAt, output: r.output };
}

describe("the data paths under faults, on the lab", function () {
    let db = "";

    before(() => {
        // Alone (not after the replica suite), it brings the lab up with FAULTS_LAB_REPLICAS
        // replicas (2; 0 is enough for the backup and restore cases alone) and converges it.
        if (pulumi(["stack", "output", "lbUrl"], { allowFail: true }).status !== 0) {
            labWithReplicas(Number(process.env.FAULTS_LAB_REPLICAS ?? "2"));
            up("faults-converge");
        }
    });

    describe("promotion, and a restore after it", () => {
        before(() => {
            assert.strictEqual(databaseHost(), "pi-db", "the promotion cases start from pi-db as the database, with two replicas");
        });

        it(
            "8-10. promotes the most advanced replica when the database is lost, under writes: an unapplied relay log and a less advanced replica refused, the old primary fenced when it comes back, 0 acknowledged writes lost",
            promoteUnderWrites,
        );

        it("makes the promoted database wait for the remaining replica's ack (semi-sync), and that replica ack it", async () => {
            await postNote(`semisync-promoted-${Date.now()}`);
            assertSemiSync("pi-db-read1", ["pi-db-read2"]);
            record("semiSyncAfterPromotion", semiSyncCounters("pi-db-read1"));
        });

        it("11. restores after a promotion: the promoted database's own chain, its replica stopped and reseeded by the next up, 0 acknowledged writes lost", async () => {
            db = databaseHost();
            assert.strictEqual(db, "pi-db-read1");
            const serverId = sql(db, "SELECT @@server_id");
            let output = "";
            await dataCase("restore-after-promotion", async () => {
                const r = await restoreLatest();
                output = r.output;
                return r;
            });
            // The promoted database's own binlog series, never the lost database's.
            assert.match(output, new RegExp(`full-\\d{8}T\\d{6}Z-s${serverId}x[0-9a-f]{8}\\.xb\\.zst\\.age`), output.slice(-3000));
            assert.match(output, /pi-db-read2: replication stopped/);
            // Stopped, the replica serves no stale read; the next up reseeds it from the restored database.
            await waitFor("pi-db-read2 out of every web server's read set", 60, () => readSetIs([]));
            const reseeded = up("restore-after-promotion-reseed");
            record("faults.restore-after-promotion.reseedSeconds", reseeded.seconds);
            const checksum = (h: string) => sql(h, "CHECKSUM TABLE webapp_db.notes").split("\t")[1];
            await waitFor("the same notes table on pi-db-read2 as on the database", 60, async () => checksum("pi-db-read2") === checksum(db));
            await waitFor("pi-db-read2 in every web server's read set again", 60, () => readSetIs(["pi-db-read2"]));
            assert.deepStrictEqual(up("restore-after-promotion-noop").changes, {});
        });

        it("removes the last replica cleanly: the web servers stop reading from it first, then its grant and 3306 rule go", async () => {
            // After the promotion the config names pi-db-read1 the database and pi-db-read2 its one
            // replica (`pi-cluster promote` wrote it); scaling in is removing it from dbReplicas.
            pulumi(["config", "rm", "dbReplicas"]);
        // Its reseed generation (case 11 bumped it) goes with it: the config refuses one for a
        // replica the stack no longer has.
        pulumi(["config", "rm", "--path", "reseed.pi-db-read2"]);
            let removed: ReturnType<typeof up> | undefined;
            const bench = await underStream("remove-replica", () => {
                removed = up("remove-replica");
            });
            assert.strictEqual(bench.failed.total, 0, failures(bench));
            // The last replica takes the replication password with it.
            // With monitoring on (the replica suite turns it on), its node exporter goes too.
            const monitored = pulumi(["config", "get", "--path", "pi-cluster:monitoring.enabled"], { allowFail: true }).stdout.trim() === "true";
            const gone = [...steps("pi-db-read2", [...REPLICA_STEPS, ...(monitored ? ["node-exporter"] : [])]), "pi-cluster-repl-password"];
            assert.deepStrictEqual(removed!.changes.delete?.sort(), gone.sort());
            const lastApp = Math.max(...WEBS.map((w) => opSpan(removed!.events, "update", `${w}-app`).end));
            assert.ok(opSpan(removed!.events, "delete", "pi-db-read2-source").start >= lastApp, "its grant went before every web server stopped reading from it");
            assert.deepStrictEqual(sql("pi-db-read1", "SELECT Host FROM mysql.user WHERE User = 'pi_repl' ORDER BY Host"), "");
            assert.strictEqual(onHost("pi-db-read1", "sudo test -e /etc/pi-cluster/firewall.d/replica-pi-db-read2.nft").status, 1);
            // No replica left: the app reads from the database, and says so.
            assert.ok(await readSetIs([]));
            assert.strictEqual((await http(`${LB_URL}/api/notes?limit=1`)).headers.get("x-pi-cluster-read-from"), "primary");
            assert.deepStrictEqual(up("remove-replica-noop").changes, {});
            lab("remove", "pi-db-read2");
        });
    });

    describe("backups and restores", () => {
        before(async () => {
            // Incompressible rows, so a full runs for seconds and can be broken mid-run, and a
            // full of them first, so each case has a good chain to fall back on.
            db = databaseHost();
            assert.strictEqual(sh(db, "systemctl is-active mariadb"), "active");
            addBallast(db, 64);
            await backupNow(db, "full");
        });

        it("1a. commits nothing when mariadb-backup is killed mid-full; the restore then loses no acknowledged write", async () => {
            await dataCase("kill-full", async () => {
                const { stored: before, status } = await startBackup(db, "full");
                const newestFull = status.full?.name;
                // 1 s in, as the issue's repro: 2 s was past the end of a full of the 64 MB
                // ballast once (CI, on a quick day), and the case then proved nothing.
                killMidBallast(db, "[m]ariadb-backup --backup");
                await assertFailedFullLeftNothing(db, before, newestFull);
                return restoreLatest();
            });
        });

        it("1b. commits nothing when mariadb-backup is killed mid-incremental; the restore then loses no acknowledged write", async () => {
            await backupNow(db, "full");
            await dataCase("kill-incremental", async () => {
                // An incremental of a full that holds the ballast is small: make it big.
                addBallast(db, 96);
                const before = (await startBackup(db, "incremental")).stored;
                killMidBallast(db, "[m]ariadb-backup --backup");
                assert.notStrictEqual(await backupResult(db, "incremental"), "success", "the killed incremental succeeded");
                assert.deepStrictEqual(storedBackups().filter((n) => !before.includes(n) && !n.startsWith("binlog-")), [], "the killed incremental left a backup");
                assert.ok(targetStatus().failures.some((f: any) => f.kind === "incremental"));
                return restoreLatest();
            });
        });

        it("2. refuses a full that would fill the target's disk, reports it, keeps the older backups; the restore then loses nothing", async () => {
            await backupNow(db, "full");
            // The target's backup directory on a filesystem of its own with little room: a copy of
            // it on a tmpfs sized to what it holds, the configured reserve and 24 MB, bound over it.
            const used = Number(sh(TARGET, `sudo du -sm ${TARGET_DIR} | cut -f1`));
            const reserve = Number(sh(TARGET, "sudo sed -n 's/^MIN_FREE_MB=//p' /etc/pi-cluster/backup.env") || "1024");
            const size = used + reserve + 24;
            // The binlog stream keeps its files open, and the database's binlog shipping puts
            // files there: both pause while the directory is swapped. Under the target's own
            // lock too (the receivers commit under it), so no commit lands in the old directory
            // mid-swap.
            withShippingPaused(db, () => {
                sh(TARGET, "sudo systemctl stop pi-cluster-binlog-stream.service");
                sh(
                    TARGET,
                    `sudo bash -c 'set -e; mkdir -p /run/faults-fill; mount -t tmpfs -o size=${size}m,mode=0700 tmpfs /run/faults-fill; flock ${TARGET_DIR} bash -c "tar -C ${TARGET_DIR} --exclude=./.*.partial -cf - . | tar -C /run/faults-fill -xpf - && chown --reference=${TARGET_DIR} /run/faults-fill && mount --bind /run/faults-fill ${TARGET_DIR}"'`,
                );
                sh(TARGET, "sudo systemctl start pi-cluster-binlog-stream.service");
            });
            try {
                await dataCase("target-disk-full", async () => {
                    const { stored: before, status } = await startBackup(db, "full");
                    const newestFull = status.full?.name;
                    await assertFailedFullLeftNothing(db, before, newestFull);
                    const failure = targetStatus().failures.find((f: any) => f.kind === "full");
                    assert.match(JSON.stringify(failure), /free|space|reserve/i, `the refusal does not say why: ${JSON.stringify(failure)}`);
                    assert.strictEqual(partialBytes(), 0, "the refused full left its partial on the target");
                    return restoreLatest();
                });
            } finally {
                // Whatever was committed meanwhile (binlogs) goes back too, with the ledger, the
                // status and the stream's copies as they are now, under the lock of the small
                // directory (by its own path: a lock held through the bound path would keep it busy).
                withShippingPaused(db, () => {
                    sh(TARGET, "sudo systemctl stop pi-cluster-binlog-stream.service");
                    const r = onHost(TARGET, `sudo bash -c 'set -e; flock /run/faults-fill bash -c "umount ${TARGET_DIR} && tar -C /run/faults-fill --exclude=./.*.partial -cf - . | tar -C ${TARGET_DIR} -xpf -"; umount /run/faults-fill'`);
                    assert.strictEqual(r.status, 0, `${TARGET}: putting the backup directory back: ${r.out}\nopen there: ${holdersOf(TARGET, TARGET_DIR)}`);
                    sh(TARGET, "sudo systemctl start pi-cluster-binlog-stream.service");
                });
            }
            sh(TARGET, "sudo systemctl start pi-cluster-backup-verify.service");
            // With room again, the next full succeeds: the restore's new binlog series, whose
            // own first full the full disk refused, has its chain.
            await backupNow(db, "full");
        });

        it("3. commits nothing when the link to the target is cut while shipping; the restore then loses nothing", async () => {
            await dataCase("link-cut", async () => {
                const { stored: before, status } = await startBackup(db, "full");
                const newestFull = status.full?.name;
                killMidBallast(db, "[s]sh .* put full-");
                await assertFailedFullLeftNothing(db, before, newestFull);
                return restoreLatest();
            });
        });

        it("4. refuses to overwrite a committed backup with the DB Pi's own key; verify still passes and the restore loses nothing", async () => {
            await dataCase("overwrite", async () => {
                const victim = storedBackups().find((n) => n.startsWith("full-"))!;
                const sum = sh(TARGET, `sudo sha256sum ${TARGET_DIR}/${victim} | cut -d' ' -f1`);
                const asDb = (cmd: string) =>
                    onHost(
                        db,
                        `sudo bash -c 'set -o pipefail; head -c 65536 /dev/urandom | ssh -F /dev/null -i /var/lib/pi-cluster-backup/ssh/id_ed25519 -o BatchMode=yes -o IdentitiesOnly=yes -o UserKnownHostsFile=/var/lib/pi-cluster-backup/ssh/known_hosts $(. /etc/pi-cluster/backup.env; echo -p $TARGET_PORT $TARGET_USER@$TARGET_HOST) "${cmd}"'`,
                    );
                for (const cmd of [`put ${victim}`, `commit ${victim} ${"0".repeat(64)}`]) {
                    const r = asDb(cmd);
                    assert.notStrictEqual(r.status, 0, `${cmd} was taken: ${r.out}`);
                    // put: the name exists; commit: nothing of that name was put (the put was refused).
                    assert.match(r.out, /refused|exists|already|nothing was put/i, `${cmd}: ${r.out}`);
                }
                // abort removes a partial upload only: on a committed name it leaves the file (checked below).
                asDb(`abort ${victim}`);
                assert.strictEqual(sh(TARGET, `sudo sha256sum ${TARGET_DIR}/${victim} | cut -d' ' -f1`), sum, "the backup changed");
                const verify = onHost(TARGET, "sudo systemctl start pi-cluster-backup-verify.service");
                assert.strictEqual(verify.status, 0, onHost(TARGET, "sudo journalctl -u pi-cluster-backup-verify -n 20 --no-pager").out);
                return restoreLatest();
            });
        });

        it("5. restores while the web servers keep writing: no write is taken during the replay, none acknowledged is lost", async () => {
            let output = "";
            const figures = await dataCase("restore-under-writes", async () => {
                const r = await restoreLatest();
                output = r.output;
                return r;
            });
            // The phases' times, as the DB Pi's clock (the lab's hosts share this machine's) saw them.
            const epoch = (phase: string) => 1000 * Number(new RegExp(`phase: ${phase} \\(at [0-9.]+ s, epoch ([0-9.]+)\\)`).exec(output)?.[1]);
            const [stopping, stopped, isolated, replayed, reopening] = ["stopping", "stopped", "isolated", "replayed", "reopening"].map(epoch);
            assert.ok(stopping > 0 && stopped >= stopping && isolated >= stopped && replayed >= isolated && reopening >= replayed, `no phase times in the restore's output:\n${output.slice(-3000)}`);
            // No write sent once the database stopped is acknowledged before the restore started
            // reopening it to the network: the swap and the replay ran with it unreachable.
            const during = figures.writes!.filter((x) => x.sentAt > stopped && x.ackedAt < reopening);
            assert.deepStrictEqual(during.map((x) => x.title), [], "writes acknowledged while the restore had the database down or isolated");
            record("faults.restore-under-writes.phases", { replaySeconds: (replayed - isolated) / 1000, unreachableSeconds: (reopening - stopping) / 1000 });
        });

        it("6. refuses a second restore while one runs, naming it; the first completes and nothing acknowledged is lost", async () => {
            await dataCase("two-restores", async () => {
                const recoveryStartedAt = Date.now();
                const first = runAsync(...restoreCommand());
                // The second starts once the first holds the DB Pi.
                await waitFor("the first restore to hold the DB Pi", 120, async () => onHost(db, "sudo test -s /var/lib/pi-cluster-restore/run").status === 0);
                const second = await runAsync(...restoreCommand());
                assert.strictEqual(second.status, 3, second.output.slice(-3000));
                assert.match(second.output, /another restore holds the DB Pi/);
                const r = await first;
                assert.strictEqual(r.status, 0, r.output.slice(-4000));
                return { recoveryStartedAt };
            });
        });

        // The kill lands just after the apply unit started. It found a bug: an SSH drop between
        // systemd-run and the apply recording the unit's pid left a running apply that every
        // status called interrupted, so the next run's recover raced it (1 run in 3 ended
        // "interrupted at reopening; finishing failed"). The unit's own state decides now.
        it("7. survives the operator's SSH dropping during the apply: running the restore again follows it to the end", async () => {
            await dataCase("operator-dropped", async () => {
                const recoveryStartedAt = Date.now();
                const first = startAsync(...restoreCommand());
                await waitFor("the apply running on the DB Pi", 180, async () => onHost(db, "systemctl list-units --no-legend --state=running 'pi-cluster-restore-*' | grep -q .").status === 0);
                // The operator's machine loses the session: the restore there and all it started die.
                process.kill(-first.pid, "SIGKILL");
                const dropped = await first.done;
                assert.notStrictEqual(dropped.status, 0, "the killed restore says it succeeded");
                const again = await runAsync(...restoreCommand());
                // On a failure, the apply's own log on the DB Pi says why, beside what the operator saw.
                const applyLog = () => onHost(db, "sudo bash -c 'tail -n 80 $(ls -t /var/log/pi-cluster-restore/*.log | head -n 2)'").out;
                assert.strictEqual(again.status, 0, `${again.output.slice(-3000)}\n--- the DB Pi's apply logs:\n${again.status === 0 ? "" : applyLog()}`);
                assert.match(again.output, /following it to its end|ended while this machine was away|is complete/);
                return { recoveryStartedAt };
            });
        });
    });
});
