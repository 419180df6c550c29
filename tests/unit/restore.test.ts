// The restore's pure decisions, run in bash: which chain it takes when files are bad (plan_restore
// with a skip list), when it refuses for a gap and what it says, which stream files continue the
// plan, where the backup's own binlog must start, what a re-run does with an earlier run, and
// what an interrupted apply needs (the DB Pi's half).
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const RESTORE = path.join(__dirname, "..", "..", "scripts", "restore.sh");
const DB_HALF = path.join(__dirname, "..", "..", "assets", "backup", "pi-cluster-restore.sh");

/** Runs a function of `file` (sourced) with `input` on stdin; its status and output lines. */
function call(file: string, fn: string, args: (string | number)[], input: string[] = []): { status: number; lines: string[] } {
    const r = spawnSync("bash", ["-c", `source "$1" && shift && ${fn} "$@"`, "bash", file, ...args.map(String)], { input: input.join("\n") + "\n", encoding: "utf8" });
    return { status: r.status ?? -1, lines: r.stdout.split("\n").filter((l) => l !== "") };
}
const restore = (fn: string, args: (string | number)[], input: string[] = []) => call(RESTORE, fn, args, input);

/** Calls `fn` of `file` once per argument list, in one shell (a spawn costs more than the call): "OUTPUT [STATUS]" each. */
function each(file: string, fn: string, argLists: string[][]): string[] {
    const quote = (x: string) => `'${x.replace(/'/g, "'\\''")}'`;
    const script = argLists.map((a) => `r=$(${fn} ${a.map(quote).join(" ")}); echo "$r [$?]"`).join("\n");
    const r = spawnSync("bash", ["-c", `source "$1" && set +e && ${script}`, "bash", file], { encoding: "utf8" });
    return r.stdout.split("\n").filter((l) => l !== "");
}

/** The tool's timestamp for `day` days, `hour` hours and `minute` minutes after 2026-01-01T00:00:00Z. */
function ts(day: number, hour = 0, minute = 0): string {
    const d = new Date(Date.UTC(2026, 0, 1) + ((day * 24 + hour) * 60 + minute) * 60000);
    return d.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
}
const epoch = (day: number, hour = 0, minute = 0) => Date.UTC(2026, 0, 1) / 1000 + day * 86400 + hour * 3600 + minute * 60;
const S = "s1x0a1b2c3d";
const S2 = "s2x99aa00ff";
const full = (day: number, hour = 3, series = S) => `full-${ts(day, hour)}-${series}.xb.zst.age`;
const inc = (day: number, hour: number, fullDay: number, series = S) => `inc-${ts(day, hour)}-of-${ts(fullDay, 3)}-${series}.xb.zst.age`;
const binlog = (day: number, hour: number, n: number, series = S) =>
    `binlog-${ts(day, hour)}-${String(n % 10000).padStart(4, "0")}-${series}-mariadb-bin.${String(n).padStart(6, "0")}.zst.age`;

/** A skip file with these names. */
function skipFile(names: string[]): string {
    const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "restore-skip-")), "skip");
    fs.writeFileSync(f, names.map((n) => `${n}\n`).join(""));
    return f;
}
const names = (lines: string[]) => lines.filter((l) => !l.startsWith("# "));
const notes = (lines: string[]) => lines.filter((l) => l.startsWith("# "));

