// assets/backup/pi-cluster-backup-metrics.py, run by python3 as the backup target's timer runs
// it: status.json and the stream's report in, node-exporter's textfile out, checked by promtool.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { BACKUP_ASSETS } from "../../components/render/backup";
import { tmpDir } from "./helpers";

const SCRIPT = path.join(BACKUP_ASSETS, "pi-cluster-backup-metrics.py");
/** Debian's, as the unit runs it on a Pi (not a version manager's shim earlier on PATH). */
const PYTHON = "/usr/bin/python3";

/** status.json as the receiver writes it (assets/backup/pi-cluster-backup.sh, write_status). */
const STATUS = {
    generatedAt: "2026-12-07T19:18:42Z",
    full: { name: "full-20261207T190000Z-s1x0a0b0c0d.xb.zst.age", at: "2026-12-07T19:00:00Z", ageSeconds: 1122, bytes: 18900000 },
    incremental: null,
    binlog: { name: "binlog-20261207T191800Z-s1x0a0b0c0d-mariadb-bin.000002.zst.age", at: "2026-12-07T19:18:00Z", ageSeconds: 42, bytes: 1234 },
    lastSuccess: { full: "2026-12-07T19:00:30Z", incremental: null, binlog: "2026-12-07T19:18:30Z" },
    staleAfterSeconds: { full: 93600, incremental: 7200, binlog: 900 },
    retentionDays: 30,
    failures: [{ kind: "incremental", at: "2026-12-07T19:10:00Z", message: "mariadb-backup failed" }],
    verify: null,
    stream: null,
};
/** .stream.json as the stream writes it (pi-cluster-binlog-stream.sh, report). */
const STREAM = { state: "up", series: "s1x0a0b0c0d", file: "mariadb-bin.000002", bytes: 5000, at: "2026-12-07T19:18:41Z", lagSeconds: 0, maxLagSeconds: 5, message: "streaming", checkedAt: "2026-12-07T19:18:42Z" };

const epoch = (iso: string) => Date.parse(iso) / 1000;

function convert(files: Record<string, string>, out?: string): { status: number | null; stderr: string; out: string; text: string } {
    const dir = tmpDir("pi-backup-metrics-");
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
    const textfileDir = tmpDir("pi-textfile-");
    const target = out ?? path.join(textfileDir, "pi_cluster_backup.prom");
    const r = spawnSync(PYTHON, [SCRIPT, dir, target], { encoding: "utf8" });
    assert.strictEqual(r.error, undefined, `${PYTHON} must be installed (Debian's python3)`);
    return { status: r.status, stderr: r.stderr, out: target, text: fs.existsSync(target) ? fs.readFileSync(target, "utf8") : "" };
}

/** The samples of a metrics text, "name{labels} value" without the comments. */
function samples(text: string): string[] {
    return text.split("\n").filter((l) => l && !l.startsWith("#"));
}

describe("the backup target's status as metrics (pi-cluster-backup-metrics.py)", () => {
    it("turns status.json and the stream's report into samples promtool accepts", () => {
        const r = convert({ "status.json": JSON.stringify(STATUS), ".stream.json": JSON.stringify(STREAM) });
        assert.strictEqual(r.status, 0, r.stderr);
        const lint = spawnSync("promtool", ["check", "metrics"], { input: r.text, encoding: "utf8" });
        assert.strictEqual(lint.status, 0, `${lint.stdout}${lint.stderr}`);
        const s = samples(r.text);
        for (const line of [
            "pi_cluster_backup_status_ok 1",
            `pi_cluster_backup_status_timestamp_seconds ${epoch(STATUS.generatedAt)}`,
            `pi_cluster_backup_last_success_timestamp_seconds{kind="full"} ${epoch("2026-12-07T19:00:30Z")}`,
            // Never: 0, which the BackupStale rule leaves alone.
            'pi_cluster_backup_last_success_timestamp_seconds{kind="incremental"} 0',
            `pi_cluster_backup_last_success_timestamp_seconds{kind="binlog"} ${epoch("2026-12-07T19:18:30Z")}`,
            'pi_cluster_backup_stale_after_seconds{kind="full"} 93600',
            'pi_cluster_backup_stale_after_seconds{kind="binlog"} 900',
            'pi_cluster_backup_newest_bytes{kind="full"} 18900000',
            'pi_cluster_backup_newest_timestamp_seconds{kind="incremental"} 0',
            'pi_cluster_backup_failed{kind="incremental"} 1',
            'pi_cluster_backup_failed{kind="full"} 0',
            "pi_cluster_binlog_stream_up 1",
            "pi_cluster_binlog_stream_lag_seconds 0",
            "pi_cluster_binlog_stream_max_lag_seconds 5",
            `pi_cluster_binlog_stream_report_timestamp_seconds ${epoch(STREAM.checkedAt)}`,
        ]) {
            assert.ok(s.includes(line), `missing: ${line}\n${r.text}`);
        }
        const heartbeat = s.find((l) => l.startsWith("pi_cluster_backup_metrics_timestamp_seconds "));
        assert.ok(heartbeat && Math.abs(Number(heartbeat.split(" ")[1]) - Date.now() / 1000) < 60, String(heartbeat));
    });

    it("writes a world-readable file by rename, leaving no temporary file beside it", () => {
        const r = convert({ "status.json": JSON.stringify(STATUS) });
        assert.strictEqual(r.status, 0, r.stderr);
        assert.strictEqual(fs.statSync(r.out).mode & 0o777, 0o644);
        assert.deepStrictEqual(fs.readdirSync(path.dirname(r.out)), ["pi_cluster_backup.prom"]);
    });

    it("says so, rather than failing, when status.json is missing or not JSON; no stream report, no stream samples", () => {
        const cases: Record<string, string>[] = [{}, { "status.json": "{not json" }, { "status.json": "[1, 2]" }];
        for (const files of cases) {
            const r = convert(files);
            assert.strictEqual(r.status, 0, r.stderr);
            const s = samples(r.text);
            assert.ok(s.includes("pi_cluster_backup_status_ok 0"), r.text);
            assert.ok(s.includes('pi_cluster_backup_last_success_timestamp_seconds{kind="full"} 0'), r.text);
            assert.ok(!s.some((l) => l.startsWith("pi_cluster_binlog_stream_")), r.text);
        }
    });

    it("reports a stopped stream as down, with its last report's time", () => {
        const r = convert({ "status.json": JSON.stringify(STATUS), ".stream.json": JSON.stringify({ ...STREAM, state: "down", lagSeconds: null }) });
        const s = samples(r.text);
        assert.ok(s.includes("pi_cluster_binlog_stream_up 0"), r.text);
        assert.ok(!s.some((l) => l.startsWith("pi_cluster_binlog_stream_lag_seconds")), "a lag while down");
    });

    it("exits 1 naming the file when it cannot write it, and 2 on bad usage", () => {
        const r = convert({ "status.json": JSON.stringify(STATUS) }, "/nonexistent-dir/pi_cluster_backup.prom");
        assert.strictEqual(r.status, 1);
        assert.match(r.stderr, /cannot write \/nonexistent-dir\/pi_cluster_backup\.prom/);
        assert.strictEqual(spawnSync(PYTHON, [SCRIPT], { encoding: "utf8" }).status, 2);
    });
});
