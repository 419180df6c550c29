// The resource graph PiCluster builds, checked on its inputs with Pulumi's mocks.
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import {
    AGE_PUBLIC_KEY, DB_BACKUP_PUBLIC_KEY, decodeVar, FAKE_PASSWORD, FAKE_PRIVATE_KEY, fakeArtifacts, installMocks, promiseOf, rawConfig, Recorded,
    recordRegisteredOutputs, recorder, settle,
} from "./helpers";

const recorded = installMocks();
const registeredOutputs = recordRegisteredOutputs();

type Mod = typeof import("../../components");
let mod: Mod;

async function build(webs: number, raw = rawConfig(webs)): Promise<{ cluster: InstanceType<Mod["PiCluster"]>; res: Map<string, Recorded> }> {
    recorded.clear();
    registeredOutputs.clear();
    const config = mod.parseConfig(raw);
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

/** A script's text with every VAR_B64 value decoded next to it. */
function revealed(script: string): string {
    const decoded = [...script.matchAll(/^[A-Z0-9_]+_B64='([A-Za-z0-9+/=]*)'$/gm)].map((m) => Buffer.from(m[1], "base64").toString("utf8"));
    return [script, ...decoded].join("\n");
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
            assert.strictEqual(count("random:index/randomPassword:RandomPassword"), 1);
            for (let i = 1; i <= webs; i++) {
                for (const step of ["wait-ssh", "base", "firewall", "drain", "node", "pm2", "app", "admit"]) byName(res, `pi-web${i}-${step}`);
                byName(res, `pi-web${i}-app-upload`, "command:remote:CopyToRemote");
            }
            for (const step of ["wait-ssh", "base", "firewall", "nginx", "nginx-conf", "dashboard"]) byName(res, `pi-lb-${step}`);
            for (const step of ["wait-ssh", "base", "firewall", "mariadb", "app-db", "migrate"]) byName(res, `pi-db-${step}`);
            // 6 steps on the Pi + drain and admit on the LB, per web server; 6 on the LB; 6 on the DB.
            assert.strictEqual(commands(res).length, webs * 8 + 6 + 6);
        });
    }

    it("keeps a cordoned server's own steps as they are, out of the LB, and marked in cluster.json", async () => {
        recorded.clear();
        const raw = rawConfig(2);
        (raw.webServers as Record<string, unknown>[])[1].cordon = true;
        const cluster = new mod.PiCluster("pi-cluster", { config: mod.parseConfig(raw), artifacts: fakeArtifacts() }, { transformations: [recorder(recorded)] });
        await promiseOf(cluster.webServers);
        await settle(recorded);
        const res = new Map(recorded);
        const ignored = (name: string, type = "command:remote:Command") => (byName(res, name, type).ignoreChanges ?? []).join(",");
        for (const step of ["wait-ssh", "base", "firewall", "node", "pm2", "app"]) assert.strictEqual(ignored(`pi-web2-${step}`), "*", step);
        assert.strictEqual(ignored("pi-web2-app-upload", "command:remote:CopyToRemote"), "*");
        // Its drain and admit (on the LB) follow the config; pi-web1 is not affected.
        for (const name of ["pi-web2-drain", "pi-web2-admit", "pi-web1-app", "pi-web1-drain"]) assert.strictEqual(ignored(name), "", name);
        assert.match(byName(res, "pi-web2-admit").inputs.stdin, /^CORDONED='true'$/m);
        assert.match(byName(res, "pi-web1-admit").inputs.stdin, /^CORDONED='false'$/m);
        const cj = JSON.parse(decodeVar(byName(res, "pi-lb-nginx-conf").inputs.stdin, "CLUSTER_JSON_B64"));
        assert.deepStrictEqual(cj.webServers, [
            { name: "pi-web1", address: "10.254.0.122" },
            { name: "pi-web2", address: "10.254.0.123", maintenance: true },
        ]);
    });

    it("renders the configured API limits into the load balancer's site", async () => {
        recorded.clear();
        const raw = rawConfig(2);
        Object.assign(raw, { apiRateLimitPerSecond: 10000, apiRateLimitBurst: 20000, apiConnectionsPerClient: 500 });
        const cluster = new mod.PiCluster("pi-cluster", { config: mod.parseConfig(raw), artifacts: fakeArtifacts() }, { transformations: [recorder(recorded)] });
        await promiseOf(cluster.webServers);
        await settle(recorded);
        const site = decodeVar(byName(new Map(recorded), "pi-lb-nginx-conf").inputs.stdin, "SITE_B64");
        assert.match(site, /^limit_req_zone \$pi_cluster_api_client zone=pi_cluster_api_req:10m rate=10000r\/s;$/m);
        assert.strictEqual([...site.matchAll(/^        limit_req zone=pi_cluster_api_req burst=20000 nodelay;\n        limit_conn pi_cluster_api_conn 500;$/gm)].length, 4);
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

    it("wires the DB address into every web server's env file", async () => {
        const { res } = await build(2);
        for (const w of ["pi-web1", "pi-web2"]) {
            const env = decodeVar(byName(res, `${w}-app`).inputs.stdin, "ENV_B64");
            assert.match(env, /^DB_HOST="10\.254\.0\.124"$/m);
            assert.match(env, new RegExp(`^NODE_NAME="${w}"$`, "m"));
            assert.match(env, new RegExp(`^DB_PASSWORD="${FAKE_PASSWORD}"$`, "m"));
        }
    });

    it("wires every web address into its own upstream member, the per-node routes and cluster.json", async () => {
        const { res } = await build(5);
        const script = byName(res, "pi-lb-nginx-conf").inputs.stdin;
        const site = decodeVar(script, "SITE_B64");
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
        const cluster = JSON.parse(decodeVar(script, "CLUSTER_JSON_B64"));
        assert.deepStrictEqual(cluster.webServers.map((w: { name: string }) => w.name), ["pi-web1", "pi-web2", "pi-web3", "pi-web4", "pi-web5"]);
        assert.strictEqual(cluster.database.address, "10.254.0.124");
    });

    it("orders steps: ssh, base, firewall, role; drain, restart, admit, one server after the other", async () => {
        const { res } = await build(2);
        assert.deepStrictEqual(byName(res, "pi-web1-base").dependsOn, ["pi-web1-wait-ssh"]);
        assert.deepStrictEqual(byName(res, "pi-web1-firewall").dependsOn, ["pi-web1-base"]);
        // Everything that restarts the app runs between its drain and its admit.
        assert.deepStrictEqual(byName(res, "pi-web1-drain").dependsOn, ["pi-lb-nginx-conf"]);
        assert.deepStrictEqual(byName(res, "pi-web1-node").dependsOn, ["pi-web1-base", "pi-web1-firewall", "pi-web1-drain"]);
        assert.deepStrictEqual(byName(res, "pi-web1-pm2").dependsOn, ["pi-web1-node", "pi-web1-pm2-upload", "pi-web1-drain"]);
        assert.deepStrictEqual(byName(res, "pi-web1-app").dependsOn, ["pi-web1-pm2", "pi-web1-app-upload", "pi-web1-drain", "pi-db-app-db", "pi-db-migrate"]);
        assert.deepStrictEqual(byName(res, "pi-web1-admit").dependsOn, ["pi-web1-app", "pi-lb-nginx-conf"]);
        // Rolling: the second server drains only once the first serves through the LB again.
        assert.deepStrictEqual(byName(res, "pi-web2-drain").dependsOn, ["pi-lb-nginx-conf", "pi-web1-admit"]);
        // The site waits for no web server, so a dead one never blocks it.
        assert.deepStrictEqual(byName(res, "pi-lb-nginx-conf").dependsOn, ["pi-lb-nginx"]);
        // Grants and the 3306 rule change after the site (which drains a removed server).
        assert.deepStrictEqual(byName(res, "pi-db-app-db").dependsOn, ["pi-db-mariadb", "pi-lb-nginx-conf"]);
        assert.deepStrictEqual(byName(res, "pi-db-migrate").dependsOn, ["pi-db-app-db"]);
        // Hosts provision in parallel: no host's base waits on another host.
        for (const h of ["pi-lb", "pi-web1", "pi-web2", "pi-db"]) {
            assert.deepStrictEqual(byName(res, `${h}-wait-ssh`).dependsOn, []);
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
        const secretCarriers = commands(res).filter((c) => revealed(String(c.inputs.stdin ?? "")).includes(FAKE_PASSWORD)).map((c) => c.name).sort();
        assert.deepStrictEqual(secretCarriers, ["pi-db-app-db", "pi-web1-app", "pi-web2-app"]);
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
        const connection = mod.hostConnection({ address: "10.254.0.122", privateKey: FAKE_PRIVATE_KEY, hostKey: "ssh-ed25519 AAAA" });
        assert.strictEqual(await pulumi.isSecret(connection), true);
        assert.strictEqual((await promiseOf(connection)).privateKey, FAKE_PRIVATE_KEY);
    });

    it("gives each role exactly the inbound ports of its security group", async () => {
        const { res } = await build(2);
        const accepts = (host: string) => inputAccepts(decodeVar(byName(res, `${host}-firewall`).inputs.stdin, "RULESET_B64"));
        const ssh = "ip saddr 10.254.0.0/24 tcp dport 22";
        // Every TCP port the input chain accepts, with its source: anything else is dropped.
        assert.deepStrictEqual(accepts("pi-lb"), [ssh, "tcp dport 443", "tcp dport 80"]);
        for (const w of ["pi-web1", "pi-web2"]) {
            assert.deepStrictEqual(accepts(w), [ssh, "ip saddr 10.254.0.121 tcp dport 3000"]);
        }
        assert.deepStrictEqual(accepts("pi-db"), [ssh]);
        // 3306 is in the file the DB's ruleset includes, written by the app-db step.
        assert.match(byName(res, "pi-db-firewall").inputs.stdin, /./);
        assert.deepStrictEqual(inputAccepts(`chain input {\n${decodeVar(byName(res, "pi-db-app-db").inputs.stdin, "CLIENTS_B64")}\n    }`), [
            "ip saddr { 10.254.0.122, 10.254.0.123 } tcp dport 3306",
        ]);
        for (const h of ["pi-lb", "pi-web1", "pi-web2", "pi-db"]) {
            assert.match(decodeVar(byName(res, `${h}-firewall`).inputs.stdin, "RULESET_B64"), /type filter hook input priority filter; policy drop;/);
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
            const dropIn = decodeVar(base.inputs.stdin, "SSHD_CONF_B64");
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
        const cnf = decodeVar(byName(res, "pi-db-mariadb").inputs.stdin, "CONN_CNF_B64");
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
        assert.deepStrictEqual(await promiseOf(cluster.webServers), [
            { name: "pi-web1", address: "10.254.0.122" },
            { name: "pi-web2", address: "10.254.0.123" },
        ]);
        assert.deepStrictEqual(await promiseOf(cluster.database), { host: "10.254.0.124", port: 3306, name: "webapp_db", user: "webapp_user" });
        assert.strictEqual(await pulumi.isSecret(cluster.dbPassword), true);
        assert.deepStrictEqual(await promiseOf(cluster.nodes), [
            { name: "pi-lb", address: "10.254.0.121", role: "lb" },
            { name: "pi-web1", address: "10.254.0.122", role: "web" },
            { name: "pi-web2", address: "10.254.0.123", role: "web" },
            { name: "pi-db", address: "10.254.0.124", role: "db" },
        ]);
    });

    describe("backups", () => {
        const withBackup = (backup: object = { agePublicKey: AGE_PUBLIC_KEY }) => ({ ...rawConfig(2), backup });

        it("makes no backup step, binlog or target without backup config", async () => {
            const { res } = await build(2);
            assert.ok(!res.has("command:remote:Command::pi-db-backup"));
            assert.ok(!res.has("command:remote:Command::pi-cluster-backup-target"));
            assert.doesNotMatch(decodeVar(byName(res, "pi-db-mariadb").inputs.stdin, "SERVER_CNF_B64"), /log_bin/);
        });

        it("turns the binlog on, row-based with GTID, when backups are on", async () => {
            const { res } = await build(2, withBackup());
            const cnf = decodeVar(byName(res, "pi-db-mariadb").inputs.stdin, "SERVER_CNF_B64");
            for (const line of ["log_bin = mariadb-bin", "binlog_format = ROW", "gtid_strict_mode = ON", "sync_binlog = 1"]) assert.ok(cnf.includes(`\n${line}\n`), line);
        });

        it("gives the database Pi only the age public key and the target, after the schema", async () => {
            const { res } = await build(2, withBackup());
            const step = byName(res, "pi-db-backup");
            const env = decodeVar(step.inputs.stdin, "ENV_B64");
            assert.match(env, new RegExp(`^AGE_RECIPIENT=${AGE_PUBLIC_KEY}$`, "m"));
            assert.match(env, /^TARGET_HOST=10\.254\.0\.121$/m);
            assert.match(env, /^TARGET_USER=pi-backup$/m);
            assert.doesNotMatch(step.inputs.stdin, /AGE-SECRET-KEY/);
            assert.ok(step.dependsOn.includes("pi-db-migrate"), `dependsOn: ${step.dependsOn}`);
            assert.match(decodeVar(step.inputs.stdin, "KNOWN_HOSTS_B64"), /^10\.254\.0\.121 ssh-ed25519 /);
        });

        it("hands the target only the database Pi's public key, from its address, forced to the receiver", async () => {
            const { res } = await build(2, withBackup());
            const target = byName(res, "pi-cluster-backup-target");
            assert.strictEqual(target.inputs.connection.host, "10.254.0.121", "the default target is the load balancer");
            const keys = decodeVar(target.inputs.stdin, "AUTHORIZED_B64");
            assert.ok(keys.includes(`restrict,from="10.254.0.124",command="/usr/local/sbin/pi-cluster-backup receive" ${DB_BACKUP_PUBLIC_KEY}\n`), keys);
            assert.match(decodeVar(target.inputs.stdin, "ENV_B64"), /^RETENTION_DAYS=30$/m);
        });

        it("lets the backup user into the target's sshd from the database only, and nowhere else", async () => {
            const { res } = await build(2, withBackup());
            assert.match(decodeVar(byName(res, "pi-lb-base").inputs.stdin, "SSHD_CONF_B64"), /^AllowUsers pi pi-backup@10\.254\.0\.124$/m);
            for (const h of ["pi-web1", "pi-web2", "pi-db"]) assert.match(decodeVar(byName(res, `${h}-base`).inputs.stdin, "SSHD_CONF_B64"), /^AllowUsers pi$/m);
        });

        it("opens the database's output to the target's SSH port only, and no new input anywhere", async () => {
            const { res } = await build(2, withBackup());
            const db = decodeVar(byName(res, "pi-db-firewall").inputs.stdin, "RULESET_B64");
            assert.match(db, /ip daddr 10\.254\.0\.121 tcp dport 22 accept comment "backups to the backup target \(ssh\)"/);
            const plain = await build(2);
            for (const h of ["pi-lb", "pi-web1", "pi-db"]) {
                const rules = (r: Map<string, Recorded>) => inputAccepts(decodeVar(byName(r, `${h}-firewall`).inputs.stdin, "RULESET_B64"));
                assert.deepStrictEqual(rules((await build(2, withBackup())).res), rules(plain.res), h);
            }
        });

        it("ships to a configured target with its own host key", async () => {
            const { res } = await build(
                2,
                withBackup({ agePublicKey: AGE_PUBLIC_KEY, target: { host: "10.254.0.130", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOANQGvW+EBAyuBpUOLYb4Bc30lrPrg0NQYoZEBNB3DA", path: "/backups/pi" }, retentionDays: 7 }),
            );
            const target = byName(res, "pi-cluster-backup-target");
            assert.strictEqual(target.inputs.connection.host, "10.254.0.130");
            assert.match(decodeVar(target.inputs.stdin, "ENV_B64"), /^BACKUP_DIR=\/backups\/pi$/m);
            assert.match(decodeVar(target.inputs.stdin, "ENV_B64"), /^RETENTION_DAYS=7$/m);
            assert.match(decodeVar(byName(res, "pi-lb-base").inputs.stdin, "SSHD_CONF_B64"), /^AllowUsers pi$/m);
        });
    });
});
