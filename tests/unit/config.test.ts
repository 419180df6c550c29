// Bad stack config fails with a message naming the key, before any resource exists.
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as yaml from "js-yaml";
import { alertWebhookUrlProblem, apiRateLimitOf, ConfigError, cidrContains, ipv4ToNumber, loadConfig, mariadbMemoryMb, parseConfig, privateKeyType, sizeToMb } from "../../components/config";
import { dashboardTabsWithin } from "../../components/render/nginx";
import { AGE_PUBLIC_KEY, FAKE_PRIVATE_KEY, HOST_KEY, rawConfig, replicasConfig, tmpDir, writeKey } from "./helpers";

/** Pulumi.production.yaml as shipped, as `pulumi config` would hand it over, with a key file that exists here. */
function productionConfig(): Record<string, any> {
    const doc = yaml.load(fs.readFileSync(path.join(__dirname, "..", "..", "Pulumi.production.yaml"), "utf8")) as { config: Record<string, unknown> };
    const raw = Object.fromEntries(Object.entries(doc.config).map(([k, v]) => [k.replace(/^pi-cluster:/, ""), v]));
    return { ...raw, sshPrivateKeyPath: writeKey() };
}

/** What an operator adds to the production file before the first `pulumi up` (its header says how). */
function withHostKeys(raw: Record<string, any>): Record<string, any> {
    const add = (h: object) => ({ ...h, hostKey: HOST_KEY });
    return { ...raw, loadBalancer: add(raw.loadBalancer), webServers: raw.webServers.map(add), database: add(raw.database) };
}

/** The ConfigError message for the lab's config changed by `mutate`. */
function messageOf(mutate: (c: any) => void): string {
    const c = rawConfig(2);
    mutate(c);
    try {
        parseConfig(c);
    } catch (e) {
        assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
        return e.message;
    }
    throw new assert.AssertionError({ message: "expected the config to be rejected" });
}

function rejects(mutate: (c: any) => void, key: RegExp, expected: RegExp): void {
    const m = messageOf(mutate);
    assert.match(m, key);
    assert.match(m, expected);
}

