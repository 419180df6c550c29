// scripts/promote: the promotion's decisions (which replica, whether it caught up, the
// fence, the config after it) and what leaves the state when the database Pi is lost.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parseConfig } from "../../components/config";
import { serverCnf } from "../../components/database";
import { renderFirewall, roleFirewall } from "../../components/render/firewall";
import { replicaServerId } from "../../components/render/mariadb";
import { caBundleAfter, fencePlan, Probe, promotedConfig, restartWaves, REWRITTEN_KEYS } from "../../scripts/promote/plan";
import { catchUpState, ChoiceOptions, chooseReplica, parseStatusOutput, receivedPosition, ReplicaFacts } from "../../scripts/promote/replicas";
import { Deployment, withoutLostDatabase } from "../../scripts/promote/state";
import { HOST_KEY, rawConfig, replicasConfig, tmpDir } from "./helpers";

const STACK = "urn:pulumi:lab::pi-cluster::";
const CLUSTER = `${STACK}pi-cluster:cluster:PiCluster::pi-cluster`;
const db = (name: string) => `${STACK}pi-cluster:cluster:PiCluster$pi-cluster:db:Database::${name}`;
const dbStep = (db: string, step: string) => `${STACK}pi-cluster:cluster:PiCluster$pi-cluster:db:Database$command:remote:Command::${db}-${step}`;
const dbHost = (name: string) => `${STACK}pi-cluster:cluster:PiCluster$pi-cluster:db:Database$pi-cluster:host:Host::${name}`;
const hostStep = (name: string, step: string) => `${STACK}pi-cluster:cluster:PiCluster$pi-cluster:db:Database$pi-cluster:host:Host$command:remote:Command::${name}-${step}`;
const webApp = `${STACK}pi-cluster:cluster:PiCluster$pi-cluster:web:WebServer$command:remote:Command::pi-web1-app`;

function state(): Deployment {
    const r = (urn: string, parent: string | undefined, type: string, dependencies: string[] = [], extra: Record<string, unknown> = {}) => ({ urn, parent, type, dependencies, ...extra });
    return {
        version: 3,
        deployment: {
            manifest: {},
            resources: [
                r(CLUSTER, undefined, "pi-cluster:cluster:PiCluster"),
                r(db("pi-db"), CLUSTER, "pi-cluster:db:Database"),
                r(dbHost("pi-db"), db("pi-db"), "pi-cluster:host:Host"),
                r(hostStep("pi-db", "base"), dbHost("pi-db"), "command:remote:Command"),
                r(dbStep("pi-db", "mariadb"), db("pi-db"), "command:remote:Command", [hostStep("pi-db", "base")]),
                r(dbStep("pi-db", "app-db"), db("pi-db"), "command:remote:Command", [dbStep("pi-db", "mariadb")], { propertyDependencies: { stdin: [dbStep("pi-db", "mariadb")] } }),
                r(db("pi-db-read1"), CLUSTER, "pi-cluster:db:Database"),
                r(dbStep("pi-db-read1", "mariadb"), db("pi-db-read1"), "command:remote:Command"),
                r(dbStep("pi-db-read1", "source"), db("pi-db-read1"), "command:remote:Command", [dbStep("pi-db", "app-db")]),
                r(dbStep("pi-db-read1", "replica"), db("pi-db-read1"), "command:remote:Command", [dbStep("pi-db-read1", "source")], {
                    propertyDependencies: { stdin: [dbStep("pi-db", "mariadb")], connection: [] },
                }),
                r(webApp, CLUSTER, "command:remote:Command", [dbStep("pi-db", "app-db"), dbStep("pi-db-read1", "replica")], { deletedWith: dbStep("pi-db", "app-db") }),
            ],
        },
    };
}

