// The backup tool's pure decisions, run in bash with a controlled clock: what retention
// prunes on the target (and the dependency rule), and which files a restore applies.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { BACKUP_KINDS, backupUnitName, renderBackupService } from "../../components/render/backup";
import { fileText, renderScript } from "../../components/render/shell";

const TOOL = path.join(__dirname, "..", "..", "assets", "backup", "pi-cluster-backup.sh");
const RESTORE = path.join(__dirname, "..", "..", "assets", "backup", "pi-cluster-restore.sh");
const DAY = 86400;

/** Runs one of the tool's pure functions on `names` (one a line on stdin). */
function tool(fn: string, args: (string | number)[], names: string[]): string[] {
    const r = spawnSync("bash", ["-c", `source "$1" && shift && ${fn} "$@"`, "bash", TOOL, ...args.map(String)], { input: names.join("\n") + "\n", encoding: "utf8" });
    assert.strictEqual(r.status, 0, r.stderr);
    return r.stdout.split("\n").filter((l) => l !== "");
}

/** The tool's timestamp for `day` days and `hour` hours after 2026-01-01T00:00:00Z. */
function ts(day: number, hour = 0, minute = 0): string {
    const d = new Date(Date.UTC(2026, 0, 1) + ((day * 24 + hour) * 60 + minute) * 60000);
    return d.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
}
const epoch = (day: number, hour = 0, minute = 0) => Date.UTC(2026, 0, 1) / 1000 + day * DAY + hour * 3600 + minute * 60;
/** Names as the tool made them before binlog series (series "legacy"), or with SERIES. */
const full = (day: number, hour = 3, series = "") => `full-${ts(day, hour)}${series && "-" + series}.xb.zst.age`;
const inc = (day: number, hour: number, fullDay: number, fullHour = 3, series = "") => `inc-${ts(day, hour)}-of-${ts(fullDay, fullHour)}${series && "-" + series}.xb.zst.age`;
const binlog = (day: number, hour: number, minute: number, seq: number, file: string, series = "") =>
    `binlog-${ts(day, hour, minute)}-${String(seq).padStart(4, "0")}${series && "-" + series}-${file}.zst.age`;
const bin = (n: number) => `mariadb-bin.${String(n).padStart(6, "0")}`;
const S1 = "s1x0badc0de";
const S2 = "s2x12345678";

/** A file of names for plan_restore's SKIP_FILE, removed after the test run. */
const SKIP_DIR = fs.mkdtempSync(path.join(os.tmpdir(), "backup-test-"));
after(() => fs.rmSync(SKIP_DIR, { recursive: true, force: true }));
let skips = 0;
function skipFile(names: string[]): string {
    const f = path.join(SKIP_DIR, `skip-${skips++}`);
    fs.writeFileSync(f, names.join("\n") + "\n");
    return f;
}

describe("backup names and times (name_epoch, in bash arithmetic)", () => {
    it("reads the time of every kind of name, with or without a series, as the UTC epoch", () => {
        const cases = [
            [full(0), epoch(0, 3)],
            [full(59, 3, S1), epoch(59, 3)],
            [inc(400, 23, 399, 3, S2), epoch(400, 23)],
            [binlog(789, 12, 45, 7, bin(42), S1), epoch(789, 12, 45)],
            [binlog(1, 0, 1, 1, bin(1)), epoch(1, 0, 1)],
        ] as const;
        const r = spawnSync("bash", ["-c", 'source "$1"; shift; for n; do name_epoch "$n"; done', "bash", TOOL, ...cases.map((c) => c[0])], { encoding: "utf8" });
        assert.strictEqual(r.status, 0, r.stderr);
        assert.deepStrictEqual(r.stdout.trim().split("\n"), cases.map((c) => String(c[1])));
    });

    it("turns epoch seconds into the name's timestamp and back, across leap years and centuries", () => {
        const samples = [0, 951782400, 951868800, 4107542399, 4107542400, ...Array.from({ length: 40 }, (_, i) => 86399 + i * 104729033)];
        const stamp = (s: number) => new Date(s * 1000).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
        const r = spawnSync("bash", ["-c", 'source "$1"; shift; for s; do epoch_ts "${s% *}"; ts_epoch "${s#* }"; done', "bash", TOOL, ...samples.map((s) => `${s} ${stamp(s)}`)], {
            encoding: "utf8",
        });
        assert.strictEqual(r.status, 0, r.stderr);
        assert.deepStrictEqual(r.stdout.trim().split("\n"), samples.flatMap((s) => [stamp(s), String(s)]));
    });
});

