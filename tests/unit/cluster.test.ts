// The resource graph PiCluster builds, checked on its inputs with Pulumi's mocks.
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import {
    AGE_PUBLIC_KEY, DB_BACKUP_PUBLIC_KEY, REPLICA_SEED_PUBLIC_KEY, replicasConfig, decodeVar, FAKE_PASSWORD, FAKE_PRIVATE_KEY, FAKE_TLS_OUTPUT, FAKE_WRITE_TOKEN, fakeArtifacts, installMocks, promiseOf, rawConfig, Recorded,
    recordRegisteredOutputs, recorder, settle, tmpDir,
} from "./helpers";
import { promotedConfig, renderPromotion } from "../../scripts/promote/plan";

const recorded = installMocks();
const registeredOutputs = recordRegisteredOutputs();

type Mod = typeof import("../../components");
let mod: Mod;

async function build(
    webs: number,
    raw = rawConfig(webs),
    writeToken?: string,
    webhookUrl?: string,
): Promise<{ cluster: InstanceType<Mod["PiCluster"]>; res: Map<string, Recorded> }> {
    recorded.clear();
    registeredOutputs.clear();
    const secret = (v?: string) => (v === undefined ? undefined : pulumi.secret(v));
    const config = mod.parseConfig(raw, undefined, secret(writeToken), undefined, secret(webhookUrl));
    const cluster = new mod.PiCluster("pi-cluster", { config, artifacts: fakeArtifacts() }, { transformations: [recorder(recorded)] });
    await promiseOf(cluster.webServers);
    await settle(recorded);
    return { cluster, res: new Map(recorded) };
}

function byName(res: Map<string, Recorded>, name: string, type = "command:remote:Command"): Recorded {
    const r = res.get(`${type}::${name}`);
    if (!r) throw new Error(`no ${type} named ${name}; have: ${[...res.values()].map((x) => x.name).join(", ")}`);
    return r;
}


/**
 * The TCP accept rules of a ruleset's input chain, as "saddr... tcp dport N" without the
 * comment, sorted: the whole inbound surface of the role.
 */
function inputAccepts(ruleset: string): string[] {
    const chain = /chain input \{([\s\S]*?)\n    \}/.exec(ruleset);
    assert.ok(chain, "the ruleset has an input chain");
    return chain[1]
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => /\btcp dport\b.*\baccept\b/.test(l))
        .map((l) => l.replace(/\s+accept\b.*$/, ""))
        .sort();
}

function commands(res: Map<string, Recorded>): Recorded[] {
    return [...res.values()].filter((r) => r.type === "command:remote:Command");
}

/** Each pi-cluster component's registered outputs, by name, once every component has registered them. */
async function componentOutputs(res: Map<string, Recorded>): Promise<Map<string, unknown>> {
    const components = [...res.values()].filter((r) => r.type.startsWith("pi-cluster:") && r.resource);
    const urns = await Promise.all(components.map((r) => promiseOf(r.resource!.urn)));
    // registerOutputs reaches the engine asynchronously, after its outputs resolve.
    for (let i = 0; i < 200 && !urns.every((u) => registeredOutputs.has(u)); i++) await new Promise((r) => setTimeout(r, 10));
    return new Map(components.map((r, i) => [`${r.type}::${r.name}`, registeredOutputs.get(urns[i])]));
}