describe("restore chain (plan_restore with a skip list)", () => {
    // Day 0's full, its incremental, binlogs 1-4; day 1's full, its incremental, binlogs 5-6.
    const all = [
        full(0), inc(0, 6, 0), binlog(0, 4, 1), binlog(0, 8, 2), binlog(0, 20, 3), binlog(1, 2, 4),
        full(1), inc(1, 6, 1), binlog(1, 5, 5), binlog(1, 9, 6),
    ];

    it("takes the newest full, its incrementals and its series' binlogs in file order", () => {
        assert.deepStrictEqual(names(restore("plan_restore", [epoch(9)], all).lines), [full(1), inc(1, 6, 1), binlog(1, 5, 5), binlog(1, 9, 6)]);
    });

    it("falls back from a bad newest full to the previous one with its incrementals and every binlog since, and says why", () => {
        const r = restore("plan_restore", [epoch(9), skipFile([full(1)])], all).lines;
        assert.deepStrictEqual(names(r), [full(0), inc(0, 6, 0), binlog(0, 4, 1), binlog(0, 8, 2), binlog(0, 20, 3), binlog(1, 2, 4), binlog(1, 5, 5), binlog(1, 9, 6)]);
        assert.ok(notes(r).some((n) => n.includes(full(1))), JSON.stringify(r));
    });

    it("stops the incrementals before a bad one, the binlogs still following the full", () => {
        const r = restore("plan_restore", [epoch(9), skipFile([inc(1, 6, 1)])], all).lines;
        assert.deepStrictEqual(names(r), [full(1), binlog(1, 5, 5), binlog(1, 9, 6)]);
    });

    it("notes a gap where a binlog is bad or missing, and plans nothing past it", () => {
        const bad = restore("plan_restore", [epoch(9), skipFile([binlog(0, 8, 2), full(1)])], all).lines;
        assert.deepStrictEqual(names(bad), [full(0), inc(0, 6, 0), binlog(0, 4, 1)]);
        assert.ok(notes(bad).some((n) => n.startsWith("# gap: ") && n.includes("mariadb-bin.000002")), JSON.stringify(bad));
        const missing = restore("plan_restore", [epoch(9), skipFile([full(1)])], all.filter((n) => n !== binlog(0, 20, 3))).lines;
        assert.deepStrictEqual(names(missing), [full(0), inc(0, 6, 0), binlog(0, 4, 1), binlog(0, 8, 2)]);
        assert.ok(notes(missing).some((n) => n.startsWith("# gap: ") && n.includes("mariadb-bin.000003")), JSON.stringify(missing));
    });

    it("never mixes series: another series' binlogs after the full are not its own", () => {
        const mixed = [full(0), binlog(0, 4, 1), binlog(0, 5, 1, S2), binlog(0, 6, 2, S2), binlog(0, 8, 2)];
        assert.deepStrictEqual(names(restore("plan_restore", [epoch(9)], mixed).lines), [full(0), binlog(0, 4, 1), binlog(0, 8, 2)]);
    });

    it("plans nothing when every full is bad", () => {
        assert.deepStrictEqual(names(restore("plan_restore", [epoch(9), skipFile([full(0), full(1)])], all).lines), []);
    });
});

describe("gap refusal (gap_refusal)", () => {
    const listing = skipFile([full(0), binlog(0, 4, 1), binlog(0, 20, 3), binlog(1, 2, 4)]);

    it("refuses a plan with a gap, naming the missing file, the time the binlogs stop, what is lost and the flag", () => {
        const r = restore("gap_refusal", ["the latest point", listing], [full(0), binlog(0, 4, 1), `# gap: ${S} mariadb-bin.000002 missing after mariadb-bin.000001: binlogs stop at 2026-01-01 04:00:00`]);
        assert.strictEqual(r.status, 1);
        const text = r.lines.join("\n");
        assert.match(text, /mariadb-bin\.000002 is missing or bad/);
        assert.match(text, /every write after 2026-01-01 04:00:00 up to the latest point would be lost/);
        assert.match(text, /2 shipped binlog file\(s\) after it \(mariadb-bin\.000003 to mariadb-bin\.000004, the last shipped 2026-01-02 02:00:00 UTC\)/);
        assert.match(text, /--to '2026-01-01 04:00:00'/);
        assert.match(text, /--accept-gap/);
    });

    it("passes a plan without a gap", () => {
        const r = restore("gap_refusal", ["the latest point", listing], [full(0), binlog(0, 4, 1)]);
        assert.deepStrictEqual(r, { status: 0, lines: [] });
    });
});

describe("a newer series without a backup (series_refusal)", () => {
    const NEW = "s1x99999999";

    it("refuses the latest point when the database's series has no backup on the target yet, naming both series and the ways on", () => {
        const r = restore("series_refusal", [NEW, full(0), skipFile([full(0), binlog(0, 4, 1)])]);
        assert.strictEqual(r.status, 1);
        const text = r.lines.join("\n");
        assert.match(text, new RegExp(`series is now ${NEW} .* no backup of it is on the target: the newest chain, of series ${S}, cannot reach its writes`));
        assert.match(text, /Take a full backup first .* --to, or accept losing those writes with --accept-gap/);
    });

    it("passes the plan's own series, an unknown one, and a series with backups on the target (the planner judges those)", () => {
        for (const current of [S, ""]) assert.deepStrictEqual(restore("series_refusal", [current, full(0), skipFile([full(0)])]), { status: 0, lines: [] });
        assert.deepStrictEqual(restore("series_refusal", [NEW, full(0), skipFile([full(0), binlog(1, 1, 0, NEW)])]), { status: 0, lines: [] });
    });
});