describe("promotion: the state without the lost database (scripts/promote/state.ts)", () => {
    it("takes out the lost database's component, everything under it, and the replicas' source steps", () => {
        const { deployment, removed } = withoutLostDatabase(state(), "pi-db", ["pi-db-read1"]);
        assert.deepStrictEqual(removed.sort(), [db("pi-db"), dbHost("pi-db"), hostStep("pi-db", "base"), dbStep("pi-db", "mariadb"), dbStep("pi-db", "app-db"), dbStep("pi-db-read1", "source")].sort());
        const urns = deployment.deployment.resources!.map((r) => r.urn);
        assert.deepStrictEqual(urns, [CLUSTER, db("pi-db-read1"), dbStep("pi-db-read1", "mariadb"), dbStep("pi-db-read1", "replica"), webApp]);
    });

    it("leaves no reference to what it took out in what stays", () => {
        const { deployment, removed } = withoutLostDatabase(state(), "pi-db", ["pi-db-read1"]);
        const text = JSON.stringify(deployment);
        for (const urn of removed) assert.ok(!text.includes(JSON.stringify(urn)), `${urn} is still referenced`);
        const web = deployment.deployment.resources!.find((r) => r.urn === webApp)!;
        assert.deepStrictEqual(web.dependencies, [dbStep("pi-db-read1", "replica")]);
        assert.strictEqual(web.deletedWith, undefined);
        const replica = deployment.deployment.resources!.find((r) => r.urn === dbStep("pi-db-read1", "replica"))!;
        assert.deepStrictEqual(replica.propertyDependencies, { stdin: [], connection: [] });
    });

    it("refuses a name that is not a database of the state, and keeps the input as it was", () => {
        const before = state();
        const copy = JSON.stringify(before);
        assert.throws(() => withoutLostDatabase(before, "pi-web1", []), /no database component named pi-web1/);
        withoutLostDatabase(before, "pi-db", ["pi-db-read1"]);
        assert.strictEqual(JSON.stringify(before), copy);
    });
});

/** SHOW SLAVE STATUS\G as MariaDB 10.11 prints it (the fields the decisions read, and some others). */
function slaveStatus(o: Partial<Record<string, string>> = {}): string {
    const f: Record<string, string> = {
        Slave_IO_State: "",
        Master_Host: "10.254.0.124",
        Master_User: "pi_repl",
        Master_Port: "3306",
        Master_Log_File: "mariadb-bin.000002",
        Read_Master_Log_Pos: "5821",
        Relay_Log_File: "mariadb-relay.000004",
        Relay_Log_Pos: "1234",
        Relay_Master_Log_File: "mariadb-bin.000002",
        Slave_IO_Running: "No",
        Slave_SQL_Running: "Yes",
        Last_Errno: "0",
        Last_Error: "",
        Exec_Master_Log_Pos: "5821",
        Last_IO_Errno: "2003",
        Last_IO_Error: "error reconnecting to master 'pi_repl@10.254.0.124:3306' - retry-time: 2  maximum-retries: 100000  message: Can't connect to server on '10.254.0.124' (113 \"No route to host\")",
        Last_SQL_Errno: "0",
        Last_SQL_Error: "",
        Using_Gtid: "Slave_Pos",
        Gtid_IO_Pos: "0-1-42",
        Slave_SQL_Running_State: "Slave has read all relay log; waiting for more updates",
        ...o,
    } as Record<string, string>;
    return ["*************************** 1. row ***************************", ...Object.entries(f).map(([k, v]) => `${k.padStart(30)}: ${v}`)].join("\n") + "\n";
}

const facts = (name: string, o: Partial<Record<string, string>> = {}): ReplicaFacts => ({ name, status: parseStatusOutput(slaveStatus(o)).status, gtidSlavePos: "0-1-42" });
const LOST = "10.254.0.124";
const choose = (f: ReplicaFacts[], o: Partial<ChoiceOptions> = {}) => chooseReplica(f, LOST, { allowBehind: false, allowUnreachable: false, ...o });

