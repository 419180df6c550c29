// The binlog stream's decisions and files: which file the target streams from (plan_start,
// run in bash as the tool runs it), its settings, and the database's rule for it.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as path from "path";
import { renderStreamClient, renderStreamClientCnf, renderStreamEnv, STREAM_MAX_LAG_SECONDS } from "../../components/render/binlogStream";
import { BACKUP_ASSETS } from "../../components/render/backup";
import { STREAM_CA, STREAM_CLIENT_CNF } from "../../components/constants";

const TOOL = path.join(BACKUP_ASSETS, "pi-cluster-binlog-stream.sh");
const bin = (n: number) => `mariadb-bin.${String(n).padStart(6, "0")}`;

/** plan_start COMMITTED NEWEST with the database's binlogs `server` on stdin: its status and lines. */
function planStart(committed: number, newest: string, server: string[]): { ok: boolean; lines: string[] } {
    const r = spawnSync("bash", ["-c", 'source "$1" && plan_start "$2" "$3"', "bash", TOOL, String(committed), newest], { input: server.join("\n") + "\n", encoding: "utf8" });
    assert.strictEqual(r.stderr, "");
    return { ok: r.status === 0, lines: r.stdout.split("\n").filter((l) => l !== "") };
}

describe("where the binlog stream starts (plan_start)", () => {
    const server = [40, 41, 42, 43].map(bin);

    it("streams its newest copy again whole, which may have stopped mid-file: no gap and nothing twice", () => {
        assert.deepStrictEqual(planStart(40, bin(42), server), { ok: true, lines: [bin(42)] });
    });

    it("starts after the last committed backup when it has no newer copy", () => {
        assert.deepStrictEqual(planStart(41, "", server), { ok: true, lines: [bin(42)] });
        // A copy that is already committed (its deletion pending) does not send it back.
        assert.deepStrictEqual(planStart(42, bin(41), server), { ok: true, lines: [bin(43)] });
    });

    it("starts at the oldest binlog the database has for a new series", () => {
        assert.deepStrictEqual(planStart(0, "", server), { ok: true, lines: [bin(40)] });
        assert.deepStrictEqual(planStart(0, "", [bin(1)]), { ok: true, lines: [bin(1)] });
    });

    it("says so when the database no longer holds what neither the backups nor the copies have", () => {
        assert.deepStrictEqual(planStart(35, "", server).lines, [bin(40), "# gap: files 36 to 39 are neither backed up nor streamed, and the database no longer has them"]);
    });

    it("refuses a database whose numbering is behind the series: another incarnation", () => {
        const reset = planStart(41, bin(43), [bin(1), bin(2)]);
        assert.strictEqual(reset.ok, false);
        assert.match(reset.lines[0], /numbering restarted \(its newest file is 2, this series goes on at 43\).*waiting for its new series/);
        assert.strictEqual(planStart(0, "", []).ok, false);
    });
});

describe("the binlog stream's files", () => {
    it("tells the tool where the database is, which CA to check and where the password is, and holds no secret", () => {
        const env = renderStreamEnv({ dbAddress: "10.254.0.124", dbPort: 3306, serverId: 184418425 });
        for (const line of ["DB_HOST=10.254.0.124", "DB_PORT=3306", "DB_USER=pi_binlog", `DB_CA=${STREAM_CA}`, `DB_CLIENT_CNF=${STREAM_CLIENT_CNF}`, "SERVER_ID=184418425", `MAX_LAG_SECONDS=${STREAM_MAX_LAG_SECONDS}`]) {
            assert.ok(env.split("\n").includes(line), line);
        }
        assert.doesNotMatch(env, /password/i);
    });

    it("carries the password in a client option file, and refuses one that could break out of it", () => {
        assert.strictEqual(renderStreamClientCnf("abc123"), "[client]\npassword=abc123\n");
        assert.throws(() => renderStreamClientCnf("a\n[mysqld]"), /letters and digits/);
    });

    it("opens the database's port to the target only", () => {
        assert.strictEqual(renderStreamClient("10.254.0.121", 3306).split("\n")[1], 'ip saddr 10.254.0.121 tcp dport 3306 accept comment "the binlog stream to the backup target"');
    });
});