describe("stream tail (stream_tail)", () => {
    it("takes the stream files that continue the last planned binlog, in number order, up to the first missing one", () => {
        const files = ["mariadb-bin.000007", "mariadb-bin.000005", "mariadb-bin.000006", "mariadb-bin.000009"];
        assert.deepStrictEqual(restore("stream_tail", ["mariadb-bin.000004"], files).lines, ["mariadb-bin.000005", "mariadb-bin.000006", "mariadb-bin.000007"]);
    });

    it("ignores stream copies of files already planned, and takes nothing that does not continue them", () => {
        assert.deepStrictEqual(restore("stream_tail", ["mariadb-bin.000004"], ["mariadb-bin.000003", "mariadb-bin.000004", "mariadb-bin.000005"]).lines, ["mariadb-bin.000005"]);
        assert.deepStrictEqual(restore("stream_tail", ["mariadb-bin.000004"], ["mariadb-bin.000006", "other-bin.000005"]).lines, []);
    });

    it("without planned binlogs, takes the stream from its lowest file on", () => {
        assert.deepStrictEqual(restore("stream_tail", [""], ["mariadb-bin.000003", "mariadb-bin.000002", "mariadb-bin.000005"]).lines, ["mariadb-bin.000002", "mariadb-bin.000003"]);
    });
});

describe("where the binlogs must start (first_binlog_gap)", () => {
    it("accepts a chain that holds the backup's own binlog file, after earlier ones the backup holds", () => {
        assert.deepStrictEqual(restore("first_binlog_gap", ["mariadb-bin.000004"], ["mariadb-bin.000003", "mariadb-bin.000004", "mariadb-bin.000005"]).lines, []);
        assert.deepStrictEqual(restore("first_binlog_gap", ["mariadb-bin.000004"], []).lines, []);
    });

    it("names the first planned file when the backup's own is missing", () => {
        assert.deepStrictEqual(restore("first_binlog_gap", ["mariadb-bin.000004"], ["mariadb-bin.000003", "mariadb-bin.000005"]).lines, ["mariadb-bin.000005"]);
        assert.deepStrictEqual(restore("first_binlog_gap", ["mariadb-bin.000999"], ["mariadb-bin.001000"]).lines, ["mariadb-bin.001000"]);
    });
});

describe("a re-run and the run before it (previous_outcome)", () => {
    const run = "20260101T000000Z-abc123";
    const other = "20260101T000500Z-def456";
    const outcomes = (cases: [string, string, number][]) => each(RESTORE, "previous_outcome", cases.map(([p, st, any]) => [p, st, String(any)]));

    it("follows an apply this machine started; refuses another one unless --attach", () => {
        assert.deepStrictEqual(
            outcomes([
                [run, `applying ${run} root@op 2026-01-01T00:00:01Z isolated`, 0],
                ["", `applying ${other} root@op 2026-01-01T00:00:01Z isolated`, 0],
                ["", `applying ${other} root@op 2026-01-01T00:00:01Z isolated`, 1],
            ]),
            [`attach ${run} [0]`, `refuse applying ${other} root@op 2026-01-01T00:00:01Z isolated [0]`, `attach ${other} [0]`],
        );
    });

    it("recovers an interrupted apply, and refuses while another restore stages", () => {
        assert.deepStrictEqual(
            outcomes([
                ["", `interrupted ${other} root@op 2026-01-01T00:00:01Z swapped`, 0],
                [run, `staging ${other} root@op 2026-01-01T00:00:01Z`, 0],
            ]),
            ["recover [0]", `refuse staging ${other} root@op 2026-01-01T00:00:01Z [0]`],
        );
    });

    it("reports the result of its own run that ended while it was away, and goes on otherwise", () => {
        assert.deepStrictEqual(
            outcomes([
                [run, `idle last ${run} ok restored in 8 s`, 0],
                [run, `idle last ${other} ok restored in 8 s`, 0],
                ["", "idle", 0],
                ["", `abandoned ${other} root@op 2026-01-01T00:00:01Z`, 0],
            ]),
            [`report ${run} ok restored in 8 s [0]`, "go [0]", "go [0]", "go [0]"],
        );
    });
});