describe("promotion: reading a replica (scripts/promote/replicas.ts)", () => {
    it("reads SHOW SLAVE STATUS and the script's own lines, values with colons and spaces whole", () => {
        const { status, vars } = parseStatusOutput(`${slaveStatus()}pi-cluster:gtid_slave_pos=0-1-42,184418431-184418431-3\npi-cluster:read_only=1\n[pi-db-read1-promote] updated /etc/x\n`);
        assert.strictEqual(status.Master_Log_File, "mariadb-bin.000002");
        assert.strictEqual(status.Slave_IO_State, "");
        assert.match(status.Last_IO_Error, /^error reconnecting to master 'pi_repl@10\.254\.0\.124:3306' - retry-time: 2 {2}maximum-retries/);
        assert.deepStrictEqual(vars, { gtid_slave_pos: "0-1-42,184418431-184418431-3", read_only: "1" });
        assert.deepStrictEqual(receivedPosition(status), { file: 2, pos: 5821 });
        assert.deepStrictEqual(parseStatusOutput("").status, {});
    });

    it("is caught up when the SQL thread executed all it received, with the IO thread stopped", () => {
        assert.deepStrictEqual(catchUpState(facts("r").status!), { state: "caught-up" });
    });

    it("waits while the relay log still holds transactions to apply", () => {
        const applying = catchUpState(facts("r", { Exec_Master_Log_Pos: "4000", Slave_SQL_Running_State: "Reading event from the relay log" }).status!);
        assert.deepStrictEqual(applying, { state: "applying", detail: "applied 2:4000 of 2:5821 received (1821 bytes to go)" });
        const files = catchUpState(facts("r", { Relay_Master_Log_File: "mariadb-bin.000001", Exec_Master_Log_Pos: "9000", Slave_SQL_Running_State: "Reading event from the relay log" }).status!);
        assert.strictEqual(files.state, "applying");
        assert.match((files as { detail: string }).detail, /1 binlog file\(s\) to go/);
        // The IO thread may still run (retrying a dead database): nothing more arrives once the web servers are fenced.
        assert.deepStrictEqual(catchUpState(facts("r", { Slave_IO_Running: "Connecting" }).status!), { state: "caught-up" });
    });

    it("refuses a replica whose SQL thread stopped, on an error or by hand: its relay log would never be applied", () => {
        const err = catchUpState(facts("r", { Slave_SQL_Running: "No", Exec_Master_Log_Pos: "4000", Last_SQL_Errno: "1062", Last_SQL_Error: "Could not execute Write_rows_v1 event on table webapp_db.notes; Duplicate entry '7'" }).status!);
        assert.strictEqual(err.state, "failed");
        assert.match((err as { reason: string }).reason, /^its SQL thread stopped on error 1062: Could not execute Write_rows_v1 .*Duplicate entry '7'; what it received after that is not applied\. Fix the cause, then start its SQL thread alone/);
        const stopped = catchUpState(facts("r", { Slave_SQL_Running: "No", Exec_Master_Log_Pos: "4000" }).status!);
        assert.match((stopped as { reason: string }).reason, /SQL thread is stopped \(by hand or by a restore\)/);
        // The advice keeps the relay log: MariaDB discards it when replication starts with both threads stopped.
        assert.match((stopped as { reason: string }).reason, /START SLAVE SQL_THREAD\) while its IO thread still runs, never STOP SLAVE or START SLAVE/);
        // Even fully applied: a stopped thread is no clean thread.
        assert.strictEqual(catchUpState(facts("r", { Slave_SQL_Running: "No" }).status!).state, "failed");
        assert.match((catchUpState({}) as { reason: string }).reason, /replicates from nobody/);
    });

    it("takes the tail of a transaction received only in part as caught up, and says so", () => {
        const s = catchUpState(facts("r", { Exec_Master_Log_Pos: "5000" }).status!);
        assert.strictEqual(s.state, "caught-up");
        assert.match((s as { note: string }).note, /after 2:5000, up to 2:5821\) is a transaction it received only in part: not applied/);
    });
});