describe("stack config", () => {
    it("accepts the lab's topology and fills the defaults", () => {
        const c = parseConfig(rawConfig(2));
        assert.strictEqual(c.appPort, 3000);
        assert.strictEqual(c.dbPort, 3306);
        assert.strictEqual(c.dbPoolSize, 10);
        assert.strictEqual(c.purgeDataOnDestroy, false);
        assert.strictEqual(c.webServers[1].sshPort, 22);
    });

    it("accepts the production file's topology once its host keys are set", () => {
        const c = parseConfig(withHostKeys(productionConfig()));
        assert.strictEqual(c.managementCidr, "192.168.254.0/24");
        assert.deepStrictEqual(
            [c.loadBalancer, ...c.webServers, c.database].map((h) => `${h.name} ${h.address}`),
            ["pi-lb 192.168.254.121", "pi-web1 192.168.254.122", "pi-web2 192.168.254.123", "pi-db 192.168.254.124"],
        );
        assert.strictEqual(c.sshUser, "pi");
    });

    it("rejects the production file as shipped, naming each missing host key and how to get it", () => {
        assert.throws(
            () => parseConfig(productionConfig()),
            (e: Error) => {
                for (const [key, address] of [
                    ["loadBalancer", "121"],
                    ["webServers\\[0\\]", "122"],
                    ["webServers\\[1\\]", "123"],
                    ["database", "124"],
                ]) {
                    assert.match(e.message, new RegExp(`pi-cluster:${key}\\.hostKey: expected the Pi's SSH host key.*\`ssh-keyscan -t ed25519 192\\.168\\.254\\.${address} \\| cut -d' ' -f2-\``));
                }
                return true;
            },
        );
    });

    it("rejects a host without a host key, with the keyscan command for its SSH port", () =>
        rejects(
            (c) => {
                delete c.webServers[1].hostKey;
                c.webServers[1].sshPort = 2222;
            },
            /pi-cluster:webServers\[1\]\.hostKey: expected the Pi's SSH host key/,
            /`ssh-keyscan -p 2222 -t ed25519 10\.254\.0\.123 \| cut -d' ' -f2-`/,
        ));

    it("rejects a missing web server list", () => rejects((c) => delete c.webServers, /pi-cluster:webServers/, /expected a list of web servers/));
    it("rejects an empty web server list", () => rejects((c) => (c.webServers = []), /pi-cluster:webServers/, /at least one web server/));
    it("rejects duplicate names", () =>
        rejects((c) => (c.webServers[1].name = "pi-web1"), /pi-cluster:webServers\[1\]\.name/, /duplicate host name "pi-web1"/));
    it("rejects duplicate addresses", () =>
        rejects((c) => (c.database.address = "10.254.0.122"), /pi-cluster:database\.address/, /duplicate address 10\.254\.0\.122/));
    it("takes read replicas like the other hosts, with the lag bound's default, and none by default", () => {
        assert.deepStrictEqual(parseConfig(rawConfig(2)).dbReplicas, []);
        const c = parseConfig({ ...rawConfig(2), dbReplicas: replicasConfig(2), reapply: { "pi-db-read2": 1 } });
        assert.deepStrictEqual(c.dbReplicas.map((r) => `${r.name} ${r.address} ${r.sshPort}`), ["pi-db-read1 10.254.0.127 22", "pi-db-read2 10.254.0.128 22"]);
        assert.strictEqual(c.dbReplicaMaxLagSeconds, 5);
        assert.strictEqual(c.dbSemiSyncTimeoutMs, 1000);
    });
    it("takes a semi-sync timeout of 0 to 60000 whole milliseconds, and names the key otherwise", () => {
        for (const ok of [0, 250, 60000]) assert.strictEqual(parseConfig({ ...rawConfig(2), dbSemiSyncTimeoutMs: ok }).dbSemiSyncTimeoutMs, ok);
        rejects((c) => (c.dbSemiSyncTimeoutMs = -1), /pi-cluster:dbSemiSyncTimeoutMs/, /expected at least 0 milliseconds/);
        rejects((c) => (c.dbSemiSyncTimeoutMs = 60001), /pi-cluster:dbSemiSyncTimeoutMs/, /expected at most 60000 milliseconds/);
        rejects((c) => (c.dbSemiSyncTimeoutMs = 1.5), /pi-cluster:dbSemiSyncTimeoutMs/, /expected a whole number of milliseconds, such as 1000/);
        rejects((c) => (c.dbSemiSyncTimeoutMs = "1s"), /pi-cluster:dbSemiSyncTimeoutMs/, /expected milliseconds, such as 1000/);
    });
    it("leaves monitoring off by default, takes its settings, and names a bad one with what was expected", () => {
        assert.deepStrictEqual(parseConfig(rawConfig(2)).monitoring, { enabled: false, scrapeIntervalSeconds: 15, retentionDays: 15, retentionSizeMb: 1024 });
        assert.deepStrictEqual(parseConfig({ ...rawConfig(2), monitoring: { enabled: true, retentionDays: 30 } }).monitoring, {
            enabled: true,
            scrapeIntervalSeconds: 15,
            retentionDays: 30,
            retentionSizeMb: 1024,
        });
        rejects((c) => (c.monitoring = { enabled: "yes" }), /pi-cluster:monitoring\.enabled/, /expected true \(Prometheus on the load balancer/);
        rejects((c) => (c.monitoring = { scrapeIntervalSeconds: 1 }), /pi-cluster:monitoring\.scrapeIntervalSeconds/, /expected at least 5 seconds between scrapes/);
        rejects((c) => (c.monitoring = { retentionSizeMb: 10 }), /pi-cluster:monitoring\.retentionSizeMb/, /expected at least 64 MB/);
        rejects((c) => (c.monitoring = { scrapeInterval: 5 }), /pi-cluster:monitoring\.scrapeInterval/, /scrapeIntervalSeconds/);
        rejects((c) => (c.monitoring = true), /pi-cluster:monitoring/, /expected an object \{enabled\?, scrapeIntervalSeconds\?/);
    });
    it("names a webhook URL Alertmanager could not post to, without showing it", () => {
        assert.strictEqual(alertWebhookUrlProblem("https://hooks.example.invalid/T0/B0/token"), undefined);
        assert.strictEqual(alertWebhookUrlProblem("http://10.0.0.5:9999/hook"), undefined);
        for (const [bad, expected] of [
            ["hooks.example.invalid/token", /expected an http:\/\/ or https:\/\/ URL that Alertmanager posts alerts to/],
            ["ftp://hooks.example.invalid/token", /got a ftp: one/],
        ] as const) {
            const m = alertWebhookUrlProblem(bad)!;
            assert.match(m, expected);
            assert.match(m, /pulumi config set --secret pi-cluster:alertWebhookUrl/);
            assert.doesNotMatch(m, /token/);
        }
    });
    it("rejects a replica on another host's address or name, without a host key, or a bad lag bound", () => {
        rejects((c) => (c.dbReplicas = [{ name: "pi-db-read1", address: "10.254.0.124", hostKey: HOST_KEY }]), /pi-cluster:dbReplicas\[0\]\.address/, /duplicate address 10\.254\.0\.124 \(also used by database\)/);
        rejects((c) => (c.dbReplicas = [{ name: "pi-db", address: "10.254.0.127", hostKey: HOST_KEY }]), /pi-cluster:dbReplicas\[0\]\.name/, /duplicate host name "pi-db"/);
        rejects((c) => (c.dbReplicas = [{ name: "pi-db-read1", address: "10.254.0.127" }]), /pi-cluster:dbReplicas\[0\]\.hostKey/, /expected the Pi's SSH host key/);
        rejects((c) => (c.dbReplicas = [{ name: "pi-db-read1", address: "10.9.0.127", hostKey: HOST_KEY }]), /pi-cluster:managementCidr/, /10\.9\.0\.127 \(dbReplicas\.0\) is outside/);
        rejects((c) => (c.dbReplicas = { name: "pi-db-read1" }), /pi-cluster:dbReplicas/, /expected a list of replica Pis/);
        rejects((c) => (c.dbReplicaMaxLagSeconds = -1), /pi-cluster:dbReplicaMaxLagSeconds/, /expected at least 0 seconds of replication lag/);
        rejects((c) => (c.dbReplicas = [{ name: "pi-db-read1", address: "10.254.0.127", hostKey: HOST_KEY, ramMb: 512 }]), /pi-cluster:innodbBufferPoolSize/, /fit in pi-db-read1's 512 MB \(pi-cluster:dbReplicas\[0\]\.ramMb\)/);
    });
    it("takes a reseed generation per replica, none by default, and refuses one for a host that is no replica", () => {
        assert.deepStrictEqual(parseConfig(rawConfig(2)).reseed, {});
        assert.deepStrictEqual(parseConfig({ ...rawConfig(2), dbReplicas: replicasConfig(2), reseed: { "pi-db-read2": 3 } }).reseed, { "pi-db-read2": 3 });
        rejects((c) => ((c.dbReplicas = replicasConfig(1)), (c.reseed = { "pi-db": 1 })), /pi-cluster:reseed\.pi-db/, /expected the name of a read replica of the stack \(pi-db-read1\)/);
        rejects((c) => (c.reseed = { "pi-db-read1": 1 }), /pi-cluster:reseed\.pi-db-read1/, /dbReplicas is empty/);
        rejects((c) => ((c.dbReplicas = replicasConfig(1)), (c.reseed = { "pi-db-read1": -1 })), /pi-cluster:reseed\.pi-db-read1/, /expected 0 or more/);
        rejects((c) => (c.reseed = ["pi-db-read1"]), /pi-cluster:reseed/, /expected a map of replica name to a whole number/);
    });
    it("gives the database server id 1 unless the config names one, and refuses a replica's", () => {
        assert.strictEqual(parseConfig(rawConfig(2)).database.serverId, 1);
        assert.strictEqual(parseConfig({ ...rawConfig(2), database: { ...(rawConfig(2).database as object), serverId: 184418431 } }).database.serverId, 184418431);
        rejects((c) => (c.database.serverId = 0), /pi-cluster:database\.serverId/, /expected 1 or more/);
        rejects((c) => (c.database.serverId = 1.5), /pi-cluster:database\.serverId/, /expected a whole number/);
        // 10.254.0.127 as a number: pi-db-read1's own id.
        rejects((c) => ((c.dbReplicas = replicasConfig(1)), (c.database.serverId = 184418431)), /pi-cluster:database\.serverId/, /pi-db-read1 has 184418431/);
    });
    for (const bad of ["10.254.0.300", "10.254.0", "10.254.0.1.2", "ten.0.0.1", "010.254.0.1", ""]) {
        it(`rejects the malformed IPv4 address ${JSON.stringify(bad)}`, () =>
            rejects((c) => (c.webServers[0].address = bad), /pi-cluster:webServers\[0\]\.address/, /expected an IPv4 address/));
    }
    for (const bad of [0, 65536, -1, 3000.5, "http"]) {
        it(`rejects the port ${JSON.stringify(bad)}`, () => rejects((c) => (c.appPort = bad), /pi-cluster:appPort/, /port/));
    }
    it("rejects an SSH port out of range on a host", () =>
        rejects((c) => (c.database.sshPort = 70000), /pi-cluster:database\.sshPort/, /between 1 and 65535/));
    it("rejects a missing SSH key setting", () => rejects((c) => delete c.sshPrivateKeyPath, /pi-cluster:sshPrivateKeyPath/, /expected the path of an SSH private key/));
    it("rejects an SSH key path that does not exist", () =>
        rejects((c) => (c.sshPrivateKeyPath = "/nonexistent/id_ed25519"), /pi-cluster:sshPrivateKeyPath/, /readable SSH private key file.*ENOENT/));
    it("rejects an SSH key file that holds no private key", () => {
        const f = path.join(tmpDir("pi-key-"), "id.pub");
        fs.writeFileSync(f, "ssh-ed25519 AAAA comment\n");
        rejects((c) => (c.sshPrivateKeyPath = f), /pi-cluster:sshPrivateKeyPath/, /OpenSSH\/PEM format/);
    });
    it("rejects a management CIDR that does not contain the hosts", () =>
        rejects((c) => (c.managementCidr = "192.168.254.0/24"), /pi-cluster:managementCidr/, /10\.254\.0\.121 \(loadBalancer\) is outside 192\.168\.254\.0\/24/));
    it("defaults adminCidrs to the management network", () => assert.deepStrictEqual(parseConfig(rawConfig(2)).adminCidrs, ["10.254.0.0/24"]));
    it("takes admin networks that hold none of the hosts", () => {
        const c = rawConfig(2);
        c.adminCidrs = ["192.168.1.10/32", "172.16.0.0/12"];
        assert.deepStrictEqual(parseConfig(c).adminCidrs, ["192.168.1.10/32", "172.16.0.0/12"]);
    });
    it("rejects a malformed admin CIDR, naming its index", () =>
        rejects((c) => (c.adminCidrs = ["10.0.0.0/8", "192.168.1.300/32"]), /pi-cluster:adminCidrs\[1\]/, /expected an IPv4 CIDR such as 192\.168\.254\.0\/24, got "192\.168\.1\.300\/32"/));
    it("rejects adminCidrs that is not a list", () => rejects((c) => (c.adminCidrs = "10.0.0.0/8"), /pi-cluster:adminCidrs/, /expected a list of IPv4 CIDRs/));
    it("rejects a malformed management CIDR", () => rejects((c) => (c.managementCidr = "10.254.0.0/33"), /pi-cluster:managementCidr/, /IPv4 CIDR/));
    it("refuses a management network or admin network wider than /8 (0.0.0.0/0: SSH open to the world), unless allowPublicManagement says so", () => {
        rejects((c) => (c.managementCidr = "0.0.0.0/0"), /pi-cluster:managementCidr/, /no wider than \/8: .*\/0 opens them to the whole internet; narrow it, or set pi-cluster:allowPublicManagement to true, got "0\.0\.0\.0\/0"/);
        rejects((c) => (c.managementCidr = "8.0.0.0/7"), /pi-cluster:managementCidr/, /\/7 opens them to a large part of the internet/);
        rejects((c) => (c.adminCidrs = ["10.254.0.0/24", "0.0.0.0/0"]), /pi-cluster:adminCidrs\[1\]/, /no wider than \/8/);
        const at8 = rawConfig(2);
        at8.managementCidr = "10.0.0.0/8";
        assert.strictEqual(parseConfig(at8).managementCidr, "10.0.0.0/8");
        const allowed = { ...rawConfig(2), managementCidr: "0.0.0.0/0", adminCidrs: ["0.0.0.0/0"], allowPublicManagement: true };
        assert.deepStrictEqual(parseConfig(allowed).adminCidrs, ["0.0.0.0/0"]);
        rejects((c) => (c.allowPublicManagement = "yes"), /pi-cluster:allowPublicManagement/, /expected true or false/);
    });
    it("rejects a host name that is not a valid host name", () =>
        rejects((c) => (c.loadBalancer.name = "Pi LB"), /pi-cluster:loadBalancer\.name/, /lower-case host name/));
    it("rejects a host key that is not an SSH public key", () =>
        rejects((c) => (c.database.hostKey = "not-a-key"), /pi-cluster:database\.hostKey/, /SSH public host key/));
    it("rejects an RSA host key, which the Pis' sshd no longer offers, with the keyscan command for the ed25519 one", () =>
        rejects(
            (c) => (c.database.hostKey = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7"),
            /pi-cluster:database\.hostKey: expected the Pi's ed25519 or ECDSA host key/,
            /`ssh-keyscan -t ed25519 10\.254\.0\.124 \| cut -d' ' -f2-`, got "ssh-rsa AAAA/,
        ));
    it("takes cordon per web server, false by default, and rejects a cordon that leaves none serving", () => {
        const c = rawConfig(2);
        (c.webServers as Record<string, unknown>[])[1].cordon = true;
        const parsed = parseConfig(c);
        assert.deepStrictEqual(parsed.webServers.map((w) => w.cordon), [false, true]);
    });
    it("rejects cordoning every web server", () =>
        rejects((c) => (c.webServers as Record<string, unknown>[]).forEach((w) => (w.cordon = true)), /pi-cluster:webServers/, /at least one web server without cordon/));
    it("rejects a cordon that is not a boolean", () =>
        rejects((c) => ((c.webServers as Record<string, unknown>[])[0].cordon = "yes"), /pi-cluster:webServers\[0\]\.cordon/, /expected true/));
    it("rejects a rollout health timeout out of range", () =>
        rejects((c) => (c.rolloutHealthTimeoutSeconds = 5), /pi-cluster:rolloutHealthTimeoutSeconds/, /at least 10 seconds/));
    it("rejects the app port equal to the HTTP port", () => rejects((c) => (c.appPort = 80), /pi-cluster:appPort/, /other than httpPort/));
    it("rejects an unknown key, suggesting the key it most likely meant, without showing its value", () => {
        const m = messageOf((c) => (c.dbPoolsize = "Secret0Typo0Value"));
        assert.match(m, /pi-cluster:dbPoolsize: unknown key, did you mean dbPoolSize\?/);
        assert.doesNotMatch(m, /Secret0Typo0Value/);
    });
    it("rejects an unknown key that resembles none, pointing at the declared keys", () =>
        rejects((c) => (c.tlsMode = "strict"), /pi-cluster:tlsMode: unknown key; the keys are listed in Pulumi\.yaml/, /./));
    it("rejects an unknown field in a host, suggesting the field it most likely meant", () => {
        const m = messageOf((c) => (c.webServers[1].sshport = 2222));
        assert.match(m, /pi-cluster:webServers\[1\]\.sshport: unknown key, did you mean sshPort\?/);
        assert.doesNotMatch(m, /2222/);
    });
    it("lists a host's fields when an unknown field resembles none", () =>
        rejects((c) => (c.loadBalancer.role = "lb"), /pi-cluster:loadBalancer\.role: unknown key/, /expected one of name, address, hostKey, sshPort, ramMb$/m));
    it("lists the database's fields, its server id with them, when an unknown field resembles none", () =>
        rejects((c) => (c.database.role = "db"), /pi-cluster:database\.role: unknown key/, /expected one of name, address, hostKey, sshPort, ramMb, serverId$/m));
    it("reports an unknown key beside the other bad keys", () => {
        const m = messageOf((c) => {
            c.dbPoolsize = 12;
            c.appPort = 0;
        });
        assert.match(m, /pi-cluster:dbPoolsize: unknown key/);
        assert.match(m, /pi-cluster:appPort: expected a port between 1 and 65535, got 0/);
    });

    it("rejects nginx's port equal to the load balancer's SSH port", () =>
        rejects(
            (c) => (c.loadBalancer.sshPort = 80),
            /pi-cluster:loadBalancer\.sshPort: expected a port other than pi-cluster:httpPort \(80\), where nginx listens on pi-lb, got 80/,
            /./,
        ));
    it("rejects the load balancer's SSH on 443, which its firewall opens to anyone", () =>
        rejects((c) => (c.loadBalancer.sshPort = 443), /pi-cluster:loadBalancer\.sshPort: expected a port other than 443, which the load balancer keeps for HTTPS/, /got 443/));
    it("rejects httpPort on 443, which is kept for HTTPS", () =>
        rejects((c) => (c.httpPort = 443), /pi-cluster:httpPort: expected a port other than 443, which the load balancer keeps for HTTPS \(open to anyone\) on pi-lb, got 443/, /./));
    it("rejects the app's port equal to a web server's SSH port, on that web server only", () => {
        const m = messageOf((c) => (c.webServers[1].sshPort = 3000));
        assert.match(m, /pi-cluster:webServers\[1\]\.sshPort: expected a port other than pi-cluster:appPort \(3000\), where the app listens on pi-web2, got 3000/);
        assert.doesNotMatch(m, /webServers\[0\]/);
    });
    it("rejects MariaDB's port equal to the database's SSH port", () =>
        rejects(
            (c) => (c.dbPort = 22),
            /pi-cluster:database\.sshPort: expected a port other than pi-cluster:dbPort \(22\), where MariaDB listens on pi-db, got 22/,
            /./,
        ));
    it("accepts the same port for different services on different Pis", () => {
        const c = rawConfig(2);
        c.dbPort = 3000;
        (c.loadBalancer as any).sshPort = 3306;
        (c.database as any).sshPort = 3000 + 1;
        assert.strictEqual(parseConfig(c).dbPort, 3000);
    });

    it("takes every Pi to have the seed's 2 GB, and fits the default buffer pool in it", () => {
        const c = parseConfig(rawConfig(5));
        assert.deepStrictEqual([c.loadBalancer, ...c.webServers, c.database].map((h) => h.ramMb), [2048, 2048, 2048, 2048, 2048, 2048, 2048]);
        // 512M + 10% = 564, 5 x 10 + 20 = 70 connections x 3 = 210, reserve 512.
        assert.deepStrictEqual(mariadbMemoryMb("512M", 70), { pool: 564, connections: 210, reserve: 512, total: 1286 });
    });
    it("rejects a buffer pool the database Pi cannot hold, with the numbers", () =>
        rejects(
            (c) => (c.database.ramMb = 1024),
            /pi-cluster:innodbBufferPoolSize: expected MariaDB to fit in pi-db's 1024 MB \(pi-cluster:database\.ramMb\), but it needs 1196 MB: /,
            /564 for the 512M buffer pool and its structures, 120 for 40 connections at 3 MB, 512 for the OS and MariaDB's other caches/,
        ));
    it("rejects a buffer pool too large for the default 2 GB Pi", () =>
        rejects((c) => (c.innodbBufferPoolSize = "2G"), /pi-cluster:innodbBufferPoolSize: expected MariaDB to fit in pi-db's 2048 MB/, /needs 2885 MB: 2253 for the 2G buffer pool/));
    it("accepts a smaller buffer pool on a 1 GB database Pi", () => {
        const c = rawConfig(2);
        (c.database as any).ramMb = 1024;
        c.innodbBufferPoolSize = "256M";
        assert.strictEqual(parseConfig(c).database.ramMb, 1024);
    });
    it("rejects a web server with less RAM than PM2 lets the app take", () =>
        rejects((c) => (c.webServers[0].ramMb = 512), /pi-cluster:webServers\[0\]\.ramMb: expected at least 656 MB on a web server/, /restarting it.*, got 512$/m));
    it("rejects a RAM size no Pi has", () => rejects((c) => (c.loadBalancer.ramMb = 100), /pi-cluster:loadBalancer\.ramMb/, /at least 256, got 100/));
    it("converts sizes as MariaDB reads them", () => {
        assert.strictEqual(sizeToMb("512M"), 512);
        assert.strictEqual(sizeToMb("2G"), 2048);
        assert.strictEqual(sizeToMb("1024K"), 1);
        assert.strictEqual(sizeToMb("134217728"), 128);
    });

    it("limits /api/ by default to 50 requests a second per client, a burst of 100 and 100 in flight", () => {
        assert.deepStrictEqual(apiRateLimitOf(parseConfig(rawConfig(2))), { ratePerSecond: 50, burst: 100, connectionsPerClient: 100 });
    });
    it("keeps the README's dashboard bound twice over by default: 10 tabs, 4 web servers, a refresh every 2 s", () => {
        const raw = rawConfig(4);
        raw.dashboardRefreshSeconds = 2;
        const c = parseConfig(raw);
        assert.strictEqual(dashboardTabsWithin(apiRateLimitOf(c), c.webServers.length, c.dashboardRefreshSeconds), 2 * 10);
    });
    it("accepts API limits as high as the lab's request streams need", () => {
        const c = rawConfig(2);
        Object.assign(c, { apiRateLimitPerSecond: 10000, apiRateLimitBurst: 20000, apiConnectionsPerClient: 65535 });
        assert.deepStrictEqual(apiRateLimitOf(parseConfig(c)), { ratePerSecond: 10000, burst: 20000, connectionsPerClient: 65535 });
    });
    for (const [key, bad, expected] of [
        ["apiRateLimitPerSecond", 0, /expected at least 1 requests per second per client address, got 0/],
        ["apiRateLimitPerSecond", 100001, /expected at most 100000 requests per second per client address, got 100001/],
        ["apiRateLimitPerSecond", 2.5, /expected a whole number of requests per second per client address, such as 50, got 2\.5/],
        ["apiRateLimitPerSecond", "50r/s", /expected requests per second per client address, such as 50, got "50r\/s"/],
        ["apiRateLimitBurst", -1, /expected at least 0 requests beyond the rate, got -1/],
        ["apiConnectionsPerClient", 65536, /expected at most 65535 requests in flight per client address, got 65536/],
    ] as [string, unknown, RegExp][]) {
        it(`rejects ${key} ${JSON.stringify(bad)}`, () => rejects((c) => (c[key] = bad), new RegExp(`pi-cluster:${key}: `), expected));
    }
    it("rejects a burst one dashboard tab would exceed", () =>
        rejects(
            (c) => (c.apiRateLimitBurst = 1),
            /pi-cluster:apiRateLimitBurst: expected at least 2: one dashboard tab sends 3 \/api\/ requests at once \(stub_status and 2 web servers' status\), and nginx serves the burst \+ 1 at once, got 1/,
            /./,
        ));
    it("rejects fewer requests in flight than one dashboard tab sends at once", () =>
        rejects((c) => (c.apiConnectionsPerClient = 2), /pi-cluster:apiConnectionsPerClient: expected at least 3: one dashboard tab sends 3 /, /got 2/));
    it("rejects a rate one dashboard tab would exceed at its refresh", () =>
        rejects(
            (c) => {
                c.apiRateLimitPerSecond = 1;
                c.dashboardRefreshSeconds = 2;
            },
            /pi-cluster:apiRateLimitPerSecond: expected at least 2: one dashboard tab sends 3 \/api\/ requests at once \(.*\) every 2 s \(pi-cluster:dashboardRefreshSeconds\), got 1/,
            /./,
        ));

    it("names every bad key at once", () => {
        const c = rawConfig(2);
        c.appPort = 0;
        (c.webServers as any[])[0].address = "x";
        assert.throws(() => parseConfig(c), (e: Error) => /appPort/.test(e.message) && /webServers\[0\]\.address/.test(e.message));
    });

    it("does IPv4 and CIDR arithmetic right", () => {
        assert.strictEqual(ipv4ToNumber("255.255.255.255"), 0xffffffff);
        assert.strictEqual(ipv4ToNumber("256.0.0.1"), undefined);
        assert.ok(cidrContains("10.254.0.0/24", "10.254.0.255"));
        assert.ok(!cidrContains("10.254.0.0/24", "10.254.1.0"));
        assert.ok(cidrContains("0.0.0.0/0", "192.168.254.121"));
        assert.ok(cidrContains("10.254.0.124/32", "10.254.0.124"));
    });
});

describe("a config error", () => {
    it("is a RunError whose stack is its message, with no frames to source-map (Pulumi formats it for telemetry)", () => {
        let err: unknown;
        try {
            parseConfig({ ...rawConfig(2), webServers: [] });
        } catch (e) {
            err = e;
        }
        assert.ok(err instanceof ConfigError && pulumi.RunError.isInstance(err), String(err));
        assert.strictEqual(err.stack, `Error: ${err.message}`);
        assert.doesNotMatch(err.stack!, /\n\s+at /);
    });
});

describe("the deploy key", () => {
    /**
     * A real key of `type` from ssh-keygen, in `format` (OpenSSH's own unless given). RSA at
     * ssh-keygen's smallest size: only the key's type matters here, and the default 3072
     * bits take ssh-keygen about a second each.
     */
    function keygen(type: string, format?: string): string {
        const f = path.join(tmpDir("pi-key-"), "id");
        const bits = type === "rsa" ? ["-b", "1024"] : [];
        execFileSync("ssh-keygen", ["-q", "-t", type, ...bits, "-N", "", ...(format ? ["-m", format] : []), "-f", f]);
        return f;
    }

    it("reads the type of OpenSSH and PEM keys", () => {
        assert.strictEqual(privateKeyType(fs.readFileSync(keygen("ed25519"), "utf8")), "ssh-ed25519");
        assert.strictEqual(privateKeyType(fs.readFileSync(keygen("ecdsa"), "utf8")), "ecdsa-sha2-nistp256");
        assert.strictEqual(privateKeyType(fs.readFileSync(keygen("ecdsa", "PEM"), "utf8")), "ecdsa-sha2-nistp256");
        assert.strictEqual(privateKeyType(fs.readFileSync(keygen("rsa", "PEM"), "utf8")), "ssh-rsa");
        assert.strictEqual(privateKeyType(FAKE_PRIVATE_KEY), "ssh-ed25519");
        assert.strictEqual(privateKeyType("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAnotakey\n-----END OPENSSH PRIVATE KEY-----\n"), undefined);
    });

    it("accepts ed25519 and ECDSA keys", () => {
        for (const f of [keygen("ed25519"), keygen("ecdsa"), keygen("ecdsa", "PEM")]) assert.ok(parseConfig(rawConfig(2, f)));
    });

    it("rejects an RSA key, which the Pis' sshd would refuse, saying how to make one it takes", () => {
        for (const f of [keygen("rsa"), keygen("rsa", "PEM")]) {
            rejects(
                (c) => (c.sshPrivateKeyPath = f),
                /pi-cluster:sshPrivateKeyPath: expected an ed25519 or ECDSA key, as the Pis' sshd accepts no other, got an ssh-rsa key/,
                /`ssh-keygen -t ed25519` and add its \.pub to ~pi\/\.ssh\/authorized_keys on every Pi first/,
            );
        }
    });

    it("rejects a key whose type cannot be read", () => {
        const f = path.join(tmpDir("pi-key-"), "id");
        fs.writeFileSync(f, "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAnotakey\n-----END OPENSSH PRIVATE KEY-----\n");
        rejects((c) => (c.sshPrivateKeyPath = f), /pi-cluster:sshPrivateKeyPath/, /whose type can be read/);
    });

    it("rejects an RSA key given as the secret sshPrivateKey, once its value is known", async () => {
        const raw = rawConfig(2);
        delete raw.sshPrivateKeyPath;
        const c = parseConfig(raw, pulumi.secret(fs.readFileSync(keygen("rsa"), "utf8")));
        // An apply that throws rejects the output (seen through the SDK's internal promise()),
        // which the language host reports as the program's error, at preview too.
        await assert.rejects(
            (c.sshPrivateKey as unknown as { promise(): Promise<string> }).promise(),
            (e: Error) => e instanceof ConfigError && /pi-cluster:sshPrivateKey: expected an ed25519 or ECDSA key/.test(e.message),
        );
    });
});

describe("loading the stack config", () => {
    /** The lab's config as the language host hands it over: every value as text, under its namespace. */
    function stackConfig(extra: Record<string, string>): Record<string, string> {
        const entries = Object.entries(rawConfig(2)).map(([k, v]) => [`pi-cluster:${k}`, typeof v === "string" ? v : JSON.stringify(v)]);
        return { ...Object.fromEntries(entries), ...extra };
    }

    afterEach(() => pulumi.runtime.setAllConfig({}));

    it("reads the pi-cluster keys and leaves other namespaces alone", () => {
        pulumi.runtime.setAllConfig(stackConfig({ "pi-cluster:dbPoolSize": "12", "aws:region": "eu-west-1", "pulumi:tags": "{}" }));
        const c = loadConfig();
        assert.strictEqual(c.dbPoolSize, 12);
        assert.strictEqual(c.webServers[1].address, "10.254.0.123");
    });

    it("reads apiWriteToken as a secret, and refuses one the app would refuse without showing it", async () => {
        pulumi.runtime.setAllConfig(stackConfig({ "pi-cluster:apiWriteToken": "Stack0Write0Token0Value" }), ["pi-cluster:apiWriteToken"]);
        const token = loadConfig().apiWriteToken!;
        assert.strictEqual(await pulumi.isSecret(token), true);
        assert.strictEqual(await new Promise((r) => token.apply(r)), "Stack0Write0Token0Value");
        for (const [bad, why] of [
            ["short0token", /expected at least 16 characters \(got 11\)/],
            ["a token with spaces in it", /expected letters, digits and -\._~\+\/ only/],
        ] as const) {
            const checked = parseConfig(rawConfig(2), undefined, pulumi.secret(bad)).apiWriteToken!;
            // As for sshPrivateKey above: the rejected output fails the program, at preview too.
            await assert.rejects((checked as unknown as { promise(): Promise<string> }).promise(), (e: Error) => {
                assert.ok(e instanceof ConfigError, String(e));
                assert.match(e.message, /pi-cluster:apiWriteToken: /);
                assert.match(e.message, why);
                assert.match(e.message, /pulumi config set --secret pi-cluster:apiWriteToken/);
                assert.ok(!e.message.includes(bad), "the message shows the token");
                return true;
            });
        }
    });

    it("generates the write token when the config sets none", () => {
        pulumi.runtime.setAllConfig(stackConfig({}));
        assert.strictEqual(loadConfig().apiWriteToken, undefined);
    });

    it("rejects a mistyped pi-cluster key that the schema does not read", () => {
        pulumi.runtime.setAllConfig(stackConfig({ "pi-cluster:dbPoolsize": "12" }));
        assert.throws(() => loadConfig(), (e: Error) => e instanceof ConfigError && /pi-cluster:dbPoolsize: unknown key, did you mean dbPoolSize\?/.test(e.message));
    });
});

describe("stack config messages", () => {
    it("shows the bad value beside the key, and skips the CIDR check for a malformed address", () => {
        const c = rawConfig(2);
        (c.webServers as any[])[1].address = "10.254.0.300";
        assert.throws(
            () => parseConfig(c),
            (e: Error) => {
                assert.match(e.message, /pi-cluster:webServers\[1\]\.address: expected an IPv4 address such as 192\.168\.254\.122, got "10\.254\.0\.300"/);
                assert.doesNotMatch(e.message, /managementCidr/);
                return true;
            },
        );
    });
});

describe("HTTPS config", () => {
    /** A self-signed certificate and its key, from openssl. */
    function selfSigned(): { cert: string; key: string } {
        const dir = tmpDir("pi-tls-");
        execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30", "-subj", "/CN=pi-lb",
            "-keyout", path.join(dir, "k"), "-out", path.join(dir, "c")], { stdio: "ignore" });
        return { cert: fs.readFileSync(path.join(dir, "c"), "utf8"), key: fs.readFileSync(path.join(dir, "k"), "utf8") };
    }

    it("generates the certificate, redirects HTTP and sends no HSTS by default", () => {
        const c = parseConfig(rawConfig(2));
        assert.strictEqual(c.tlsCertificateMode, "generated");
        assert.strictEqual(c.httpsRedirect, true);
        assert.strictEqual(c.hsts, false);
        assert.strictEqual(c.tlsCertificate, undefined);
        assert.strictEqual(c.tlsPrivateKey, undefined);
    });

    it("rejects an unknown certificate mode, naming the modes", () =>
        rejects((c) => (c.tlsCertificateMode = "letsencrypt"), /pi-cluster:tlsCertificateMode: /, /expected "generated" or "supplied", got "letsencrypt"/));
    it("rejects a redirect or HSTS setting that is not a boolean", () => {
        rejects((c) => (c.httpsRedirect = "yes"), /pi-cluster:httpsRedirect: /, /expected true \(port 80 answers 301 to https\) or false/);
        rejects((c) => (c.hsts = 1), /pi-cluster:hsts: /, /expected true \(send Strict-Transport-Security on https\) or false/);
    });

    it("rejects supplied mode without a certificate or a key, naming both and how to set them", () => {
        const m = messageOf((c) => (c.tlsCertificateMode = "supplied"));
        assert.match(m, /pi-cluster:tlsCertificate: expected the certificate chain in PEM with tlsCertificateMode "supplied"/);
        assert.match(m, /pi-cluster:tlsPrivateKey: expected the certificate's private key as a secret with tlsCertificateMode "supplied" .*--secret tlsPrivateKey/);
    });

    it("rejects a certificate or key set while the certificate is generated", () =>
        rejects((c) => (c.tlsCertificate = selfSigned().cert), /pi-cluster:tlsCertificate: /, /expected no tlsCertificate with tlsCertificateMode "generated"/));

    it("rejects a supplied certificate that is not PEM", () =>
        rejects((c) => Object.assign(c, { tlsCertificateMode: "supplied", tlsCertificate: "not a cert" }), /pi-cluster:tlsCertificate: /, /expected the load balancer's certificate chain in PEM/));

    it("accepts a supplied certificate with its key, the key a secret", async () => {
        const { cert, key } = selfSigned();
        const c = parseConfig({ ...rawConfig(2), tlsCertificateMode: "supplied", tlsCertificate: cert }, undefined, undefined, pulumi.secret(key));
        assert.strictEqual(c.tlsCertificate, cert);
        assert.strictEqual(await pulumi.isSecret(c.tlsPrivateKey!), true);
        assert.strictEqual(await (c.tlsPrivateKey as unknown as { promise(): Promise<string> }).promise(), key);
    });

    it("rejects a supplied key that is not the certificate's, once its value is known, without showing it", async () => {
        const c = parseConfig({ ...rawConfig(2), tlsCertificateMode: "supplied", tlsCertificate: selfSigned().cert }, undefined, undefined, pulumi.secret(selfSigned().key));
        await assert.rejects(
            (c.tlsPrivateKey as unknown as { promise(): Promise<string> }).promise(),
            (e: Error) => e instanceof ConfigError && /pi-cluster:tlsPrivateKey: expected the private key of the first certificate in tlsCertificate/.test(e.message) && !/PRIVATE KEY/.test(e.message),
        );
    });
});

describe("backup config", () => {
    it("is off when unset, and takes the seed's policy as defaults once an age key is given", () => {
        assert.strictEqual(parseConfig(rawConfig(2)).backup, undefined);
        const b = parseConfig({ ...rawConfig(2), backup: { agePublicKey: AGE_PUBLIC_KEY } }).backup!;
        assert.deepStrictEqual(
            { ...b, agePublicKey: "k" },
            {
                agePublicKey: "k",
                target: { path: "/srv/pi-cluster-backups", user: "pi-backup", minFreeMb: 1024 },
                fullOnCalendar: "daily",
                incrementalOnCalendar: "hourly",
                binlogShipSeconds: 60,
                retentionDays: 30,
                stream: true,
                staleAfterSeconds: { full: 93600, incremental: 7200, binlog: 900 },
            },
        );
    });

    it("names the key and what is expected for a bad value", () => {
        rejects((c) => (c.backup = {}), /pi-cluster:backup\.agePublicKey/, /expected an age public key/);
        rejects((c) => (c.backup = { agePublicKey: "AGE-SECRET-KEY-1XYZ" }), /pi-cluster:backup\.agePublicKey/, /age1/);
        rejects((c) => (c.backup = { agePublicKey: AGE_PUBLIC_KEY, binlogShipSeconds: 3600 }), /pi-cluster:backup\.binlogShipSeconds/, /at most 900/);
        rejects((c) => (c.backup = { agePublicKey: AGE_PUBLIC_KEY, retentionDays: 0 }), /pi-cluster:backup\.retentionDays/, /at least 1 days/);
        rejects((c) => (c.backup = { agePublicKey: AGE_PUBLIC_KEY, fullOnCalendar: "daily; rm -rf /" }), /pi-cluster:backup\.fullOnCalendar/, /OnCalendar/);
        rejects((c) => (c.backup = { agePublicKey: AGE_PUBLIC_KEY, target: { path: "relative/dir" } }), /pi-cluster:backup\.target\.path/, /absolute directory/);
        rejects((c) => (c.backup = { agePublicKey: AGE_PUBLIC_KEY, target: { path: "/srv/../etc" } }), /pi-cluster:backup\.target\.path/, /absolute directory/);
        rejects((c) => (c.backup = { agePublicKey: AGE_PUBLIC_KEY, target: { minFreeMb: -1 } }), /pi-cluster:backup\.target\.minFreeMb/, /at least 0 MB the target keeps free/);
        rejects((c) => (c.backup = { agePublicKey: AGE_PUBLIC_KEY, target: { minFreeMb: 0.5 } }), /pi-cluster:backup\.target\.minFreeMb/, /whole number/);
        rejects((c) => (c.backup = { agePublicKey: AGE_PUBLIC_KEY, stream: "yes" }), /pi-cluster:backup\.stream/, /expected true \(the target streams the binlog continuously\) or false/);
    });

    it("refuses the database Pi as its own target, and an outside target without its host key", () => {
        rejects((c) => (c.backup = { agePublicKey: AGE_PUBLIC_KEY, target: { host: "10.254.0.124" } }), /pi-cluster:backup\.target\.host/, /other than the database/);
        rejects((c) => (c.backup = { agePublicKey: AGE_PUBLIC_KEY, target: { host: "10.254.0.130" } }), /pi-cluster:backup\.target\.hostKey/, /ssh-keyscan/);
        assert.ok(parseConfig({ ...rawConfig(2), backup: { agePublicKey: AGE_PUBLIC_KEY, target: { host: "10.254.0.130", hostKey: HOST_KEY } } }).backup);
    });

    it("refuses a binlog staleness shorter than the shipping period", () => {
        rejects((c) => (c.backup = { agePublicKey: AGE_PUBLIC_KEY, binlogShipSeconds: 600, staleAfterSeconds: { binlog: 300 } }), /staleAfterSeconds\.binlog/, /binlogShipSeconds \(600\)/);
    });

    it("names the backup keys on a typo", () => {
        assert.match(messageOf((c) => (c.backup = { agePublicKey: AGE_PUBLIC_KEY, retentionDay: 7 })), /pi-cluster:backup\.retentionDay: unknown key, did you mean retentionDays\?/);
        assert.match(messageOf((c) => (c.backup = { agePublicKey: AGE_PUBLIC_KEY, target: { hots: "x" } })), /backup\.target\.hots: unknown key, did you mean host\?/);
    });
});

