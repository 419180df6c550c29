// The backup tool's pure decisions, run in bash with a controlled clock: what retention
// prunes on the target (and the dependency rule), and which files a restore applies.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as path from "path";

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
const full = (day: number, hour = 3) => `full-${ts(day, hour)}.xb.zst.age`;
const inc = (day: number, hour: number, fullDay: number, fullHour = 3) => `inc-${ts(day, hour)}-of-${ts(fullDay, fullHour)}.xb.zst.age`;
const binlog = (day: number, hour: number, minute: number, seq: number, file: string) => `binlog-${ts(day, hour, minute)}-${String(seq).padStart(4, "0")}-${file}.zst.age`;

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