describe("backup retention (plan_prune, on the target)", () => {
    // A full every day at 03:00 for 40 days, an incremental every hour after it, and binlogs.
    const names: string[] = [];
    for (let d = 0; d < 40; d++) {
        names.push(full(d));
        for (let h = 4; h < 24; h += 4) names.push(inc(d, h, d));
        names.push(binlog(d, 12, 0, d, `mariadb-bin.${String(d + 1).padStart(6, "0")}`));
    }

    it("keeps everything younger than the retention, and nothing is pruned inside it", () => {
        const now = epoch(40);
        const gone = new Set(tool("plan_prune", [now, 30], names));
        for (const n of names) {
            const m = /(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(n)!;
            const at = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) / 1000;
            if (at >= now - 30 * DAY) assert.ok(!gone.has(n), `pruned ${n}, inside the 30 days`);
        }
    });

    it("keeps the newest full at or before the cutoff, and what follows it, so the oldest point in the window stays restorable", () => {
        // The cutoff is day 10 at 12:00; the full of day 10 (03:00) is the anchor.
        const now = epoch(40, 12);
        const gone = tool("plan_prune", [now, 30], names);
        assert.ok(!gone.includes(full(10)), "the anchor full was pruned");
        assert.ok(!gone.includes(inc(10, 8, 10)), "an incremental of the anchor was pruned");
        assert.ok(gone.includes(full(9)), "the full before the anchor was kept");
        assert.ok(gone.includes(inc(9, 20, 9)));
        assert.ok(gone.includes(binlog(9, 12, 0, 9, "mariadb-bin.000010")));
        assert.strictEqual(gone.length, 10 * 7, "expected the 10 oldest days (7 files each) to go");
    });

    it("never deletes the full that a kept incremental was taken against, nor that full's older incrementals", () => {
        // The daily fulls of days 9 and 10 failed: day 10's incrementals still build on day 8's full.
        const chain = names.filter((n) => n !== full(9) && n !== full(10) && !n.startsWith(`inc-${ts(9, 0).slice(0, 9)}`) && !n.startsWith(`inc-${ts(10, 0).slice(0, 9)}`));
        chain.push(inc(9, 4, 8), inc(10, 4, 8), inc(10, 8, 8));
        const gone = tool("plan_prune", [epoch(40, 12), 30], chain);
        // The anchor is day 8's full (the newest at or before the cutoff); it and its chain stay.
        for (const n of [full(8), inc(8, 4, 8), inc(9, 4, 8), inc(10, 4, 8), inc(10, 8, 8)]) assert.ok(!gone.includes(n), `pruned ${n}, which a kept incremental needs`);
        assert.ok(gone.includes(full(7)));
    });

    it("prunes nothing while no full is older than the retention", () => {
        assert.deepStrictEqual(tool("plan_prune", [epoch(20), 30], names), []);
        assert.deepStrictEqual(tool("plan_prune", [epoch(400), 30], [inc(1, 4, 0), binlog(1, 5, 0, 1, "mariadb-bin.000001")]), []);
    });

    it("keeps the newest full even when it is older than the retention", () => {
        const gone = tool("plan_prune", [epoch(400), 30], [full(1), full(2), inc(2, 4, 2)]);
        assert.deepStrictEqual(gone, [full(1)]);
    });

    it("ignores what is not a backup name", () => {
        assert.deepStrictEqual(tool("plan_prune", [epoch(400), 30], ["status.json", "../etc/passwd", `full-${ts(1)}.xb.zst.age.sha256`, full(2)]), []);
    });
});

describe("restore plan (plan_restore, in scripts/restore.sh)", () => {
    const names = [
        full(0),
        inc(0, 4, 0),
        inc(0, 8, 0),
        binlog(0, 2, 0, 0, "mariadb-bin.000001"),
        binlog(0, 5, 0, 1, "mariadb-bin.000002"),
        binlog(0, 9, 0, 2, "mariadb-bin.000003"),
        full(1),
        inc(1, 4, 1),
        binlog(1, 3, 30, 3, "mariadb-bin.000004"),
        binlog(1, 5, 0, 4, "mariadb-bin.000005"),
    ];

    it("takes the newest full, its incrementals and every binlog after it for the latest point", () => {
        assert.deepStrictEqual(tool("plan_restore", [epoch(9)], names), [full(1), inc(1, 4, 1), binlog(1, 3, 30, 3, "mariadb-bin.000004"), binlog(1, 5, 0, 4, "mariadb-bin.000005")]);
    });

    it("stops at a point in time: the full and incrementals before it, the binlogs up to the first shipped after it", () => {
        assert.deepStrictEqual(tool("plan_restore", [epoch(0, 6)], names), [full(0), inc(0, 4, 0), binlog(0, 5, 0, 1, "mariadb-bin.000002"), binlog(0, 9, 0, 2, "mariadb-bin.000003")]);
    });

    it("plans nothing before the first full", () => {
        assert.deepStrictEqual(tool("plan_restore", [epoch(0, 1)], names), []);
    });
});