describe("PiCluster resource graph", function () {
    before(async () => {
        mod = await import("../../components");
    });

    for (const webs of [1, 2, 5]) {
        it(`builds one LB, ${webs} web server(s) and one DB, each with its own steps`, async () => {
            const { res } = await build(webs);
            const names = [...res.values()].map((r) => `${r.type}::${r.name}`);
            const count = (t: string) => names.filter((n) => n.startsWith(`${t}::`)).length;
            assert.strictEqual(count("pi-cluster:cluster:PiCluster"), 1);
            assert.strictEqual(count("pi-cluster:lb:LoadBalancer"), 1);
            assert.strictEqual(count("pi-cluster:web:WebServer"), webs);
            assert.strictEqual(count("pi-cluster:db:Database"), 1);
            assert.strictEqual(count("pi-cluster:host:Host"), webs + 2);
            // The DB password and the write token.
            assert.strictEqual(count("random:index/randomPassword:RandomPassword"), 2);
            for (let i = 1; i <= webs; i++) {
                for (const step of ["wait-ssh", "base", "firewall", "drain", "node", "pm2", "app-secrets", "app", "admit"]) byName(res, `pi-web${i}-${step}`);
                byName(res, `pi-web${i}-app-upload`, "command:remote:CopyToRemote");
            }
            for (const step of ["wait-ssh", "base", "firewall", "nginx", "tls", "nginx-conf", "dashboard"]) byName(res, `pi-lb-${step}`);
            for (const step of ["wait-ssh", "base", "firewall", "tls", "mariadb", "app-db", "migrate", "require-tls"]) byName(res, `pi-db-${step}`);
            // 7 steps on the Pi + drain and admit on the LB, per web server; 7 on the LB; 8 on the DB.
            assert.strictEqual(commands(res).length, webs * 9 + 7 + 8);
        });
    }

    it("builds a read replica: its own steps, its source step on the database, and the web servers reading from it", async () => {
        const { res } = await build(2, { ...rawConfig(2), dbReplicas: replicasConfig(1), dbReplicaMaxLagSeconds: 7 });
        for (const step of ["wait-ssh", "base", "firewall", "tls", "mariadb", "seed-key", "source", "replica"]) byName(res, `pi-db-read1-${step}`);
        // The primary's own steps stay on the primary; a replica has none of them.
        for (const step of ["app-db", "migrate", "require-tls", "backup"]) assert.throws(() => byName(res, `pi-db-read1-${step}`), step);
        // The source step runs on the database, carries the replica's key, and is secret (the password).
        const source = byName(res, "pi-db-read1-source");
        assert.strictEqual(source.inputs.connection.host, "10.254.0.124");
        assert.strictEqual(source.inputs.logging, "stderr");
        assert.match(source.inputs.stdin, new RegExp(`^SEED_PUBLIC_KEY='${REPLICA_SEED_PUBLIC_KEY}'$`, "m"));
        assert.match(source.inputs.stdin, /^REPLICA_ADDRESS='10\.254\.0\.127'$/m);
        const replica = byName(res, "pi-db-read1-replica");
        assert.strictEqual(replica.inputs.connection.host, "10.254.0.127");
        assert.match(replica.inputs.stdin, /^PRIMARY_ADDRESS='10\.254\.0\.124'$/m);
        assert.ok(replica.dependsOn.some((d) => d.endsWith("pi-db-read1-source")), "the replica step follows its source step");
        // The replica's config: read-only, its own server id; the primary's: the binlog on.
        assert.match(decodeVar(byName(res, "pi-db-read1-mariadb").inputs.stdin, "SERVER_CNF_TEXT"), /^read_only = ON$/m);
        assert.match(decodeVar(byName(res, "pi-db-mariadb").inputs.stdin, "SERVER_CNF_TEXT"), /^log_bin = mariadb-bin$/m);
        // The web servers read from it, after it caught up, and reach it through their firewall.
        for (const w of ["pi-web1", "pi-web2"]) {
            const env = decodeVar(byName(res, `${w}-app`).inputs.stdin, "ENV_TEXT");
            assert.match(env, /^DB_REPLICAS="pi-db-read1@10\.254\.0\.127:3306"$/m);
            assert.match(env, /^DB_REPLICA_MAX_LAG_SECONDS="7"$/m);
            assert.ok(byName(res, `${w}-app`).dependsOn.some((d) => d.endsWith("pi-db-read1-replica")), `${w}-app waits for the replica`);
        }
        // The database's sshd lets the seeding account in from the replica only.
        assert.match(byName(res, "pi-db-base").inputs.stdin, /pi-seed@10\.254\.0\.127/);
        assert.strictEqual([...res.values()].filter((r) => r.type === "random:index/randomPassword:RandomPassword").length, 3);
    });

    describe("semi-synchronous replication", () => {
        const semiSync = (res: Map<string, Recorded>, host: string) => {
            const stdin = byName(res, `${host}-mariadb`).inputs.stdin;
            const words = [...stdin.match(/^SEMISYNC=\((.*)\)$/m)![1].matchAll(/'([^']*)'/g)].map((m) => m[1]);
            return { cnf: decodeVar(stdin, "SEMISYNC_CNF_TEXT"), vars: Object.fromEntries(words.map((w) => w.split("="))) };
        };
        // One graph with backups and two replicas and one with backups alone, shared by the cases below.
        const backup = { agePublicKey: AGE_PUBLIC_KEY };
        let replicated: Map<string, Recorded>;
        let alone: Map<string, Recorded>;
        before(async () => {
            replicated = (await build(1, { ...rawConfig(1), backup, dbReplicas: replicasConfig(2), dbSemiSyncTimeoutMs: 1500 })).res;
            alone = (await build(1, { ...rawConfig(1), backup, dbSemiSyncTimeoutMs: 1500 })).res;
        });

        it("makes the database wait for its replicas' acks, losslessly, for dbSemiSyncTimeoutMs, and the replicas ack", () => {
            const res = replicated;
            const want = (master: string, slave: string) => ({
                rpl_semi_sync_master_enabled: master,
                rpl_semi_sync_master_wait_point: "AFTER_SYNC",
                rpl_semi_sync_master_timeout: "1500",
                rpl_semi_sync_slave_enabled: slave,
            });
            assert.deepStrictEqual(semiSync(res, "pi-db").vars, want("ON", "OFF"));
            for (const r of ["pi-db-read1", "pi-db-read2"]) assert.deepStrictEqual(semiSync(res, r).vars, want("OFF", "ON"));
            // The file says what the words say: what SET GLOBAL applies is what a restart reads.
            assert.ok(semiSync(res, "pi-db").cnf.endsWith("\n[mariadbd]\nrpl_semi_sync_master_enabled = ON\nrpl_semi_sync_master_wait_point = AFTER_SYNC\nrpl_semi_sync_master_timeout = 1500\nrpl_semi_sync_slave_enabled = OFF\n"));
        });

        it("makes a promoted replica the semi-sync database of the replicas left: it waits, they ack", async () => {
            // What `pi-cluster promote` leaves in the config: pi-db-read1 the database, pi-db-read2 its replica.
            const [read1, read2] = replicasConfig(2);
            const { res } = await build(1, { ...rawConfig(1), database: read1, dbReplicas: [read2] });
            assert.strictEqual(semiSync(res, "pi-db-read1").vars.rpl_semi_sync_master_enabled, "ON");
            assert.strictEqual(semiSync(res, "pi-db-read1").vars.rpl_semi_sync_slave_enabled, "OFF");
            assert.strictEqual(semiSync(res, "pi-db-read2").vars.rpl_semi_sync_master_enabled, "OFF");
            assert.strictEqual(semiSync(res, "pi-db-read2").vars.rpl_semi_sync_slave_enabled, "ON");
        });

        it("adds replicas without restarting the database (backups on): only the semi-sync file, applied live, changes", () => {
            const cnf = (res: Map<string, Recorded>) => decodeVar(byName(res, "pi-db-mariadb").inputs.stdin, "SERVER_CNF_TEXT");
            assert.strictEqual(cnf(replicated), cnf(alone));
            assert.strictEqual(semiSync(alone, "pi-db").vars.rpl_semi_sync_master_enabled, "OFF");
            assert.strictEqual(semiSync(replicated, "pi-db").vars.rpl_semi_sync_master_enabled, "ON");
        });

        it("turns the waiting off with dbSemiSyncTimeoutMs 0; the replicas stay ready to ack", async () => {
            const { res } = await build(1, { ...rawConfig(1), dbReplicas: replicasConfig(1), dbSemiSyncTimeoutMs: 0 });
            assert.strictEqual(semiSync(res, "pi-db").vars.rpl_semi_sync_master_enabled, "OFF");
            assert.strictEqual(semiSync(res, "pi-db-read1").vars.rpl_semi_sync_slave_enabled, "ON");
        });
    });

    it("runs the replicas' source steps on the database one after the other (each may run apt there)", async () => {
        const { res } = await build(2, { ...rawConfig(2), dbReplicas: replicasConfig(3) });
        assert.ok(!byName(res, "pi-db-read1-source").dependsOn.some((d) => d.endsWith("-source")));
        assert.ok(byName(res, "pi-db-read2-source").dependsOn.includes("pi-db-read1-source"));
        assert.ok(byName(res, "pi-db-read3-source").dependsOn.includes("pi-db-read2-source"));
    });

    it("renders after a promotion what scripts/promote installed before it, so that up restarts nothing again", async () => {
        // With monitoring on: the apps' env then names their metrics listener (CI found an up
        // restarting the apps a promotion had switched when promote left it out).
        const before = { ...rawConfig(2), dbReplicas: replicasConfig(2), backup: { agePublicKey: AGE_PUBLIC_KEY }, monitoring: { enabled: true } };
        const { config } = promotedConfig(before, "pi-db-read1");
        const bundle = FAKE_TLS_OUTPUT.caCertificate.repeat(3);
        const scripts = renderPromotion(mod.parseConfig(config), "10.254.0.124", bundle, ["pi-db-read1", "pi-db-read2"]);
        const { res } = await build(2, config);
        const same = (script: string, step: string, name: string, strip = (t: string) => t) =>
            assert.strictEqual(strip(decodeVar(script, name)), decodeVar(byName(res, step).inputs.stdin, name), `${name} differs from ${step}'s`);
        same(scripts.db, "pi-db-read1-mariadb", "SERVER_CNF_TEXT");
        assert.match(decodeVar(scripts.db, "SERVER_CNF_TEXT"), /^server_id = 184418431$/m);
        same(scripts.db, "pi-db-read1-firewall", "RULESET_TEXT");
        same(scripts.db, "pi-db-read1-app-db", "CLIENTS_TEXT");
        for (const w of scripts.webs) {
            same(w.script, `${w.name}-app`, "ENV_TEXT");
            assert.match(decodeVar(w.script, "ENV_TEXT"), /^METRICS_PORT="9464"$/m);
            same(w.script, `${w.name}-app`, "DB_CA_TEXT");
            // The fence is the one difference, and the up's ruleset lifts it.
            same(w.script, `${w.name}-firewall`, "RULESET_TEXT", (t) => t.replace(/^.*fence: the database before a promotion.*\n/gm, ""));
            assert.match(decodeVar(w.script, "RULESET_TEXT"), /ip saddr 10\.254\.0\.124 drop comment "fence/);
        }
        assert.deepStrictEqual(scripts.lb.map((l) => l.name), ["pi-web1", "pi-web2"]);
        assert.match(scripts.lb[0].drain, /^SERVER='10\.254\.0\.122:3000'$/m);
    });

    it("builds no replica resource and no replica setting when dbReplicas is empty", async () => {
        const { res } = await build(2);
        assert.ok(![...res.values()].some((r) => /read|repl|seed/.test(r.name)), "a replica resource without replicas");
        assert.doesNotMatch(decodeVar(byName(res, "pi-web1-app").inputs.stdin, "ENV_TEXT"), /DB_REPLICA/);
    });

    it("keeps a cordoned server's own steps as they are, out of the LB, and marked in cluster.json", async () => {
        recorded.clear();
        const raw = rawConfig(2);
        (raw.webServers as Record<string, unknown>[])[1].cordon = true;
        const cluster = new mod.PiCluster("pi-cluster", { config: mod.parseConfig(raw), artifacts: fakeArtifacts() }, { transformations: [recorder(recorded)] });
        await promiseOf(cluster.webServers);
        await settle(recorded);
        const res = new Map(recorded);
        const ignored = (name: string, type = "command:remote:Command") => (byName(res, name, type).ignoreChanges ?? []).join(",");
        for (const step of ["wait-ssh", "base", "firewall", "node", "pm2", "app-secrets", "app"]) assert.strictEqual(ignored(`pi-web2-${step}`), "*", step);
        assert.strictEqual(ignored("pi-web2-app-upload", "command:remote:CopyToRemote"), "*");
        // Its drain and admit (on the LB) follow the config; pi-web1 is not affected.
        for (const name of ["pi-web2-drain", "pi-web2-admit", "pi-web1-app", "pi-web1-drain"]) assert.strictEqual(ignored(name), "", name);
        assert.match(byName(res, "pi-web2-admit").inputs.stdin, /^CORDONED='true'$/m);
        assert.match(byName(res, "pi-web1-admit").inputs.stdin, /^CORDONED='false'$/m);
        const cj = JSON.parse(decodeVar(byName(res, "pi-lb-nginx-conf").inputs.stdin, "CLUSTER_INTERNAL_JSON_TEXT"));
        assert.deepStrictEqual(cj.webServers, [
            { name: "pi-web1", address: "10.254.0.122" },
            { name: "pi-web2", address: "10.254.0.123", maintenance: true },
        ]);
        const pub = JSON.parse(decodeVar(byName(res, "pi-lb-nginx-conf").inputs.stdin, "CLUSTER_JSON_TEXT"));
        assert.deepStrictEqual(pub.webServers, [{ name: "pi-web1" }, { name: "pi-web2", maintenance: true }]);
    });

    it("runs every step of a Pi whose reapply was bumped again, and no other Pi's; a web server drains for it", async () => {
        const stdins = async (reapply: number) => {
            const raw = rawConfig(2);
            const { res } = await build(2, { ...raw, reapply: { "pi-web1": reapply } });
            return new Map(await Promise.all(commands(res).map(async (c) => [c.name, String(await promiseOf(pulumi.output(c.inputs.stdin)))] as const)));
        };
        const before = await stdins(0);
        const after = await stdins(1);
        const changed = [...after.keys()].filter((n) => after.get(n) !== before.get(n)).sort();
        assert.deepStrictEqual(changed, ["pi-web1-admit", "pi-web1-app", "pi-web1-app-secrets", "pi-web1-base", "pi-web1-drain", "pi-web1-firewall", "pi-web1-node", "pi-web1-pm2"]);
        assert.ok(after.get("pi-web1-app")!.endsWith("# reapply 1: every step on this Pi ran again (its reapply setting)\n"));
        // The drain sees a new rollout, so it takes the server out before its steps run again.
        const rollout = (s: string) => /^ROLLOUT='([0-9a-f]+)'$/m.exec(s)![1];
        assert.notStrictEqual(rollout(after.get("pi-web1-drain")!), rollout(before.get("pi-web1-drain")!));
        assert.throws(() => mod.parseConfig({ ...rawConfig(2), reapply: { "pi-db": -1 } }), /pi-cluster:reapply\.pi-db: expected 0 or more/);
        assert.throws(() => mod.parseConfig({ ...rawConfig(2), reapply: { "pi-web9": 1 } }), /pi-cluster:reapply\.pi-web9: expected the name of a host of the stack \(pi-lb, pi-web1, pi-web2, pi-db\)/);
    });

    it("renders the configured API limits into the load balancer's site", async () => {
        recorded.clear();
        const raw = rawConfig(2);
        Object.assign(raw, { apiRateLimitPerSecond: 10000, apiRateLimitBurst: 20000, apiConnectionsPerClient: 500 });
        const cluster = new mod.PiCluster("pi-cluster", { config: mod.parseConfig(raw), artifacts: fakeArtifacts() }, { transformations: [recorder(recorded)] });
        await promiseOf(cluster.webServers);
        await settle(recorded);
        const site = decodeVar(byName(new Map(recorded), "pi-lb-nginx-conf").inputs.stdin, "SITE_TEXT");
        assert.match(site, /^limit_req_zone \$pi_cluster_api_client zone=pi_cluster_api_req:10m rate=10000r\/s;$/m);
        // Five API locations, on 443 and on 127.0.0.1:80 (the LB's own probes; the world gets a redirect).
        assert.strictEqual([...site.matchAll(/^        limit_req zone=pi_cluster_api_req burst=20000 nodelay;\n        limit_conn pi_cluster_api_conn 500;$/gm)].length, 10);
    });

    it("drains again when what a web server runs or its host key changes, and only then", () => {
        const base = mod.rolloutFingerprint(["ssh-ed25519 A", "node", "pm2", "app"]);
        assert.match(base, /^[0-9a-f]{16}$/);
        assert.strictEqual(mod.rolloutFingerprint(["ssh-ed25519 A", "node", "pm2", "app"]), base);
        for (const changed of [["ssh-ed25519 B", "node", "pm2", "app"], ["ssh-ed25519 A", "node", "pm2", "app2"], ["ssh-ed25519 A", "nodepm2", "", "app"]]) {
            assert.notStrictEqual(mod.rolloutFingerprint(changed), base, changed.join("|"));
        }
        // The lease outlasts a start that fails its gate plus the rollback's start.
        assert.strictEqual(mod.drainLeaseSeconds(60), 150);
        assert.ok(mod.drainLeaseSeconds(20) > 2 * 20);
    });

    it("wires the DB address into every web server's env file, and the password into its secrets file", async () => {
        const { res } = await build(2);
        for (const w of ["pi-web1", "pi-web2"]) {
            const env = decodeVar(byName(res, `${w}-app`).inputs.stdin, "ENV_TEXT");
            assert.match(env, /^DB_HOST="10\.254\.0\.124"$/m);
            assert.match(env, new RegExp(`^NODE_NAME="${w}"$`, "m"));
            assert.doesNotMatch(env, /PASSWORD/);
            const secrets = decodeVar(String(await promiseOf(pulumi.output(byName(res, `${w}-app-secrets`).inputs.stdin))), "SECRETS_TEXT");
            assert.match(secrets, new RegExp(`^DB_PASSWORD="${FAKE_PASSWORD}"$`, "m"));
        }
    });

    it("generates the write token when the config sets none, and hands it to every app only, as a secret", async () => {
        const { cluster, res } = await build(2);
        const token = byName(res, "pi-cluster-api-write-token", "random:index/randomPassword:RandomPassword");
        assert.deepStrictEqual({ length: token.inputs.length, special: token.inputs.special }, { length: 40, special: false });
        const stdin = async (name: string) => String(await promiseOf(pulumi.output(byName(res, name).inputs.stdin)));
        for (const w of ["pi-web1", "pi-web2"]) {
            assert.match(decodeVar(await stdin(`${w}-app-secrets`), "SECRETS_TEXT"), new RegExp(`^API_WRITE_TOKEN="${FAKE_WRITE_TOKEN}"$`, "m"));
        }
        const carriers = commands(res).filter((c) => String(c.inputs.stdin ?? "").includes(FAKE_WRITE_TOKEN)).map((c) => c.name).sort();
        assert.deepStrictEqual(carriers, ["pi-web1-app-secrets", "pi-web2-app-secrets"]);
        for (const c of commands(res)) {
            for (const field of ["create", "update", "delete"]) assert.ok(!String(c.inputs[field] ?? "").includes(FAKE_WRITE_TOKEN), `${c.name}.${field} holds the token`);
        }
        assert.strictEqual(await pulumi.isSecret(cluster.apiWriteToken), true);
        assert.strictEqual(await promiseOf(cluster.apiWriteToken), FAKE_WRITE_TOKEN);
    });

    it("uses the configured write token, and then generates none", async () => {
        const configured = "Configured0Token0For0Writes";
        const { cluster, res } = await build(2, rawConfig(2), configured);
        assert.strictEqual([...res.values()].filter((r) => r.name === "pi-cluster-api-write-token").length, 0);
        const secrets = decodeVar(String(await promiseOf(pulumi.output(byName(res, "pi-web1-app-secrets").inputs.stdin))), "SECRETS_TEXT");
        assert.match(secrets, new RegExp(`^API_WRITE_TOKEN="${configured}"$`, "m"));
        assert.strictEqual(await pulumi.isSecret(cluster.apiWriteToken), true);
        assert.strictEqual(await promiseOf(cluster.apiWriteToken), configured);
    });

    it("wires every web address into its own upstream member, the per-node routes and cluster.json", async () => {
        const { res } = await build(5);
        const script = byName(res, "pi-lb-nginx-conf").inputs.stdin;
        const site = decodeVar(script, "SITE_TEXT");
        const upstream = /upstream pi_cluster_backend \{([^}]*)\}/.exec(site)![1];
        assert.match(upstream, /^    include \/etc\/nginx\/pi-cluster\/upstream\/\*\.conf;$/m);
        // Only the placeholder is in the site itself, and it is down.
        assert.deepStrictEqual([...upstream.matchAll(/^\s*server (.*);/gm)].map((m) => m[1]), ["127.0.0.1:3000 down"]);
        const addresses = ["10.254.0.122", "10.254.0.123", "10.254.0.125", "10.254.0.126", "10.254.0.127"];
        addresses.forEach((address, i) => {
            for (const step of ["drain", "admit"]) {
                const member = byName(res, `pi-web${i + 1}-${step}`);
                assert.strictEqual(member.inputs.connection.host, "10.254.0.121", `${step} runs on the LB`);
                assert.match(member.inputs.stdin, new RegExp(`^SERVER='${address}:3000'$`, "m"));
                assert.match(member.inputs.stdin, new RegExp(`^MODE='${step}'$`, "m"));
            }
            assert.match(site, new RegExp(`location \\^~ /api/nodes/pi-web${i + 1}/ \\{`));
        });
        assert.match(script, /^NODES=\('pi-web1' 'pi-web2' 'pi-web3' 'pi-web4' 'pi-web5'\)$/m);
        const cluster = JSON.parse(decodeVar(script, "CLUSTER_INTERNAL_JSON_TEXT"));
        assert.deepStrictEqual(cluster.webServers.map((w: { name: string }) => w.name), ["pi-web1", "pi-web2", "pi-web3", "pi-web4", "pi-web5"]);
        assert.strictEqual(cluster.database.address, "10.254.0.124");
        assert.doesNotMatch(decodeVar(script, "CLUSTER_JSON_TEXT"), /address/);
    });

    it("orders steps: ssh, base, firewall, role; drain, restart, admit, one server after the other", async () => {
        const { res } = await build(2);
        assert.deepStrictEqual(byName(res, "pi-web1-base").dependsOn, ["pi-web1-wait-ssh"]);
        assert.deepStrictEqual(byName(res, "pi-web1-firewall").dependsOn, ["pi-web1-base"]);
        // Everything that restarts the app runs between its drain and its admit.
        assert.deepStrictEqual(byName(res, "pi-web1-drain").dependsOn, ["pi-lb-nginx-conf"]);
        assert.deepStrictEqual(byName(res, "pi-web1-node").dependsOn, ["pi-web1-base", "pi-web1-firewall", "pi-web1-drain"]);
        assert.deepStrictEqual(byName(res, "pi-web1-pm2").dependsOn, ["pi-web1-node", "pi-web1-pm2-upload", "pi-web1-drain"]);
        assert.deepStrictEqual(byName(res, "pi-web1-app-secrets").dependsOn, ["pi-web1-node", "pi-web1-drain"]);
        assert.deepStrictEqual(byName(res, "pi-web1-app").dependsOn, ["pi-web1-pm2", "pi-web1-app-secrets", "pi-web1-app-upload", "pi-web1-drain", "pi-db-app-db", "pi-db-migrate"]);
        assert.deepStrictEqual(byName(res, "pi-web1-admit").dependsOn, ["pi-web1-app", "pi-lb-nginx-conf"]);
        // Rolling: the second server drains only once the first serves through the LB again.
        assert.deepStrictEqual(byName(res, "pi-web2-drain").dependsOn, ["pi-lb-nginx-conf", "pi-web1-admit"]);
        // The site waits for no web server, so a dead one never blocks it.
        assert.deepStrictEqual(byName(res, "pi-lb-nginx-conf").dependsOn, ["pi-lb-nginx", "pi-lb-tls"]);
        // The certificate exists before the site that names it.
        assert.deepStrictEqual(byName(res, "pi-lb-tls").dependsOn, ["pi-lb-nginx"]);
        // Grants and the 3306 rule change after the site (which drains a removed server).
        assert.deepStrictEqual(byName(res, "pi-db-app-db").dependsOn, ["pi-db-mariadb", "pi-lb-nginx-conf"]);
        assert.deepStrictEqual(byName(res, "pi-db-migrate").dependsOn, ["pi-db-app-db"]);
        // The DB's certificate exists before the config that names it; TLS is required only
        // once every web server has rolled to it.
        assert.deepStrictEqual(byName(res, "pi-db-tls").dependsOn, ["pi-db-base", "pi-db-firewall"]);
        assert.deepStrictEqual(byName(res, "pi-db-mariadb").dependsOn, ["pi-db-base", "pi-db-firewall", "pi-db-tls"]);
        assert.deepStrictEqual(byName(res, "pi-db-require-tls").dependsOn, ["pi-db-app-db", "pi-db-migrate", "pi-web1-admit", "pi-web2-admit"]);
        assert.match(byName(res, "pi-db-require-tls").inputs.stdin, /^WEB_ADDRESSES=\('10\.254\.0\.122' '10\.254\.0\.123'\)$/m);
        // Hosts provision in parallel: no host's base waits on another host.
        for (const h of ["pi-lb", "pi-web1", "pi-web2", "pi-db"]) {
            assert.deepStrictEqual(byName(res, `${h}-wait-ssh`).dependsOn, []);
        }
    });

    // One apt run per Pi: whatever a step installs on a Pi, that Pi's base step installed
    // first, in its one transaction, so no later step waits on apt (issue 19).
    it("installs every package a step on a Pi installs in that Pi's base step, with backups, the stream and replicas", async () => {
        const words = (list: string) => [...list.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]);
        const arrayVar = (stdin: string, name: string) => {
            const m = new RegExp(`^${name}=\\((.*)\\)$`, "m").exec(stdin);
            assert.ok(m, `no array ${name}`);
            return words(m[1]);
        };
        /** The packages a step's script installs: apt_install's literal words, or its PACKAGES. */
        const installs = (stdin: string) =>
            [...stdin.matchAll(/^[^#\n]*\bapt_install ([^\n;|&]+)/gm)].flatMap((m) => (m[1].trim() === '"${PACKAGES[@]}"' ? arrayVar(stdin, "PACKAGES") : words(m[1])));
        const raw = { ...rawConfig(2), backup: { agePublicKey: AGE_PUBLIC_KEY }, dbReplicas: replicasConfig(1) };
        const { res } = await build(2, raw);
        const steps = commands(res).filter((r) => typeof r.inputs.stdin === "string");
        const hosts = [...new Set(steps.map((r) => r.inputs.connection.host as string))];
        assert.strictEqual(hosts.length, 5, `steps on ${hosts}`);
        let checked = 0;
        for (const host of hosts) {
            const onHost = steps.filter((r) => r.inputs.connection.host === host);
            const base = onHost.filter((r) => r.name.endsWith("-base"));
            assert.strictEqual(base.length, 1, `one base step on ${host}`);
            const installed = new Set(arrayVar(base[0].inputs.stdin, "PACKAGES"));
            for (const step of onHost) {
                for (const p of installs(step.inputs.stdin)) {
                    assert.ok(installed.has(p), `${step.name} installs ${p} on ${host}, which its base step ${base[0].name} does not`);
                    checked++;
                }
            }
        }
        assert.ok(checked > 15, `only ${checked} installs found`);
        // The same list on the database and its replica: a promotion leaves base as it is.
        assert.deepStrictEqual(arrayVar(byName(res, "pi-db-base").inputs.stdin, "PACKAGES"), arrayVar(byName(res, "pi-db-read1-base").inputs.stdin, "PACKAGES"));
        assert.ok(arrayVar(byName(res, "pi-lb-base").inputs.stdin, "PACKAGES").includes("mariadb-client"), "the stream's client on the target");
        assert.ok(!arrayVar(byName(res, "pi-web1-base").inputs.stdin, "PACKAGES").includes("mariadb-client"));
    });

    it("ships the database's CA to every web server, which connects by the name in the DB's certificate", async () => {
        const { res } = await build(2);
        for (const w of ["pi-web1", "pi-web2"]) {
            const script = byName(res, `${w}-app`).inputs.stdin;
            assert.strictEqual(decodeVar(script, "DB_CA_TEXT"), FAKE_TLS_OUTPUT.caCertificate);
            assert.match(script, /^DB_CA_FILE='\/etc\/pi-cluster\/db-ca\.pem'$/m);
            const env = decodeVar(script, "ENV_TEXT");
            assert.match(env, /^DB_SSL_CA="\/etc\/pi-cluster\/db-ca\.pem"$/m);
            assert.match(env, /^DB_SSL_SERVERNAME="pi-db"$/m);
        }
        const cnf = decodeVar(byName(res, "pi-db-mariadb").inputs.stdin, "SERVER_CNF_TEXT");
        assert.match(cnf, /^ssl_cert = \/etc\/pi-cluster\/tls\/server\.crt$/m);
        const renew = decodeVar(byName(res, "pi-db-tls").inputs.stdin, "RENEW_TEXT");
        assert.match(renew, /^SERVER_NAME='pi-db'$/m);
        assert.match(renew, /^SERVER_ADDRESS='10\.254\.0\.124'$/m);
        assert.match(renew, /^KEY_OWNER='mysql:mysql'$/m);
        assert.match(renew, /^SERVICE='mariadb'$/m);
    });

    it("exports the load balancer's CA and expiry, read from its TLS step's stdout", async () => {
        recorded.clear();
        const cluster = new mod.PiCluster("pi-cluster", { config: mod.parseConfig(rawConfig(2)), artifacts: fakeArtifacts() }, { transformations: [recorder(recorded)] });
        assert.strictEqual(await promiseOf(cluster.caCertificate), FAKE_TLS_OUTPUT.caCertificate);
        assert.strictEqual(await promiseOf(cluster.certificateExpiry), FAKE_TLS_OUTPUT.certificateExpiry);
        assert.strictEqual(await pulumi.isSecret(cluster.caCertificate), false);
        await settle(recorded);
        const step = byName(new Map(recorded), "pi-lb-tls");
        assert.match(step.inputs.stdin, /^MODE='generated'$/m);
        assert.doesNotMatch(step.inputs.stdin, /^KEY_TEXT=|BEGIN [A-Z ]*PRIVATE KEY/m);
    });

    it("ships a supplied key to the load balancer only inside a secret step that logs no stdout", async () => {
        recorded.clear();
        const dir = tmpDir("pi-tls-");
        execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30", "-subj", "/CN=pi-lb",
            "-keyout", path.join(dir, "k"), "-out", path.join(dir, "c")], { stdio: "ignore" });
        const key = fs.readFileSync(path.join(dir, "k"), "utf8");
        const raw = { ...rawConfig(2), tlsCertificateMode: "supplied", tlsCertificate: fs.readFileSync(path.join(dir, "c"), "utf8") };
        const cluster = new mod.PiCluster("pi-cluster", { config: mod.parseConfig(raw, undefined, undefined, pulumi.secret(key)), artifacts: fakeArtifacts() }, { transformations: [recorder(recorded)] });
        await promiseOf(cluster.webServers);
        await settle(recorded);
        const res = new Map(recorded);
        const step = byName(res, "pi-lb-tls");
        assert.strictEqual(decodeVar(step.inputs.stdin, "KEY_TEXT"), key);
        assert.match(step.inputs.stdin, /^MODE='supplied'$/m);
        assert.strictEqual(step.inputs.logging, "stderr");
        assert.strictEqual(await pulumi.isSecret((step.resource as unknown as { stdin: pulumi.Output<string> }).stdin), true);
        for (const c of commands(res)) {
            for (const field of ["create", "update", "delete"]) assert.ok(!String(c.inputs[field] ?? "").includes("PRIVATE KEY"), `${c.name}.${field}`);
            if (c.name !== "pi-lb-tls") assert.ok(!String(c.inputs.stdin ?? "").includes(key), `${c.name} carries the TLS key`);
        }
    });

    it("never puts the DB password or the SSH key in a command's text", async () => {
        const { res } = await build(2);
        for (const c of commands(res)) {
            for (const field of ["create", "update", "delete"]) {
                const text = String(c.inputs[field] ?? "");
                assert.ok(!text.includes(FAKE_PASSWORD), `${c.name}.${field} holds the password`);
                assert.ok(!text.includes("PRIVATE KEY"), `${c.name}.${field} holds the key`);
            }
            if (c.inputs.create !== undefined && !c.name.endsWith("-wait-ssh")) {
                assert.strictEqual(c.inputs.create, "sudo bash -s -- apply", c.name);
                assert.strictEqual(c.inputs.delete, "sudo bash -s -- delete", c.name);
            }
        }
        const secretCarriers = commands(res).filter((c) => String(c.inputs.stdin ?? "").includes(FAKE_PASSWORD)).map((c) => c.name).sort();
        assert.deepStrictEqual(secretCarriers, ["pi-db-app-db", "pi-web1-app-secrets", "pi-web2-app-secrets"]);
        for (const name of secretCarriers) {
            const r = byName(res, name);
            assert.strictEqual(r.inputs.logging, "stderr", `${name} must not log stdout`);
            const stdin = (r.resource as unknown as { stdin: pulumi.Output<string> }).stdin;
            assert.strictEqual(await pulumi.isSecret(stdin), true, `${name}.stdin must be a secret`);
        }
    });

    it("puts the SSH private key in no component's outputs, and hands it to every step as a secret", async () => {
        const { res } = await build(2);
        const outputs = await componentOutputs(res);
        // PiCluster, LB, 2 web servers, DB, and a Host under each Pi.
        assert.strictEqual(outputs.size, 1 + 4 + 4);
        const keyLine = FAKE_PRIVATE_KEY.split("\n")[1];
        for (const [name, registered] of outputs) {
            assert.notStrictEqual(registered, undefined, `${name} registered no outputs`);
            const text = JSON.stringify(registered);
            assert.ok(!text.includes(keyLine) && !text.includes("PRIVATE KEY"), `${name}'s outputs carry the SSH key: ${text}`);
        }
        const steps = [...res.values()].filter((r) => r.type.startsWith("command:remote:"));
        assert.ok(steps.length > 0);
        for (const r of steps) {
            assert.strictEqual(r.inputs.connection.privateKey, FAKE_PRIVATE_KEY, `${r.name} needs the key to connect`);
            const connection = (r.resource as unknown as { connection: pulumi.Output<unknown> }).connection;
            assert.strictEqual(await pulumi.isSecret(connection), true, `${r.name}.connection must be a secret`);
        }
    });

    it("makes the SSH connection a secret even when the key it is given is not", async () => {
        const connection = mod.hostConnection({ address: "10.254.0.122", sshPort: 22, user: "pi", privateKey: FAKE_PRIVATE_KEY, hostKey: "ssh-ed25519 AAAA" });
        assert.strictEqual(await pulumi.isSecret(connection), true);
        assert.strictEqual((await promiseOf(connection)).privateKey, FAKE_PRIVATE_KEY);
    });

    it("gives each role exactly the inbound ports of its security group", async () => {
        const { res } = await build(2);
        const accepts = (host: string) => inputAccepts(decodeVar(byName(res, `${host}-firewall`).inputs.stdin, "RULESET_TEXT"));
        const ssh = "ip saddr 10.254.0.0/24 tcp dport 22";
        // Every TCP port the input chain accepts, with its source: anything else is dropped.
        assert.deepStrictEqual(accepts("pi-lb"), [ssh, "tcp dport 443", "tcp dport 80"]);
        for (const w of ["pi-web1", "pi-web2"]) {
            assert.deepStrictEqual(accepts(w), [ssh, "ip saddr 10.254.0.121 tcp dport 3000"]);
        }
        assert.deepStrictEqual(accepts("pi-db"), [ssh]);
        // 3306 is in the file the DB's ruleset includes, written by the app-db step.
        assert.match(byName(res, "pi-db-firewall").inputs.stdin, /./);
        assert.deepStrictEqual(inputAccepts(`chain input {\n${decodeVar(byName(res, "pi-db-app-db").inputs.stdin, "CLIENTS_TEXT")}\n    }`), [
            "ip saddr { 10.254.0.122, 10.254.0.123 } tcp dport 3306",
        ]);
        for (const h of ["pi-lb", "pi-web1", "pi-web2", "pi-db"]) {
            assert.match(decodeVar(byName(res, `${h}-firewall`).inputs.stdin, "RULESET_TEXT"), /type filter hook input priority filter; policy drop;/);
        }
    });

    it("notices a ruleset that opens the app port on the LB", () => {
        // The check above must be able to fail: a rule added to the LB's input chain shows up.
        const ruleset = 'chain input {\n        tcp dport 80 accept\n        tcp dport 3000 accept comment "oops"\n    }\n    chain output {\n        tcp dport 3000 accept\n    }';
        assert.deepStrictEqual(inputAccepts(ruleset), ["tcp dport 3000", "tcp dport 80"]);
    });

    it("hardens sshd on every Pi in its base step, letting in only the configured sshUser", async () => {
        const { res } = await build(1, { ...rawConfig(1), sshUser: "deploy" });
        for (const h of ["pi-lb", "pi-web1", "pi-db"]) {
            const base = byName(res, `${h}-base`);
            assert.strictEqual(base.inputs.connection.user, "deploy");
            assert.match(base.inputs.stdin, /^SSHD_DROP_IN='\/etc\/ssh\/sshd_config\.d\/10-pi-cluster\.conf'$/m);
            const dropIn = decodeVar(base.inputs.stdin, "SSHD_CONF_TEXT");
            assert.match(dropIn, /^AllowUsers deploy$/m);
            assert.match(dropIn, /^PasswordAuthentication no$/m);
            assert.match(base.inputs.stdin, /^SSHD_EXPECT=\(.*'allowusers deploy'.*\)$/m);
        }
    });

    it("grants the DB user per web-server address, never '%'", async () => {
        const { res } = await build(2);
        const script = byName(res, "pi-db-app-db").inputs.stdin as string;
        assert.match(script, /^WEB_ADDRESSES=\('10\.254\.0\.122' '10\.254\.0\.123'\)$/m);
        assert.match(script, /^PRIVILEGES='SELECT, INSERT, UPDATE, DELETE'$/m);
        assert.doesNotMatch(script, /'%'/);
    });

    it("sizes max_connections from web servers x pool size + headroom", async () => {
        const { res } = await build(5);
        const cnf = decodeVar(byName(res, "pi-db-mariadb").inputs.stdin, "CONN_CNF_TEXT");
        assert.match(cnf, /^max_connections = 70$/m);
    });

    it("uploads artifacts under names that carry their hash, and pins host keys", async () => {
        const { res } = await build(1);
        const up = byName(res, "pi-web1-app-upload", "command:remote:CopyToRemote");
        assert.strictEqual(up.inputs.remotePath, "/var/lib/pi-cluster/incoming/app-aaaaaaaaaaaaaaaa.tgz");
        assert.match(byName(res, "pi-web1-app").inputs.stdin, /^ARTIFACT='\/var\/lib\/pi-cluster\/incoming\/app-aaaaaaaaaaaaaaaa\.tgz'$/m);
        assert.match(byName(res, "pi-web1-base").inputs.connection.hostKey, /^ssh-ed25519 /);
        assert.strictEqual(byName(res, "pi-web1-base").inputs.connection.user, "pi");
    });

    it("exports the outputs contract, with the password as a secret", async () => {
        const { cluster } = await build(2);
        assert.strictEqual(await promiseOf(cluster.contractVersion), 1);
        assert.strictEqual(await promiseOf(cluster.lbUrl), "http://10.254.0.121");
        assert.strictEqual(await promiseOf(cluster.apiUrl), "http://10.254.0.121/api/");
        assert.strictEqual(await promiseOf(cluster.dashboardUrl), "http://10.254.0.121/");
        // The site is HTTPS (always served; port 80 answers 301 there by default).
        assert.strictEqual(await promiseOf(cluster.httpsUrl), "https://10.254.0.121");
        assert.strictEqual(await promiseOf(cluster.httpsApiUrl), "https://10.254.0.121/api/");
        assert.strictEqual(await promiseOf(cluster.httpsDashboardUrl), "https://10.254.0.121/");
        assert.deepStrictEqual(await promiseOf(cluster.webServers), [
            { name: "pi-web1", address: "10.254.0.122" },
            { name: "pi-web2", address: "10.254.0.123" },
        ]);
        assert.deepStrictEqual(await promiseOf(cluster.database), { host: "10.254.0.124", port: 3306, name: "webapp_db", user: "webapp_user" });
        assert.strictEqual(await pulumi.isSecret(cluster.dbPassword), true);
        assert.strictEqual(await pulumi.isSecret(cluster.apiWriteToken), true);
        assert.deepStrictEqual(await promiseOf(cluster.nodes), [
            { name: "pi-lb", address: "10.254.0.121", role: "lb" },
            { name: "pi-web1", address: "10.254.0.122", role: "web" },
            { name: "pi-web2", address: "10.254.0.123", role: "web" },
            { name: "pi-db", address: "10.254.0.124", role: "db" },
        ]);
    });

    describe("monitoring", () => {
        const withMonitoring = (monitoring: object = { enabled: true }) => ({ ...rawConfig(2), monitoring });
        let plain: Map<string, Recorded>;
        let on: Map<string, Recorded>;
        before(async () => {
            plain = (await build(2)).res;
            on = (await build(2, withMonitoring({ enabled: true, scrapeIntervalSeconds: 30, retentionDays: 7, retentionSizeMb: 512 }))).res;
        });
        const pis = ["pi-lb", "pi-web1", "pi-web2", "pi-db"];

        it("makes no monitoring step, package or port without monitoring on (the default for now)", () => {
            const names = commands(plain).map((r) => r.name);
            assert.deepStrictEqual(names.filter((n) => /node-exporter|prometheus/.test(n)), []);
            for (const h of pis) {
                assert.doesNotMatch(byName(plain, `${h}-base`).inputs.stdin, /prometheus/);
                assert.doesNotMatch(decodeVar(byName(plain, `${h}-firewall`).inputs.stdin, "RULESET_TEXT"), /9100/);
            }
        });

        it("runs a node exporter on every Pi, on its own address, installed in its base step's one apt run", () => {
            for (const [i, h] of pis.entries()) {
                const step = byName(on, `${h}-node-exporter`);
                const address = ["10.254.0.121", "10.254.0.122", "10.254.0.123", "10.254.0.124"][i];
                assert.match(decodeVar(step.inputs.stdin, "DEFAULTS_TEXT"), new RegExp(`--web\\.listen-address=${address.replace(/\./g, "\\.")}:9100 `));
                assert.match(byName(on, `${h}-base`).inputs.stdin, /^PACKAGES=\(.*'prometheus-node-exporter'.*\)$/m);
                // After the firewall has opened its port to Prometheus, and nothing waits for it.
                assert.deepStrictEqual(step.dependsOn, [`${h}-firewall`], h);
            }
            assert.match(byName(on, "pi-lb-base").inputs.stdin, /^PACKAGES=\(.*'prometheus'.*\)$/m);
            assert.doesNotMatch(byName(on, "pi-db-base").inputs.stdin, /'prometheus'/);
        });

        it("opens 9100 on every Pi to the load balancer only, and lets the load balancer reach them", () => {
            for (const h of pis) {
                const ruleset = decodeVar(byName(on, `${h}-firewall`).inputs.stdin, "RULESET_TEXT");
                assert.ok(inputAccepts(ruleset).includes("ip saddr 10.254.0.121 tcp dport 9100"), h);
                assert.strictEqual(inputAccepts(ruleset).filter((r) => r.endsWith("dport 9100")).length, 1, h);
            }
            assert.match(
                decodeVar(byName(on, "pi-lb-firewall").inputs.stdin, "RULESET_TEXT"),
                /ip daddr \{ 10\.254\.0\.122, 10\.254\.0\.123, 10\.254\.0\.124 \} tcp dport 9100 accept/,
            );
        });

        it("runs Prometheus on the load balancer with the config's interval and retention, scraping every Pi by name", () => {
            const step = byName(on, "pi-cluster-monitoring-prometheus");
            const config = JSON.parse(decodeVar(step.inputs.stdin, "CONFIG_TEXT"));
            assert.strictEqual(config.global.scrape_interval, "30s");
            const node = config.scrape_configs.find((j: { job_name: string }) => j.job_name === "node");
            assert.deepStrictEqual(
                node.static_configs.map((t: { targets: string[]; labels: { instance: string } }) => [t.labels.instance, t.targets[0]]),
                [["pi-lb", "10.254.0.121:9100"], ["pi-web1", "10.254.0.122:9100"], ["pi-web2", "10.254.0.123:9100"], ["pi-db", "10.254.0.124:9100"]],
            );
            assert.match(decodeVar(step.inputs.stdin, "DEFAULTS_TEXT"), /--web\.listen-address=127\.0\.0\.1:9090 .*--storage\.tsdb\.retention\.time=7d --storage\.tsdb\.retention\.size=512MB"/);
            assert.match(decodeVar(step.inputs.stdin, "RULES_TEXT"), /"alert": "PiDown"/);
            // The connection is the load balancer's.
            assert.strictEqual(step.inputs.connection.host, "10.254.0.121");
        });

        it("says in both cluster.json files whether monitoring runs, as the site's /internal/alerts does", () => {
            for (const [res, enabled] of [[plain, false], [on, true]] as const) {
                const stdin = byName(res, "pi-lb-nginx-conf").inputs.stdin;
                for (const file of ["CLUSTER_JSON_TEXT", "CLUSTER_INTERNAL_JSON_TEXT"]) {
                    assert.deepStrictEqual(JSON.parse(decodeVar(stdin, file)).monitoring, { enabled }, `${file}, monitoring ${enabled}`);
                }
                const alerts = /location = \/internal\/alerts \{[\s\S]*?\n    \}/.exec(decodeVar(stdin, "SITE_TEXT"))![0];
                assert.match(alerts, enabled ? /proxy_pass http:\/\/127\.0\.0\.1:9093;/ : /MONITORING_OFF/);
            }
        });

        it("runs Alertmanager after Prometheus, with no receiver unless a webhook is set", () => {
            const step = byName(on, "pi-cluster-monitoring-alertmanager");
            assert.deepStrictEqual(step.dependsOn, ["pi-cluster-monitoring-prometheus"]);
            assert.strictEqual(JSON.parse(decodeVar(step.inputs.stdin, "CONFIG_TEXT")).route.receiver, "none");
            assert.match(byName(on, "pi-lb-base").inputs.stdin, /^PACKAGES=\(.*'prometheus-alertmanager'.*\)$/m);
        });

        it("turns the backup target's status into metrics there, after its target step, when Prometheus scrapes it; not otherwise", async () => {
            const backup = { agePublicKey: AGE_PUBLIC_KEY };
            const { res } = await build(2, { ...withMonitoring({ enabled: true, scrapeIntervalSeconds: 30 }), backup });
            const step = byName(res, "pi-cluster-monitoring-backup-metrics");
            assert.strictEqual(step.inputs.connection.host, "10.254.0.121");
            assert.deepStrictEqual(step.dependsOn, ["pi-cluster-backup-target"]);
            assert.match(decodeVar(step.inputs.stdin, "TIMER_TEXT"), /^OnUnitActiveSec=30s$/m);
            assert.match(decodeVar(step.inputs.stdin, "SERVICE_TEXT"), /^ReadOnlyPaths=-\/srv\/pi-cluster-backups$/m);
            assert.strictEqual(decodeVar(step.inputs.stdin, "SCRIPT_TEXT"), fs.readFileSync(path.join(__dirname, "..", "..", "assets", "backup", "pi-cluster-backup-metrics.py"), "utf8"));
            // No backups, or a target that is no Pi of the cluster (nothing scrapes it): no step.
            assert.ok(!on.has("command:remote:Command::pi-cluster-monitoring-backup-metrics"));
            const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOANQGvW+EBAyuBpUOLYb4Bc30lrPrg0NQYoZEBNB3DA";
            const external = (await build(2, { ...withMonitoring(), backup: { ...backup, target: { host: "10.254.0.130", hostKey } } })).res;
            assert.ok(external.has("command:remote:Command::pi-cluster-backup-target"));
            assert.ok(!external.has("command:remote:Command::pi-cluster-monitoring-backup-metrics"));
        });

        it("posts alerts to the webhook from secret config, in a step that is a secret and logs no stdout", async () => {
            const url = "https://hooks.example.invalid/services/T0/B0/s3cr3tw3bh00ktok3n";
            const { res } = await build(2, withMonitoring(), undefined, url);
            const step = byName(res, "pi-cluster-monitoring-alertmanager");
            assert.strictEqual(JSON.parse(decodeVar(step.inputs.stdin, "CONFIG_TEXT")).receivers[0].webhook_configs[0].url, url);
            assert.strictEqual(step.inputs.logging, "stderr");
            assert.strictEqual(await pulumi.isSecret((step.resource as unknown as { stdin: pulumi.Output<string> }).stdin), true);
            for (const r of commands(res)) {
                if (r.name === "pi-cluster-monitoring-alertmanager") continue;
                assert.ok(!JSON.stringify(r.inputs).includes("s3cr3tw3bh00ktok3n"), `${r.name} carries the webhook URL`);
            }
        });
    });

    describe("backups", () => {
        const withBackup = (backup: object = { agePublicKey: AGE_PUBLIC_KEY }) => ({ ...rawConfig(2), backup });
        // The graphs without backups, with them (the binlog stream on, its default) and with
        // them but no stream, built once for the cases below, which only read them: a build
        // takes most of a second.
        let plain: Map<string, Recorded>;
        let on: Map<string, Recorded>;
        let off: Map<string, Recorded>;
        before(async () => {
            plain = (await build(2)).res;
            on = (await build(2, withBackup())).res;
            off = (await build(2, withBackup({ agePublicKey: AGE_PUBLIC_KEY, stream: false }))).res;
        });

        it("makes no backup step, binlog or target without backup config", () => {
            const res = plain;
            assert.ok(!res.has("command:remote:Command::pi-db-backup"));
            assert.ok(!res.has("command:remote:Command::pi-cluster-backup-target"));
            assert.doesNotMatch(decodeVar(byName(res, "pi-db-mariadb").inputs.stdin, "SERVER_CNF_TEXT"), /log_bin/);
        });

        it("turns the binlog on, row-based with GTID, when backups are on", () => {
            const res = on;
            const cnf = decodeVar(byName(res, "pi-db-mariadb").inputs.stdin, "SERVER_CNF_TEXT");
            for (const line of ["log_bin = mariadb-bin", "binlog_format = ROW", "gtid_strict_mode = ON", "sync_binlog = 1"]) assert.ok(cnf.includes(`\n${line}\n`), line);
        });

        it("gives the database Pi only the age public key and the target, after the schema", () => {
            const res = on;
            const step = byName(res, "pi-db-backup");
            const env = decodeVar(step.inputs.stdin, "ENV_TEXT");
            assert.match(env, new RegExp(`^AGE_RECIPIENT=${AGE_PUBLIC_KEY}$`, "m"));
            assert.match(env, /^TARGET_HOST=10\.254\.0\.121$/m);
            assert.match(env, /^TARGET_USER=pi-backup$/m);
            assert.doesNotMatch(step.inputs.stdin, /AGE-SECRET-KEY/);
            assert.ok(step.dependsOn.includes("pi-db-migrate"), `dependsOn: ${step.dependsOn}`);
            assert.match(decodeVar(step.inputs.stdin, "KNOWN_HOSTS_TEXT"), /^10\.254\.0\.121 ssh-ed25519 /);
        });

        it("hands the target only the database Pi's public key, from its address, forced to the receiver", () => {
            const res = on;
            const target = byName(res, "pi-cluster-backup-target");
            assert.strictEqual(target.inputs.connection.host, "10.254.0.121", "the default target is the load balancer");
            const keys = decodeVar(target.inputs.stdin, "AUTHORIZED_TEXT");
            assert.ok(keys.includes(`restrict,from="10.254.0.124",command="/usr/local/sbin/pi-cluster-backup receive" ${DB_BACKUP_PUBLIC_KEY}\n`), keys);
            assert.match(decodeVar(target.inputs.stdin, "ENV_TEXT"), /^RETENTION_DAYS=30$/m);
        });

        it("lets the backup user into the target's sshd from the database only, and nowhere else", () => {
            const res = on;
            assert.match(decodeVar(byName(res, "pi-lb-base").inputs.stdin, "SSHD_CONF_TEXT"), /^AllowUsers pi pi-backup@10\.254\.0\.124$/m);
            for (const h of ["pi-web1", "pi-web2", "pi-db"]) assert.match(decodeVar(byName(res, `${h}-base`).inputs.stdin, "SSHD_CONF_TEXT"), /^AllowUsers pi$/m);
        });

        it("opens the database's output to the target's SSH port only, and, without the stream, no new input anywhere", () => {
            const db = decodeVar(byName(off, "pi-db-firewall").inputs.stdin, "RULESET_TEXT");
            assert.match(db, /ip daddr 10\.254\.0\.121 tcp dport 22 accept comment "backups to the backup target \(ssh\)"/);
            for (const h of ["pi-lb", "pi-web1", "pi-db"]) {
                const rules = (r: Map<string, Recorded>) => inputAccepts(decodeVar(byName(r, `${h}-firewall`).inputs.stdin, "RULESET_TEXT"));
                assert.deepStrictEqual(rules(off), rules(plain), h);
            }
        });

        describe("the binlog stream (backup.stream, on by default)", () => {
            it("lets the target in on the database from its own step: the binlog only, TLS required, from the target's address, MariaDB's port for it alone", () => {
                const res = on;
                const source = byName(res, "pi-cluster-binlog-stream-source");
                assert.strictEqual(source.inputs.connection.host, "10.254.0.124", "it runs on the database");
                assert.match(source.inputs.stdin, /^STREAM_USER='pi_binlog'$/m);
                assert.match(source.inputs.stdin, /^PRIVILEGES='REPLICATION SLAVE, BINLOG MONITOR'$/m);
                assert.match(source.inputs.stdin, /^TARGET_ADDRESS='10\.254\.0\.121'$/m);
                assert.deepStrictEqual(inputAccepts(`chain input {\n${decodeVar(source.inputs.stdin, "CLIENT_TEXT")}\n    }`), ["ip saddr 10.254.0.121 tcp dport 3306"]);
                assert.match(source.inputs.stdin, /^CLIENT_FILE='\/etc\/pi-cluster\/firewall\.d\/binlog-stream\.nft'$/m);
                for (const dep of ["pi-db-app-db", "pi-db-migrate"]) assert.ok(source.dependsOn.includes(dep), `dependsOn: ${source.dependsOn}`);
                // The password is a secret of its own, carried on stdin only, and the step logs no stdout.
                assert.match(source.inputs.stdin, new RegExp(`^STREAM_PASSWORD='${FAKE_PASSWORD}'$`, "m"));
                assert.strictEqual(source.inputs.logging, "stderr");
                assert.ok(res.has("random:index/randomPassword:RandomPassword::pi-cluster-binlog-stream-password"));
            });

            it("runs the stream on the target as the backup account, checking the database's CA, its password in a 0600 file", () => {
                const res = on;
                const service = byName(res, "pi-cluster-binlog-stream-service");
                assert.strictEqual(service.inputs.connection.host, "10.254.0.121", "the default target is the load balancer");
                assert.match(service.inputs.stdin, /^BACKUP_USER='pi-backup'$/m);
                assert.match(service.inputs.stdin, /^BACKUP_DIR='\/srv\/pi-cluster-backups'$/m);
                assert.strictEqual(decodeVar(service.inputs.stdin, "CA_TEXT"), FAKE_TLS_OUTPUT.caCertificate);
                assert.strictEqual(decodeVar(service.inputs.stdin, "CLIENT_CNF_TEXT"), `[client]\npassword=${FAKE_PASSWORD}\n`);
                assert.match(service.inputs.stdin, /^CLIENT_CNF='\/etc\/pi-cluster\/binlog-stream\.cnf'$/m);
                const env = decodeVar(service.inputs.stdin, "ENV_TEXT");
                assert.match(env, /^DB_HOST=10\.254\.0\.124$/m);
                // Its replication client id is the target's address as a number: no database host has it.
                assert.match(env, new RegExp(`^SERVER_ID=${10 * 2 ** 24 + 254 * 2 ** 16 + 121}$`, "m"));
                assert.doesNotMatch(env, new RegExp(FAKE_PASSWORD));
                assert.match(decodeVar(service.inputs.stdin, "UNIT_TEXT"), /^User=pi-backup$/m);
                assert.ok(service.dependsOn.includes("pi-cluster-binlog-stream-source"), `dependsOn: ${service.dependsOn}`);
                assert.ok(service.dependsOn.includes("pi-cluster-backup-target"), `dependsOn: ${service.dependsOn}`);
                assert.strictEqual(service.inputs.logging, "stderr");
                for (const c of commands(res)) assert.doesNotMatch(String(c.inputs.create), new RegExp(FAKE_PASSWORD), c.name);
            });

            it("lets the load balancer reach MariaDB on the database for it, and nothing else new on any Pi", () => {
                const ruleset = (r: Map<string, Recorded>, h: string) => decodeVar(byName(r, `${h}-firewall`).inputs.stdin, "RULESET_TEXT");
                const added = (h: string) => ruleset(on, h).split("\n").filter((l) => !ruleset(off, h).split("\n").includes(l)).map((l) => l.trim());
                assert.deepStrictEqual(added("pi-lb"), ['ip daddr 10.254.0.124 tcp dport 3306 accept comment "the binlog stream from the database"']);
                for (const h of ["pi-web1", "pi-web2", "pi-db"]) assert.deepStrictEqual(added(h), [], h);
            });

            it("makes none of its resources when it is off", () => {
                assert.deepStrictEqual([...off.values()].filter((r) => r.name.includes("binlog-stream")).map((r) => r.name), []);
                assert.ok(off.has("command:remote:Command::pi-cluster-backup-target"), "the backups stay");
            });

            it("runs on a configured target, which reaches the database as itself", async () => {
                const { res } = await build(
                    2,
                    withBackup({ agePublicKey: AGE_PUBLIC_KEY, target: { host: "10.254.0.130", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOANQGvW+EBAyuBpUOLYb4Bc30lrPrg0NQYoZEBNB3DA" } }),
                );
                assert.strictEqual(byName(res, "pi-cluster-binlog-stream-service").inputs.connection.host, "10.254.0.130");
                assert.match(byName(res, "pi-cluster-binlog-stream-source").inputs.stdin, /^TARGET_ADDRESS='10\.254\.0\.130'$/m);
                assert.doesNotMatch(decodeVar(byName(res, "pi-lb-firewall").inputs.stdin, "RULESET_TEXT"), /binlog stream/);
            });
        });

        it("ships to a configured target with its own host key", async () => {
            const { res } = await build(
                2,
                withBackup({
                    agePublicKey: AGE_PUBLIC_KEY,
                    target: { host: "10.254.0.130", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOANQGvW+EBAyuBpUOLYb4Bc30lrPrg0NQYoZEBNB3DA", path: "/backups/pi", minFreeMb: 300 },
                    retentionDays: 7,
                }),
            );
            const target = byName(res, "pi-cluster-backup-target");
            assert.strictEqual(target.inputs.connection.host, "10.254.0.130");
            assert.match(decodeVar(target.inputs.stdin, "ENV_TEXT"), /^BACKUP_DIR=\/backups\/pi$/m);
            assert.match(decodeVar(target.inputs.stdin, "ENV_TEXT"), /^RETENTION_DAYS=7$/m);
            assert.match(decodeVar(target.inputs.stdin, "ENV_TEXT"), /^MIN_FREE_MB=300$/m);
            assert.match(decodeVar(byName(res, "pi-lb-base").inputs.stdin, "SSHD_CONF_TEXT"), /^AllowUsers pi$/m);
        });
    });
});
