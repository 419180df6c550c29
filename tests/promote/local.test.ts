// The promotion's database side for real, on this machine: a throwaway primary and two GTID
// replicas (ports 3420-3422, their own temp dir; mariadbd as on a Pi, minus TLS), the
// replicas left at different positions and one with an unapplied relay log, the primary
// killed. assets/scripts/promote-db.sh runs as promote runs it (its `mariadb` pointed at
// each server's socket, its firewall loaded in a throwaway network namespace), and the
// decisions of scripts/promote/replicas.ts read what it prints.
// Usage: npx mocha --timeout 120000 tests/promote/local.test.ts   (root; needs mariadbd, nft, unshare)
import * as assert from "assert";
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { fileText, renderScript } from "../../components/render/shell";
import { catchUpState, chooseReplica, parseStatusOutput, ReplicaFacts } from "../../scripts/promote/replicas";

const BASE = fs.mkdtempSync(path.join(os.tmpdir(), "pi-promote-local-"));
const PORTS = { primary: 3420, read1: 3421, read2: 3422 } as const;
type Name = keyof typeof PORTS;
const IDS: Record<Name, number> = { primary: 1, read1: 2, read2: 3 };
const servers = new Map<Name, ChildProcess>();
const sock = (n: Name) => path.join(BASE, n, "mysqld.sock");

function sql(n: Name, query: string): string {
    return execFileSync("mariadb", ["--no-defaults", `--socket=${sock(n)}`, "-uroot", "-N", "-B", "-e", query], { encoding: "utf8" }).trim();
}