describe("backup retention and restore plans with binlog series", () => {
    it("keeps a kept incremental's full by its series too: the same time in another series is not it", () => {
        const names = [full(1, 3, S1), full(1, 3, S2), inc(20, 4, 1, 3, S2), full(20, 3, S1), full(25, 3, S1)];
        assert.deepStrictEqual(tool("plan_prune", [epoch(52), 30], names), [full(1, 3, S1)]);
    });

    it("applies only the full's own series: a new series' mariadb-bin.000001 never follows an old full", () => {
        const names = [
            full(0, 3, S1),
            binlog(0, 4, 0, 1, bin(7), S1),
            binlog(0, 5, 0, 2, bin(8), S1),
            // A restore or a promotion: a new series, numbered from 1 again, before its first full.
            binlog(0, 6, 0, 0, bin(1), S2),
            binlog(0, 7, 0, 1, bin(2), S2),
            full(0, 8, S2),
            binlog(0, 9, 0, 2, bin(3), S2),
        ];
        // Before the new series' first full, the old chain is all there is, and it cannot reach
        // the new series' writes: a gap, which the restore refuses without --accept-gap.
        assert.deepStrictEqual(tool("plan_restore", [epoch(0, 7, 30)], names), [
            full(0, 3, S1),
            binlog(0, 4, 0, 1, bin(7), S1),
            binlog(0, 5, 0, 2, bin(8), S1),
            `# gap: series ${S2} began at 2026-01-01T06:00:00Z (${binlog(0, 6, 0, 0, bin(1), S2)}), after ${full(0, 3, S1)}: its writes are not on this chain`,
        ]);
        // Before the new series began, no gap: the old chain holds every write up to then.
        assert.deepStrictEqual(tool("plan_restore", [epoch(0, 5, 30)], names), [full(0, 3, S1), binlog(0, 4, 0, 1, bin(7), S1), binlog(0, 5, 0, 2, bin(8), S1)]);
        assert.deepStrictEqual(tool("plan_restore", [epoch(1)], names), [full(0, 8, S2), binlog(0, 9, 0, 2, bin(3), S2)]);
    });

    it("does not fall back silently from a bad full of a newer series to an older series' chain: a gap", () => {
        const names = [full(0, 3, S1), binlog(0, 4, 0, 1, bin(7), S1), binlog(0, 6, 0, 0, bin(1), S2), full(0, 8, S2), binlog(0, 9, 0, 2, bin(3), S2)];
        assert.deepStrictEqual(tool("plan_restore", [epoch(1), skipFile([full(0, 8, S2)])], names), [
            `# skipped ${full(0, 8, S2)}: listed as bad`,
            full(0, 3, S1),
            binlog(0, 4, 0, 1, bin(7), S1),
            `# gap: series ${S2} began at 2026-01-01T06:00:00Z (${binlog(0, 6, 0, 0, bin(1), S2)}), after ${full(0, 3, S1)}: its writes are not on this chain`,
        ]);
        // An older series' late files after a newer full are no gap: that series began before it.
        assert.deepStrictEqual(tool("plan_restore", [epoch(1)], [...names, binlog(0, 10, 0, 3, bin(8), S1)]), [full(0, 8, S2), binlog(0, 9, 0, 2, bin(3), S2)]);
    });

    it("orders binlogs by file number and stops at a missing one, with a gap note", () => {
        const names = [full(0, 3, S1), binlog(0, 4, 0, 1, bin(9), S1), binlog(0, 4, 15, 2, bin(10), S1), binlog(0, 4, 45, 3, bin(12), S1), binlog(0, 5, 0, 4, bin(13), S1)];
        assert.deepStrictEqual(tool("plan_restore", [epoch(1)], names), [
            full(0, 3, S1),
            binlog(0, 4, 0, 1, bin(9), S1),
            binlog(0, 4, 15, 2, bin(10), S1),
            `# gap: ${S1} ${bin(11)} missing after ${bin(10)}: binlogs stop at 2026-01-01T04:15:00Z`,
        ]);
    });

    it("reads legacy names (no series) as one series of their own, which new names never join", () => {
        const names = [full(0), inc(0, 4, 0), binlog(0, 5, 0, 1, bin(3)), binlog(0, 6, 0, 2, bin(4), S1)];
        // The named files began a series of their own after the legacy full: the legacy chain
        // cannot reach their writes, and says so.
        assert.deepStrictEqual(tool("plan_restore", [epoch(1)], names), [
            full(0),
            inc(0, 4, 0),
            binlog(0, 5, 0, 1, bin(3)),
            `# gap: series ${S1} began at 2026-01-01T06:00:00Z (${binlog(0, 6, 0, 2, bin(4), S1)}), after ${full(0)}: its writes are not on this chain`,
        ]);
    });
});