describe("promotion: which replica (scripts/promote/replicas.ts)", () => {
    const behind = facts("pi-db-read1", { Read_Master_Log_Pos: "4000", Exec_Master_Log_Pos: "4000", Gtid_IO_Pos: "0-1-40" });
    const ahead = facts("pi-db-read2", { Read_Master_Log_Pos: "5821", Gtid_IO_Pos: "0-1-42" });

    it("picks the replica that received the most of the lost database's binlog", () => {
        assert.deepStrictEqual(choose([behind, ahead]), { chosen: "pi-db-read2", notes: [] });
        assert.deepStrictEqual(choose([ahead, behind]), { chosen: "pi-db-read2", notes: [] });
        // A later binlog file beats a larger offset in an earlier one.
        const nextFile = facts("pi-db-read3", { Master_Log_File: "mariadb-bin.000003", Read_Master_Log_Pos: "400" });
        assert.deepStrictEqual(choose([ahead, nextFile]), { chosen: "pi-db-read3", notes: [] });
    });

    it("refuses a named replica that received less, naming the better one, unless --allow-behind", () => {
        const r = choose([behind, ahead], { requested: "pi-db-read1" });
        assert.ok("refuse" in r);
        assert.match(r.refuse, /^pi-db-read1 received mariadb-bin\.000002:4000, GTID 0-1-40 of 10\.254\.0\.124's binlog, pi-db-read2 mariadb-bin\.000002:5821, GTID 0-1-42: promoting pi-db-read1 would drop the writes only pi-db-read2 has\. Promote pi-db-read2, or pass --allow-behind/);
        const forced = choose([behind, ahead], { requested: "pi-db-read1", allowBehind: true });
        assert.ok("chosen" in forced && forced.chosen === "pi-db-read1");
        assert.match(forced.notes[0], /anyway \(--allow-behind\): the writes only pi-db-read2 has are dropped/);
        // Named and as advanced as any: chosen, ties included.
        assert.deepStrictEqual(choose([ahead, { ...ahead, name: "pi-db-read3" }], { requested: "pi-db-read3" }), { chosen: "pi-db-read3", notes: [] });
    });

    it("refuses while a replica cannot be asked (it may be the most advanced), unless --allow-unreachable-replicas", () => {
        const down: ReplicaFacts = { name: "pi-db-read2", unreachable: "ssh: connect to host 10.254.0.128 port 22: No route to host" };
        const r = choose([behind, down]);
        assert.ok("refuse" in r);
        assert.match(r.refuse, /^cannot ask pi-db-read2 \(ssh: connect .*No route to host\): it may have received more .* pass --allow-unreachable-replicas/);
        const going = choose([behind, down], { allowUnreachable: true });
        assert.ok("chosen" in going && going.chosen === "pi-db-read1");
        assert.match(going.notes[0], /^not asked \(--allow-unreachable-replicas\): pi-db-read2/);
        const named = choose([behind, down], { requested: "pi-db-read2", allowUnreachable: true });
        assert.ok("refuse" in named && /pi-db-read2 cannot be asked/.test(named.refuse));
    });

    it("refuses a replica that does not follow the lost database, and a name that is no replica", () => {
        const elsewhere = facts("pi-db-read2", { Master_Host: "10.254.0.127" });
        assert.deepStrictEqual(choose([behind, elsewhere]), { chosen: "pi-db-read1", notes: ["pi-db-read2 is no candidate: it replicates from 10.254.0.127, not 10.254.0.124"] });
        const r = choose([behind, elsewhere], { requested: "pi-db-read2" });
        assert.ok("refuse" in r && /pi-db-read2 cannot be promoted: it replicates from 10\.254\.0\.127/.test(r.refuse));
        const none = choose([{ name: "pi-db-read1", status: {} }]);
        assert.ok("refuse" in none && /no replica replicates from 10\.254\.0\.124/.test(none.refuse));
        const typo = choose([behind], { requested: "pi-db-reed1" });
        assert.ok("refuse" in typo && /pi-db-reed1 is not a replica of the stack \(dbReplicas: pi-db-read1\)/.test(typo.refuse));
    });
});

describe("promotion: the fence (scripts/promote/plan.ts)", () => {
    const lost = { name: "pi-db", address: LOST, port: 3306 };
    const probe = (name: string, result: Probe["result"], cordoned = false): Probe => ({ name, cordoned, result, detail: result === "unreachable" ? "ssh: connect to host: Connection timed out" : "" });

    it("fences every web server when the lost database is silent from each", () => {
        assert.deepStrictEqual(fencePlan([probe("pi-web1", "silent"), probe("pi-web2", "silent")], lost, false), { fence: ["pi-web1", "pi-web2"], notes: [] });
    });

    it("refuses when the lost database answers from any web server: it is alive", () => {
        const r = fencePlan([probe("pi-web1", "silent"), probe("pi-web2", "answers")], lost, true);
        assert.ok("refuse" in r);
        assert.match(r.refuse, /^pi-db \(10\.254\.0\.124\) answers on port 3306 from pi-web2: it is alive, and promoting now would leave two writable databases/);
    });

    it("refuses when a serving web server cannot be reached to fence it, unless --allow-unfenced; a cordoned one only gets a note", () => {
        const r = fencePlan([probe("pi-web1", "silent"), probe("pi-web2", "unreachable")], lost, false);
        assert.ok("refuse" in r);
        assert.match(r.refuse, /^cannot reach pi-web2 \(ssh: .*\) to fence pi-db off there: .* pass --allow-unfenced if it is powered off$/);
        assert.deepStrictEqual(fencePlan([probe("pi-web1", "silent"), probe("pi-web2", "unreachable")], lost, true), {
            fence: ["pi-web1"],
            notes: ["not fenced (--allow-unfenced): pi-web2 (ssh: connect to host: Connection timed out)"],
        });
        const cordoned = fencePlan([probe("pi-web1", "silent"), probe("pi-web2", "unreachable", true)], lost, false);
        assert.ok("fence" in cordoned);
        assert.deepStrictEqual(cordoned.fence, ["pi-web1"]);
        assert.match(cordoned.notes[0], /pi-web2 is cordoned/);
    });

    it("renders the fence first in both chains, before established connections are accepted, and nft accepts it", () => {
        const t = { adminCidrs: ["10.254.0.0/24"], lbAddress: "10.254.0.121", webAddresses: ["10.254.0.122"], dbAddress: "10.254.0.127", appPort: 3000, dbPort: 3306, httpPort: 80 };
        const text = renderFirewall({ ...roleFirewall("web", t), fence: [LOST] });
        const input = text.slice(text.indexOf("chain input"), text.indexOf("chain forward"));
        const output = text.slice(text.indexOf("chain output"));
        assert.ok(input.indexOf("ip saddr 10.254.0.124 drop") < input.indexOf("ct state established,related accept"));
        assert.ok(output.indexOf("ip daddr 10.254.0.124 meta l4proto tcp reject with tcp reset") < output.indexOf("ct state established,related accept"));
        assert.ok(output.indexOf("ip daddr 10.254.0.124 drop") < output.indexOf("ct state established,related accept"));
        assert.strictEqual(renderFirewall(roleFirewall("web", t)).includes("fence"), false);
        const f = path.join(tmpDir("pi-fence-"), "fw.nft");
        fs.writeFileSync(f, text);
        const r = spawnSync("nft", ["-c", "-f", f], { encoding: "utf8" });
        assert.strictEqual(r.status, 0, r.stderr);
    });
});

describe("promotion: the config after it (scripts/promote/plan.ts)", () => {
    const raw = () => ({ ...rawConfig(2), dbReplicas: replicasConfig(3), reapply: { "pi-db": 2, "pi-web1": 1 }, reseed: { "pi-db-read2": 1, "pi-db-read3": 4 } });

    it("makes the replica the database with its own server id, drops the lost one, and keeps the other replicas in order", () => {
        const { config, lost } = promotedConfig(raw(), "pi-db-read2");
        assert.strictEqual(lost, "pi-db");
        assert.deepStrictEqual(config.database, { name: "pi-db-read2", address: "10.254.0.128", hostKey: HOST_KEY, serverId: replicaServerId("10.254.0.128") });
        assert.deepStrictEqual((config.dbReplicas as { name: string }[]).map((r) => r.name), ["pi-db-read1", "pi-db-read3"]);
        assert.deepStrictEqual(config.reapply, { "pi-web1": 1 });
        assert.deepStrictEqual(config.reseed, { "pi-db-read3": 4 });
        // What the next up reads: valid, and the same server id the replica had.
        const c = parseConfig(config);
        assert.strictEqual(c.database.serverId, 184418432);
        assert.ok(!serverCnf({ address: "10.254.0.128", port: 3306, innodbBufferPoolSize: "512M", innodbLogFileSize: "128M", binlog: true, replica: false, serverId: c.database.serverId }).includes("server_id = 1\n"));
    });

    it("removes dbReplicas, and keeps an absent map absent, when the last replica is promoted", () => {
        const { config } = promotedConfig({ ...rawConfig(2), dbReplicas: replicasConfig(1) }, "pi-db-read1");
        assert.ok(!("dbReplicas" in config) && !("reapply" in config) && !("reseed" in config));
        assert.deepStrictEqual(REWRITTEN_KEYS, ["database", "dbReplicas", "reapply", "reseed"]);
        parseConfig(config);
    });

    it("refuses a name that is no replica, and leaves its input as it was", () => {
        const before = raw();
        const copy = JSON.stringify(before);
        assert.throws(() => promotedConfig(before, "pi-web1"), /pi-web1 is not a replica of the stack \(dbReplicas: pi-db-read1, pi-db-read2, pi-db-read3\)/);
        promotedConfig(before, "pi-db-read1");
        assert.strictEqual(JSON.stringify(before), copy);
    });

    it("keeps the first database's MariaDB config as it was, and gives a promoted one its own server id and GTID domain", () => {
        const cnf = (serverId?: number) => serverCnf({ address: "10.254.0.124", port: 3306, innodbBufferPoolSize: "512M", innodbLogFileSize: "128M", binlog: true, replica: false, serverId });
        assert.strictEqual(cnf(), cnf(1));
        assert.match(cnf(1), /^server_id = 1$/m);
        assert.doesNotMatch(cnf(1), /gtid_domain_id/);
        assert.match(cnf(184418431), /^server_id = 184418431$/m);
        assert.match(cnf(184418431), /^gtid_domain_id = 184418431$/m);
        assert.doesNotMatch(cnf(184418431), /read_only/);
    });

    it("reorders the web servers' CA bundle: the promoted replica's first, then the remaining replicas'", () => {
        const pem = (n: string) => `-----BEGIN CERTIFICATE-----\n${n}\n-----END CERTIFICATE-----\n`;
        const bundle = pem("DB") + pem("R1") + pem("R2") + pem("R3");
        assert.strictEqual(caBundleAfter(bundle, ["pi-db-read1", "pi-db-read2", "pi-db-read3"], ["pi-db-read2", "pi-db-read1", "pi-db-read3"]), pem("R2") + pem("R1") + pem("R3"));
        assert.strictEqual(caBundleAfter(pem("DB") + pem("R1"), ["pi-db-read1"], ["pi-db-read1"]), pem("R1"));
        assert.throws(() => caBundleAfter(pem("DB"), ["pi-db-read1"], ["pi-db-read1"]), /holds 1 certificate\(s\), expected 2/);
    });

    it("restarts the web servers in two halves, so one half always serves", () => {
        assert.deepStrictEqual(restartWaves(["a"]), [["a"]]);
        assert.deepStrictEqual(restartWaves(["a", "b"]), [["a"], ["b"]]);
        assert.deepStrictEqual(restartWaves(["a", "b", "c"]), [["a", "b"], ["c"]]);
    });
});