async function start(n: Name): Promise<void> {
    const dir = path.join(BASE, n);
    const data = path.join(dir, "data");
    if (!fs.existsSync(data)) {
        fs.mkdirSync(data, { recursive: true });
        execFileSync("mariadb-install-db", ["--no-defaults", `--datadir=${data}`, "--user=root", "--auth-root-authentication-method=socket", "--skip-test-db"], { stdio: ["ignore", "ignore", "pipe"] });
    }
    // The settings components/render/mariadb.ts renders that matter here: ROW binlog, GTID
    // strict, a replica's own server id and GTID domain, log_slave_updates, read_only.
    const replica = n === "primary" ? [] : [`--gtid-domain-id=${IDS[n]}`, "--log-slave-updates", "--relay-log=mariadb-relay", "--read-only"];
    const p = spawn(
        "mariadbd",
        ["--no-defaults", "--user=root", `--datadir=${data}`, `--socket=${sock(n)}`, `--pid-file=${dir}/pid`, `--log-error=${dir}/error.log`, `--port=${PORTS[n]}`,
            "--bind-address=127.0.0.1", "--skip-name-resolve", "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
            `--server-id=${IDS[n]}`, `--log-bin=${data}/mariadb-bin`, "--binlog-format=ROW", "--gtid-strict-mode=ON", "--sync-binlog=1", ...replica],
        { stdio: "ignore", detached: true },
    );
    servers.set(n, p);
    for (let i = 0; i < 200; i++) {
        if (spawnSync("mariadb-admin", ["--no-defaults", `--socket=${sock(n)}`, "-uroot", "ping"], { stdio: "ignore" }).status === 0) return;
        await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${n} did not start: ${fs.readFileSync(path.join(dir, "error.log"), "utf8").slice(-2000)}`);
}

function kill(n: Name): void {
    const p = servers.get(n);
    if (p?.pid) {
        try {
            process.kill(p.pid, "SIGKILL");
        } catch {
            // Already gone.
        }
    }
    servers.delete(n);
}

/** promote-db.sh as the promote command renders and runs it, against server `n`. */
function promoteDb(n: Name, action: string[]): { status: number; out: string } {
    const bin = path.join(BASE, n, "bin");
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(path.join(bin, "mariadb"), `#!/bin/sh\nexec /usr/bin/mariadb --no-defaults --socket=${sock(n)} -uroot "$@"\n`, { mode: 0o755 });
    const script = renderScript("promote-db", {
        STEP: `${n}-promote`,
        OWN_ADDRESS: "127.0.0.1",
        REPL_USER: "pi_repl",
        SERVER_CNF: path.join(BASE, n, "60-pi-cluster.cnf"),
        SERVER_CNF_TEXT: fileText("[mariadbd]\nserver_id = 2\ngtid_domain_id = 2\n"),
        RULESET: path.join(BASE, n, "firewall.nft"),
        RULESET_TEXT: fileText("table inet pi_cluster\ndelete table inet pi_cluster\ntable inet pi_cluster {\n    chain input {\n        type filter hook input priority filter; policy accept;\n    }\n}\n"),
        CLIENTS_FILE: path.join(BASE, n, "firewall.d", "db-clients.nft"),
        CLIENTS_TEXT: fileText("# clients\n"),
    });
    // Its nft calls change a throwaway network namespace, never this machine's firewall.
    const r = spawnSync("unshare", ["--net", "bash", "-s", "--", ...action], { input: script, encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

function facts(n: "read1" | "read2", out: string): ReplicaFacts {
    const { status, vars } = parseStatusOutput(out);
    return { name: n, status, gtidSlavePos: vars.gtid_slave_pos };
}

const insert = (count: number) => sql("primary", `USE webapp_db; INSERT INTO notes (title) SELECT CONCAT('n', seq) FROM seq_1_to_${count}`);
const rows = (n: Name) => Number(sql(n, "SELECT COUNT(*) FROM webapp_db.notes"));

function follow(n: Name, port: number): void {
    sql(n, `STOP SLAVE; CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=${port}, MASTER_USER='pi_repl', MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE`);
}

async function until(what: string, ok: () => boolean, seconds = 30, diagnose = () => ""): Promise<void> {
    const deadline = Date.now() + seconds * 1000;
    while (Date.now() < deadline) {
        if (ok()) return;
        await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${what} ${diagnose()}`);
}

describe("promotion against real MariaDB: a primary and two replicas at different positions (ports 3420-3422)", function () {
    this.timeout(120_000);
    let seen: { read1: string; read2: string };

    before(async () => {
        await Promise.all((Object.keys(PORTS) as Name[]).map(start));
        sql("primary", "CREATE DATABASE webapp_db; CREATE TABLE webapp_db.notes (id INT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(64)); CREATE USER 'pi_repl'@'127.0.0.1' IDENTIFIED BY 'repl'; GRANT REPLICATION SLAVE ON *.* TO 'pi_repl'@'127.0.0.1'");
        for (const r of ["read1", "read2"] as const) follow(r, PORTS.primary);
        insert(10);
        await until("both replicas at 10 rows", () => rows("read1") === 10 && rows("read2") === 10);
        // pi-db-read2 stops receiving: it falls behind; read1 receives, but stops applying.
        sql("read2", "STOP SLAVE IO_THREAD");
        insert(5);
        await until("read1 at 15 rows", () => rows("read1") === 15);
        sql("read1", "STOP SLAVE SQL_THREAD");
        insert(5);
        await until("read1 received the last 5", () => parseStatusOutput(execFileSync("mariadb", ["--no-defaults", `--socket=${sock("read1")}`, "-uroot", "-e", "SHOW SLAVE STATUS\\G"], { encoding: "utf8" })).status.Gtid_IO_Pos === sql("primary", "SELECT @@gtid_binlog_pos"));
        kill("primary");
    });

    after(() => {
        for (const n of [...servers.keys()]) kill(n);
        fs.rmSync(BASE, { recursive: true, force: true });
    });

    it("picks the replica that received the most, and refuses the other by name", () => {
        const s1 = promoteDb("read1", ["status"]);
        const s2 = promoteDb("read2", ["status"]);
        assert.strictEqual(s1.status, 0, s1.out);
        assert.strictEqual(s2.status, 0, s2.out);
        seen = { read1: s1.out, read2: s2.out };
        const f = [facts("read1", s1.out), facts("read2", s2.out)];
        // Its primary is gone: the IO thread retries, and is left running.
        assert.strictEqual(f[0].status!.Slave_IO_Running, "Connecting");
        assert.strictEqual(f[1].status!.Slave_IO_Running, "No");
        assert.deepStrictEqual(chooseReplica(f, "127.0.0.1", { allowBehind: false, allowUnreachable: false }), { chosen: "read1", notes: [] });
        const named = chooseReplica(f, "127.0.0.1", { requested: "read2", allowBehind: false, allowUnreachable: false });
        assert.ok("refuse" in named && /Promote read1, or pass --allow-behind/.test(named.refuse), JSON.stringify(named));
    });

    it("refuses the chosen one while its relay log holds writes its stopped SQL thread never applied, stopping nothing", () => {
        const s = catchUpState(facts("read1", seen.read1).status!);
        assert.strictEqual(s.state, "failed");
        assert.match((s as { reason: string }).reason, /SQL thread is stopped/);
        assert.strictEqual(rows("read1"), 15);
        // The promote action refuses too, before it stops anything.
        const st = facts("read1", seen.read1).status!;
        const refused = promoteDb("read1", ["promote", `${st.Master_Log_File}:${st.Read_Master_Log_Pos}`]);
        assert.notStrictEqual(refused.status, 0);
        assert.match(refused.out, /its SQL thread is not running .*nothing was changed/);
        assert.strictEqual(sql("read1", "SELECT @@read_only"), "1");
        assert.strictEqual(facts("read1", promoteDb("read1", ["status"]).out).status!.Slave_IO_Running, "Connecting");
    });

    it("once its SQL thread runs (started alone, the IO thread running), sees it apply the whole relay log, and promotes it with every row", async () => {
        sql("read1", "START SLAVE SQL_THREAD");
        let status = "";
        await until("read1 caught up", () => {
            status = promoteDb("read1", ["status"]).out;
            return catchUpState(parseStatusOutput(status).status).state === "caught-up";
        });
        assert.strictEqual(rows("read1"), 20, status);
        const st = parseStatusOutput(status).status;
        // A position other than the one compared: refused, and the IO thread runs again.
        const stale = promoteDb("read1", ["promote", "mariadb-bin.000001:4"]);
        assert.notStrictEqual(stale.status, 0);
        assert.match(stale.out, /compared: mariadb-bin\.000001:4\).*nothing was changed/);
        assert.strictEqual(facts("read1", promoteDb("read1", ["status"]).out).status!.Slave_IO_Running, "Connecting");
        const p = promoteDb("read1", ["promote", `${st.Master_Log_File}:${st.Read_Master_Log_Pos}`]);
        assert.strictEqual(p.status, 0, p.out);
        assert.match(p.out, /read1-promote\] .* is the database: writable/);
        assert.strictEqual(sql("read1", "SELECT @@read_only"), "0");
        assert.strictEqual(sql("read1", "SHOW SLAVE STATUS"), "");
        assert.strictEqual(rows("read1"), 20);
        assert.strictEqual(fs.readFileSync(path.join(BASE, "read1", "60-pi-cluster.cnf"), "utf8"), "[mariadbd]\nserver_id = 2\ngtid_domain_id = 2\n");
        assert.strictEqual(fs.readFileSync(path.join(BASE, "read1", "firewall.d", "db-clients.nft"), "utf8"), "# clients\n");
    });

    it("takes new writes in its own GTID domain, and the replica that was behind follows it by GTID to every row", async () => {
        sql("read1", "INSERT INTO webapp_db.notes (title) VALUES ('after')");
        assert.match(sql("read1", "SELECT @@gtid_binlog_pos"), /(^|,)2-2-\d+(,|$)/);
        // Here every server is 127.0.0.1, so the promotion dropped the replication user the
        // others need; on the Pis the next up's source step grants it per replica address.
        sql("read1", "CREATE USER 'pi_repl'@'127.0.0.1' IDENTIFIED BY 'repl'; GRANT REPLICATION SLAVE ON *.* TO 'pi_repl'@'127.0.0.1'");
        follow("read2", PORTS.read1);
        await until("read2 at every row", () => rows("read2") === 21, 30, () => execFileSync("mariadb", ["--no-defaults", `--socket=${sock("read2")}`, "-uroot", "-e", "SHOW SLAVE STATUS\\G; SELECT @@gtid_slave_pos"], { encoding: "utf8" }));
        const st = parseStatusOutput(execFileSync("mariadb", ["--no-defaults", `--socket=${sock("read2")}`, "-uroot", "-e", "SHOW SLAVE STATUS\\G"], { encoding: "utf8" })).status;
        assert.strictEqual(st.Last_SQL_Errno, "0");
        assert.strictEqual(st.Slave_SQL_Running, "Yes");
    });
});
