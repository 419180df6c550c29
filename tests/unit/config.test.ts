// Bad stack config fails with a message naming the key, before any resource exists.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { ConfigError, cidrContains, ipv4ToNumber, parseConfig } from "../../components/config";
import { HOST_KEY, rawConfig, tmpDir, writeKey } from "./helpers";

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

function rejects(mutate: (c: any) => void, key: RegExp, expected: RegExp): void {
    const c = rawConfig(2);
    mutate(c);
    assert.throws(
        () => parseConfig(c),
        (e: Error) => {
            assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
            assert.match(e.message, key);
            assert.match(e.message, expected);
            return true;
        },
    );
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
    it("rejects a malformed management CIDR", () => rejects((c) => (c.managementCidr = "10.254.0.0/33"), /pi-cluster:managementCidr/, /IPv4 CIDR/));
    it("rejects a host name that is not a valid host name", () =>
        rejects((c) => (c.loadBalancer.name = "Pi LB"), /pi-cluster:loadBalancer\.name/, /lower-case host name/));
    it("rejects a host key that is not an SSH public key", () =>
        rejects((c) => (c.database.hostKey = "not-a-key"), /pi-cluster:database\.hostKey/, /SSH public host key/));
    it("rejects the app port equal to the HTTP port", () => rejects((c) => (c.appPort = 80), /pi-cluster:appPort/, /other than httpPort/));
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