describe("the planners under mawk, the awk a Pi's Debian has by default", () => {
    const mawk = fs.existsSync("/usr/bin/mawk") ? it : it.skip;
    mawk("plans the same as this machine's awk, gaps and series included", () => {
        const awkDir = fs.mkdtempSync(path.join(SKIP_DIR, "mawk-"));
        fs.symlinkSync("/usr/bin/mawk", path.join(awkDir, "awk"));
        const names = [full(0, 3, S1), inc(0, 4, 0, 3, S1), binlog(0, 3, 30, 1, bin(1), S1), binlog(0, 5, 0, 2, bin(3), S1), full(0, 6, S2), binlog(0, 7, 0, 0, bin(1), S2), full(0, 1)];
        const script = 'source "$1"; plan_restore "$2" "$3"; echo --; plan_prune "$4" 1';
        const args = ["bash", TOOL, String(epoch(1)), skipFile([full(0, 6, S2)]), String(epoch(3))];
        const run = (PATH: string) => spawnSync("bash", ["-c", script, ...args], { input: names.join("\n") + "\n", encoding: "utf8", env: { ...process.env, PATH } });
        const [viaMawk, viaDefault] = [run(`${awkDir}:${process.env.PATH}`), run(process.env.PATH!)];
        assert.strictEqual(viaMawk.status, 0, viaMawk.stderr);
        assert.strictEqual(viaMawk.stdout, viaDefault.stdout);
        assert.match(viaMawk.stdout, /^# gap: s1x0badc0de mariadb-bin\.000002 missing after mariadb-bin\.000001/m);
    });
});

describe("restore plan with files found bad (plan_restore TO SKIP_FILE)", () => {
    const names = [
        full(0, 3, S1),
        inc(0, 4, 0, 3, S1),
        binlog(0, 3, 30, 1, bin(1), S1),
        binlog(0, 4, 30, 2, bin(2), S1),
        binlog(0, 5, 30, 3, bin(3), S1),
        full(1, 3, S1),
        inc(1, 4, 1, 3, S1),
        inc(1, 5, 1, 3, S1),
        binlog(1, 3, 30, 4, bin(4), S1),
        binlog(1, 4, 30, 5, bin(5), S1),
        binlog(1, 5, 30, 6, bin(6), S1),
    ];

    it("falls back from a bad newest full to the previous good one and its binlogs, and says why", () => {
        assert.deepStrictEqual(tool("plan_restore", [epoch(9), skipFile([full(1, 3, S1)])], names), [
            `# skipped ${full(1, 3, S1)}: listed as bad`,
            full(0, 3, S1),
            inc(0, 4, 0, 3, S1),
            ...[1, 2, 3].map((n) => binlog(0, n + 2, 30, n, bin(n), S1)),
            ...[4, 5, 6].map((n) => binlog(1, n - 1, 30, n, bin(n), S1)),
        ]);
    });

    it("stops the incrementals before the first bad one, and replays the binlogs from there", () => {
        assert.deepStrictEqual(tool("plan_restore", [epoch(9), skipFile([inc(1, 4, 1, 3, S1)])], names), [
            full(1, 3, S1),
            `# skipped ${inc(1, 4, 1, 3, S1)}: listed as bad; the incrementals after it are not applied`,
            ...[4, 5, 6].map((n) => binlog(1, n - 1, 30, n, bin(n), S1)),
        ]);
    });

    it("stops the binlogs at a bad one that the backups applied do not cover", () => {
        assert.deepStrictEqual(tool("plan_restore", [epoch(9), skipFile([binlog(1, 5, 30, 6, bin(6), S1)])], names), [
            full(1, 3, S1),
            inc(1, 4, 1, 3, S1),
            inc(1, 5, 1, 3, S1),
            binlog(1, 3, 30, 4, bin(4), S1),
            binlog(1, 4, 30, 5, bin(5), S1),
            `# skipped ${binlog(1, 5, 30, 6, bin(6), S1)}: listed as bad`,
            `# gap: ${S1} ${bin(6)} missing after ${bin(5)}: binlogs stop at 2026-01-02T05:00:00Z`,
        ]);
    });

    it("passes over a bad or missing binlog that closed before the last incremental applied (it holds those events)", () => {
        const bad = binlog(1, 3, 30, 4, bin(4), S1);
        assert.deepStrictEqual(tool("plan_restore", [epoch(9), skipFile([bad])], names).slice(3), [
            `# skipped ${bad}: listed as bad`,
            `# covered: ${S1} ${bin(4)} is missing or bad, but closed before ${inc(1, 5, 1, 3, S1)}`,
            binlog(1, 4, 30, 5, bin(5), S1),
            binlog(1, 5, 30, 6, bin(6), S1),
        ]);
        // 000005 is missing: 000006 closed before the incremental, so 000005 did too.
        const chain = [full(1, 3, S1), binlog(1, 3, 30, 4, bin(4), S1), binlog(1, 4, 30, 6, bin(6), S1), inc(1, 5, 1, 3, S1), binlog(1, 5, 30, 7, bin(7), S1)];
        assert.deepStrictEqual(tool("plan_restore", [epoch(9)], chain), [
            full(1, 3, S1),
            inc(1, 5, 1, 3, S1),
            binlog(1, 3, 30, 4, bin(4), S1),
            `# covered: ${S1} ${bin(5)} is missing or bad, but closed before ${inc(1, 5, 1, 3, S1)}`,
            binlog(1, 4, 30, 6, bin(6), S1),
            binlog(1, 5, 30, 7, bin(7), S1),
        ]);
        // When the file after the missing one closed after the incremental, it may hold events the incremental lacks.
        const late = chain.filter((n) => n !== binlog(1, 4, 30, 6, bin(6), S1));
        assert.deepStrictEqual(tool("plan_restore", [epoch(9)], late).slice(3), [`# gap: ${S1} ${bin(5)} missing after ${bin(4)}: binlogs stop at 2026-01-02T05:00:00Z`]);
    });

    it("plans nothing but notes when every full up to the point is bad, and takes a missing SKIP_FILE as listing none", () => {
        assert.deepStrictEqual(tool("plan_restore", [epoch(0, 12), skipFile([full(0, 3, S1)])], names), [`# skipped ${full(0, 3, S1)}: listed as bad`]);
        assert.strictEqual(tool("plan_restore", [epoch(9), path.join(SKIP_DIR, "none")], names)[0], full(1, 3, S1));
    });
});

describe("planning 40 days of backups at the seed's schedule (4,800 names)", () => {
    // A full daily at 03:00, an incremental every other hour of the day, a binlog every 15 min.
    const names: string[] = [];
    let file = 0;
    for (let d = 0; d < 40; d++) {
        names.push(full(d, 3, S1));
        for (let h = 0; h < 24; h++) if (h !== 3) names.push(inc(d, h, h > 3 ? d : d - 1, 3, S1));
        for (let q = 0; q < 96; q++) names.push(binlog(d, Math.floor(q / 4), (q % 4) * 15, file % 10000, bin(++file), S1));
    }

    it("has 4,800 names", () => assert.strictEqual(names.length, 4800));

    it("plans the retention of all of them in under 2 s", () => {
        const t0 = process.hrtime.bigint();
        const gone = tool("plan_prune", [epoch(40, 12), 30], names);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        assert.ok(ms < 2000, `took ${ms} ms`);
        // The cutoff is day 10, 12:00: the anchor is day 10's full, and all before it goes: ten
        // days, and day 10's first three hours (3 incrementals of day 9's full, 12 binlogs).
        assert.strictEqual(gone.length, 10 * 120 + 3 + 12, `pruned ${gone.length}`);
        assert.ok(!gone.includes(full(10, 3, S1)) && gone.includes(full(9, 3, S1)));
    });

    it("plans a restore to the latest point in under 2 s", () => {
        const t0 = process.hrtime.bigint();
        const plan = tool("plan_restore", [epoch(41)], names);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        assert.ok(ms < 2000, `took ${ms} ms`);
        assert.strictEqual(plan[0], full(39, 3, S1));
        assert.strictEqual(plan.length, 1 + 20 + (96 - 12));
        assert.ok(!plan.some((l) => l.startsWith("#")), plan.filter((l) => l.startsWith("#")).join("\n"));
    });
});

describe("which staged binlogs a restore skips (older_binlog, on the DB Pi)", () => {
    const older = (staged: string, file: string) =>
        spawnSync("bash", ["-c", 'source "$1" && older_binlog "$2" "$3"', "bash", RESTORE, staged, file]).status === 0;

    it("skips a binlog of an earlier file of the series: the backup holds it (an incremental after the last shipping)", () => {
        assert.strictEqual(older(binlog(0, 12, 0, 10, "mariadb-bin.000017"), "mariadb-bin.000018"), true);
        assert.strictEqual(older(binlog(0, 12, 0, 10, "mariadb-bin.000999"), "mariadb-bin.001000"), true);
    });

    it("does not skip the backup's own file, a later one (a gap), another series, or when the backup names no file", () => {
        assert.strictEqual(older(binlog(0, 12, 0, 10, "mariadb-bin.000018"), "mariadb-bin.000018"), false);
        assert.strictEqual(older(binlog(0, 12, 0, 10, "mariadb-bin.000019"), "mariadb-bin.000018"), false);
        assert.strictEqual(older(binlog(0, 12, 0, 10, "other-bin.000001"), "mariadb-bin.000018"), false);
        assert.strictEqual(older(binlog(0, 12, 0, 10, "mariadb-bin.000001"), ""), false);
    });
});

describe("backup runs that failed, and the clock (the DB Pi's units and its step's verify)", () => {
    it("orders every backup run after time-sync.target without pulling it in (a Pi has no RTC)", () => {
        for (const k of BACKUP_KINDS) {
            const unit = renderBackupService(k);
            assert.match(unit, /^After=mariadb\.service network-online\.target time-sync\.target$/m, k);
            assert.doesNotMatch(unit, /^(Wants|Requires)=.*time-sync/m, k);
        }
    });

    it("verify names a kind whose last run failed, with its reason, and not one that succeeded", () => {
        const state = fs.mkdtempSync(path.join(SKIP_DIR, "state-"));
        fs.writeFileSync(
            path.join(state, "last-full.json"),
            '{"kind":"full","outcome":"FAILED","at":"2026-01-02T03:00:09Z","detail":"full-20260102T030000Z-s1x0badc0de.xb.zst.age not committed: mariadb-backup exited 137"}\n',
        );
        fs.writeFileSync(path.join(state, "last-binlog.json"), '{"kind":"binlog","outcome":"OK","at":"2026-01-02T03:01:00Z","detail":"2 file(s) shipped"}\n');
        const units = BACKUP_KINDS.map((k) => `${backupUnitName(k)}.service`);
        const script = renderScript("db-backup", {
            STEP: "pi-db-backup",
            PACKAGES: [],
            TOOL: path.join(state, "absent-tool"),
            TOOL_TEXT: fileText("x"),
            RESTORE_TOOL: path.join(state, "absent-restore"),
            RESTORE_TEXT: fileText("x"),
            ENV_FILE: path.join(state, "absent-env"),
            ENV_TEXT: fileText("x"),
            STATE_DIR: state,
            KEY: path.join(state, "absent-key"),
            KNOWN_HOSTS: path.join(state, "absent-known-hosts"),
            KNOWN_HOSTS_TEXT: fileText("x"),
            UNIT_NAMES: units,
            ...Object.fromEntries(units.map((u, i) => [`UNIT_${i}_TEXT`, fileText(u)])),
            TIMERS: [],
            FIRST_FULL: units[0],
            PUBLIC_KEY_MARK: "BACKUP_PUBLIC_KEY",
        });
        const r = spawnSync("bash", ["-s", "--", "verify"], { input: script, encoding: "utf8" });
        assert.strictEqual(r.status, 3, r.stdout + r.stderr);
        const runs = r.stdout.split("\n").filter((l) => l.startsWith("DRIFT backup:"));
        assert.deepStrictEqual(runs, ["DRIFT backup: the last full run failed at 2026-01-02T03:00:09Z: full-20260102T030000Z-s1x0badc0de.xb.zst.age not committed: mariadb-backup exited 137"]);
    });
});