describe("an interrupted apply (recovery_action, on the DB Pi)", () => {
    const action = (phase: string) => call(DB_HALF, "recovery_action", [phase]);

    it("rolls back from every phase before the replay is complete: the old data directory comes back", () => {
        const phases = ["staged", "prepared", "incoming", "stopping", "stopped", "aside", "swapped", "isolated"];
        // One shell for all of them: each spawn costs more than the function.
        const r = call(DB_HALF, 'for p in "$@"; do echo "$p $(recovery_action "$p")"; done; true', phases);
        assert.deepStrictEqual(r.lines, phases.map((p) => `${p} rollback`));
    });

    it("finishes once the replay is complete, and does nothing after done", () => {
        assert.deepStrictEqual(action("replayed").lines, ["finish"]);
        assert.deepStrictEqual(action("reopening").lines, ["finish"]);
        assert.deepStrictEqual(action("done").lines, ["done"]);
        assert.strictEqual(action("bogus").status, 1);
    });

    it("counts an apply whose systemd unit runs as applying, also before the apply recorded its pid (the operator's SSH dropped)", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "restore-runner-"));
        try {
            const run = "20261206T112746Z-97bcc2";
            const stage = path.join(dir, "stage");
            fs.mkdirSync(stage);
            fs.writeFileSync(path.join(stage, "run"), `${run} root@op 2026-12-06T11:27:47Z\n`);
            fs.writeFileSync(path.join(stage, "journal"), "staged\nprepared\n");
            // systemctl as systemd answers for the unit: what UNIT_STATE says, by property name.
            fs.mkdirSync(path.join(dir, "bin"));
            fs.writeFileSync(path.join(dir, "bin", "systemctl"), `#!/bin/bash\n[[ "$*" == *"pi-cluster-restore-${run}.service"* ]] || exit 1\nprintf 'MainPID=%s\\nActiveState=%s\\n' $UNIT_STATE\n`, { mode: 0o755 });
            const state = (runner: string, unit: string) =>
                spawnSync("bash", ["-c", 'source "$1" && run_state', "bash", DB_HALF], {
                    env: { ...process.env, PATH: `${path.join(dir, "bin")}:${process.env.PATH}`, STAGE: stage, RUNNER: runner, UNIT_STATE: unit },
                    encoding: "utf8",
                }).stdout.trim();
            // No runner file: the apply was cut off between systemd-run and recording the pid.
            assert.strictEqual(state("systemd", "4242 active"), "applying");
            assert.strictEqual(state("systemd", "4242 deactivating"), "applying");
            assert.strictEqual(state("systemd", "0 inactive"), "interrupted");
            assert.strictEqual(state("systemd", "0 failed"), "interrupted");
            // Without systemd, the recorded pid decides, checked against its command line.
            assert.strictEqual(state("detached", "0 inactive"), "interrupted");
            fs.writeFileSync(path.join(stage, "runner"), `${process.pid}\n`);
            assert.strictEqual(state("detached", "0 inactive"), "interrupted", "a live pid that is not this run's apply");
            const sleeper = spawnSync("bash", ["-c", `exec -a "bash pi-cluster-restore run ${run}" sleep 30 >/dev/null 2>&1 </dev/null & echo $!`], { encoding: "utf8" }).stdout.trim();
            try {
                fs.writeFileSync(path.join(stage, "runner"), `${sleeper}\n`);
                assert.strictEqual(state("detached", "0 inactive"), "applying");
            } finally {
                process.kill(Number(sleeper));
            }
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("reads the binlog file of shipped names with and without a series, and of stream files", () => {
        assert.deepStrictEqual(each(DB_HALF, "binlog_file", [[binlog(0, 4, 42)], [`binlog-${ts(0, 4)}-0003-mariadb-bin.000042.zst.age`], [`stream-${S}-mariadb-bin.000043`], ["full-x"]]), [
            "mariadb-bin.000042 [0]",
            "mariadb-bin.000042 [0]",
            "mariadb-bin.000043 [0]",
            " [1]",
        ]);
        assert.deepStrictEqual(each(DB_HALF, "older_binlog", [[binlog(0, 4, 41), "mariadb-bin.000042"], [`stream-${S}-mariadb-bin.000043`, "mariadb-bin.000042"]]), [" [0]", " [1]"]);
    });
});
