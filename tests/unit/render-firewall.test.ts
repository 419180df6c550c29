// The firewall's renderer: each role's rules, checked by nft -c.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { renderStreamClient } from "../../components/render/binlogStream";
import { renderDbClients, renderFirewall, renderReplicaClient, replicaClientFile, roleFirewall, Topology } from "../../components/render/firewall";
import { tmpDir } from "./helpers";
import { FIREWALL_INCLUDE_DIR } from "../../components/constants";

const topology: Topology = {
    adminCidrs: ["10.254.0.0/24"],
    lbAddress: "10.254.0.121",
    webAddresses: ["10.254.0.122", "10.254.0.123"],
    dbAddress: "10.254.0.124",
    appPort: 3000,
    dbPort: 3306,
    httpPort: 80,
};

const isRoot = process.getuid?.() === 0;

describe("firewall", () => {
    it("renders the web role: app port from the LB only, ssh from management, drop the rest", () => {
        const r = renderFirewall(roleFirewall("web", topology));
        assert.match(r, /^table inet pi_cluster\ndelete table inet pi_cluster\ntable inet pi_cluster \{$/m);
        assert.match(r, /^        ip saddr 10\.254\.0\.121 tcp dport 3000 accept comment "app from the load balancer only"$/m);
        assert.match(r, /^        ip saddr 10\.254\.0\.0\/24 tcp dport 22 accept/m);
        assert.match(r, /^        ip daddr 10\.254\.0\.124 tcp dport 3306 accept/m);
        // SSH is accepted before conntrack can call a picked-up session invalid.
        assert.ok(r.indexOf("tcp dport 22 accept") < r.indexOf("ct state invalid drop"));
        assert.ok(r.indexOf("tcp sport 22 accept") < r.lastIndexOf("ct state established,related accept"));
        assert.match(r, /chain forward \{\n        type filter hook forward priority filter; policy drop;\n    \}/);
    });

    it("renders the db role: 3306 from the web servers only (an included file) and no outbound to peers", () => {
        const r = renderFirewall(roleFirewall("db", topology));
        assert.match(r, /^        include "\/etc\/pi-cluster\/firewall\.d\/\*\.nft"\n    \}/m);
        assert.doesNotMatch(r, /tcp dport 3306/);
        assert.doesNotMatch(r, /ip daddr \S+ tcp dport/);
        assert.strictEqual(
            renderDbClients(["10.254.0.123", "10.254.0.122"], 3306).split("\n")[1],
            'ip saddr { 10.254.0.122, 10.254.0.123 } tcp dport 3306 accept comment "mariadb from the web servers only"',
        );
        assert.strictEqual(renderDbClients(["10.254.0.122"], 3306).split("\n")[1], 'ip saddr 10.254.0.122 tcp dport 3306 accept comment "mariadb from the web servers only"');
        assert.doesNotMatch(renderDbClients([], 3306), /accept/);
    });

    it("renders the replica roles: 3306 from the web servers only, replication and its seed to the database only", () => {
        const t = { ...topology, replicaAddresses: ["10.254.0.128", "10.254.0.127"], dbSshPort: 2222 };
        const r = renderFirewall(roleFirewall("replica", t));
        assert.deepStrictEqual(
            r.split("\n").filter((l) => /tcp dport (3306|2222)/.test(l)).map((l) => l.trim()),
            [
                'ip saddr { 10.254.0.122, 10.254.0.123 } tcp dport 3306 accept comment "mariadb from the web servers only"',
                'ip daddr 10.254.0.124 tcp dport 3306 accept comment "replication from the database"',
                'ip daddr 10.254.0.124 tcp dport 2222 accept comment "the seeding stream from the database (ssh)"',
            ],
        );
        assert.doesNotMatch(r, /include/);
        // The web servers reach the replicas; the database lets their seeding streams in on SSH.
        assert.match(renderFirewall(roleFirewall("web", t)), /^        ip daddr \{ 10\.254\.0\.127, 10\.254\.0\.128 \} tcp dport 3306 accept comment "mariadb on the read replicas"$/m);
        assert.match(renderFirewall(roleFirewall("db", t)), /^        ip saddr \{ 10\.254\.0\.127, 10\.254\.0\.128 \} tcp dport 22 accept comment "seeding streams to the read replicas \(ssh\)"$/m);
        // Each replica's 3306 on the database is a file of its own (its source step's).
        assert.strictEqual(replicaClientFile("pi-db-read1"), "/etc/pi-cluster/firewall.d/replica-pi-db-read1.nft");
        assert.match(renderReplicaClient("10.254.0.127", 3306), /^ip saddr 10\.254\.0\.127 tcp dport 3306 accept/m);
        // Without replicas, no rule names them.
        assert.doesNotMatch(renderFirewall(roleFirewall("web", topology)), /read replicas/);
        assert.doesNotMatch(renderFirewall(roleFirewall("db", topology)), /seeding/);
    });

    it("renders the lb role: 80 and 443 from anywhere, proxy to the web servers", () => {
        const r = renderFirewall(roleFirewall("lb", topology));
        assert.match(r, /^        tcp dport 80 accept comment "http from anywhere"$/m);
        assert.match(r, /^        tcp dport 443 accept comment "https from anywhere"$/m);
        assert.match(r, /^        ip daddr \{ 10\.254\.0\.122, 10\.254\.0\.123 \} tcp dport 3000 accept/m);
    });

    it("lets the load balancer, as the binlog stream's target, reach MariaDB on the database and nothing else new", () => {
        const lb = (t: Topology) => renderFirewall(roleFirewall("lb", t)).split("\n").filter((l) => /ip daddr .* dport/.test(l)).map((l) => l.trim());
        assert.deepStrictEqual(lb({ ...topology, streamTarget: "10.254.0.121" }), [
            'ip daddr { 10.254.0.122, 10.254.0.123 } tcp dport 3000 accept comment "proxy to the web servers"',
            'ip daddr 10.254.0.124 tcp dport 3306 accept comment "the binlog stream from the database"',
        ]);
        // Without the stream, or with another host as the target, the load balancer reaches the web servers only.
        assert.deepStrictEqual(lb(topology), [lb({ ...topology, streamTarget: "10.254.0.121" })[0]]);
        assert.deepStrictEqual(lb({ ...topology, streamTarget: "10.254.0.130" }), lb(topology));
        // Its input and every other role are the same with the stream as without it.
        for (const role of ["web", "db", "replica"] as const) {
            assert.strictEqual(renderFirewall(roleFirewall(role, { ...topology, streamTarget: "10.254.0.121" })), renderFirewall(roleFirewall(role, topology)), role);
        }
    });

    it("opens SSH, and its replies, to the admin networks only, which need not hold the hosts", () => {
        const admins = { ...topology, adminCidrs: ["192.168.1.10/32", "172.16.0.0/12"] };
        for (const role of ["lb", "web", "db"] as const) {
            const r = renderFirewall(roleFirewall(role, admins, 2222));
            const ssh = r.split("\n").filter((l) => /\b(dport|sport) 2222\b/.test(l)).map((l) => l.trim());
            assert.deepStrictEqual(ssh, [
                'ip saddr { 192.168.1.10/32, 172.16.0.0/12 } tcp dport 2222 accept comment "ssh from the admin networks"',
                'ip daddr { 192.168.1.10/32, 172.16.0.0/12 } tcp sport 2222 accept comment "ssh replies, as above"',
            ], role);
            assert.doesNotMatch(r, /10\.254\.0\.0\/24/, `${role}: the management network keeps no SSH`);
        }
        assert.throws(() => roleFirewall("web", { ...topology, adminCidrs: [] }), /adminCidrs must not be empty/);
    });

    it("opens the node exporter to the Prometheus host only, and lets that host reach every Pi, when monitoring is on", () => {
        const t = { ...topology, monitoring: { address: "10.254.0.121" } };
        for (const role of ["lb", "web", "db", "replica"] as const) {
            assert.match(renderFirewall(roleFirewall(role, t)), /^        ip saddr 10\.254\.0\.121 tcp dport 9100 accept comment "node metrics to prometheus only"$/m, role);
            assert.doesNotMatch(renderFirewall(roleFirewall(role, topology)), /9100/, role);
        }
        assert.match(renderFirewall(roleFirewall("lb", t)), /^        ip daddr \{ 10\.254\.0\.122, 10\.254\.0\.123, 10\.254\.0\.124 \} tcp dport 9100 accept/m);
        assert.doesNotMatch(renderFirewall(roleFirewall("web", t)), /ip daddr \S+ tcp dport 9100/);
    });

    it("opens the app's metrics listener on the web servers to the Prometheus host only, with monitoring on only", () => {
        const t = { ...topology, monitoring: { address: "10.254.0.121" } };
        assert.match(renderFirewall(roleFirewall("web", t)), /^        ip saddr 10\.254\.0\.121 tcp dport 9464 accept comment "app metrics to prometheus only"$/m);
        assert.match(renderFirewall(roleFirewall("lb", t)), /^        ip daddr \{ 10\.254\.0\.122, 10\.254\.0\.123 \} tcp dport 9464 accept comment "prometheus scrapes the apps"$/m);
        for (const role of ["db", "replica"] as const) assert.doesNotMatch(renderFirewall(roleFirewall(role, t)), /9464/, role);
        for (const role of ["lb", "web", "db", "replica"] as const) assert.doesNotMatch(renderFirewall(roleFirewall(role, topology)), /9464/, role);
    });

    it("is accepted by nft -c", function () {
        if (!isRoot) this.skip(); // nft -c needs CAP_NET_ADMIN; CI runs as root
        for (const role of ["lb", "web", "db", "replica"] as const) {
            const dir = tmpDir("pi-nft-");
            const f = path.join(dir, `${role}.nft`);
            // The database's clients rule, included from a directory of the test's own.
            fs.mkdirSync(path.join(dir, "firewall.d"));
            fs.writeFileSync(path.join(dir, "firewall.d", "db-clients.nft"), renderDbClients(topology.webAddresses, 3306));
            fs.writeFileSync(path.join(dir, "firewall.d", "replica-pi-db-read1.nft"), renderReplicaClient("10.254.0.127", 3306));
            fs.writeFileSync(path.join(dir, "firewall.d", "binlog-stream.nft"), renderStreamClient("10.254.0.121", 3306));
            // Two admin networks, so the set syntax is checked too.
            // Monitoring on, so the node exporter's rules are checked too.
            const admins = {
                ...topology,
                adminCidrs: ["10.254.0.0/24", "192.168.1.10/32"],
                replicaAddresses: ["10.254.0.127", "10.254.0.128"],
                streamTarget: "10.254.0.121",
                monitoring: { address: "10.254.0.121" },
            };
            fs.writeFileSync(f, renderFirewall(roleFirewall(role, admins)).replace(FIREWALL_INCLUDE_DIR, path.join(dir, "firewall.d")));
            // In a fresh network namespace, so checking never touches this machine's rules.
            const r = spawnSync("unshare", ["--net", "nft", "-c", "-f", f], { encoding: "utf8" });
            assert.strictEqual(r.status, 0, `${role}: ${r.stderr}`);
        }
    });
});
