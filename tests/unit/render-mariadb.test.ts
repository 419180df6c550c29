// MariaDB's config renderers (the database, a replica, semi-sync, backups), checked by
// MariaDB's own option parser.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { maxConnections, renderMariadbConfig, renderMaxConnections, renderRequireSecureTransport, renderSemiSyncConfig, replicaServerId, semiSyncSettings } from "../../components/render/mariadb";
import { tmpDir } from "./helpers";

describe("mariadb config", () => {
    const tlsFiles = { caPath: "/etc/pi-cluster/tls/ca.crt", certPath: "/etc/pi-cluster/tls/server.crt", keyPath: "/etc/pi-cluster/tls/server.key" };
    const cnf = renderMariadbConfig({ bindAddress: "10.254.0.124", port: 3306, innodbBufferPoolSize: "512M", innodbLogFileSize: "128M", tls: tlsFiles });

    it("takes TLS 1.2 and 1.3 with the Pi's own certificate, and requires it only in its own file", () => {
        assert.match(cnf, /^ssl_ca = \/etc\/pi-cluster\/tls\/ca\.crt\nssl_cert = \/etc\/pi-cluster\/tls\/server\.crt\nssl_key = \/etc\/pi-cluster\/tls\/server\.key\ntls_version = TLSv1\.2,TLSv1\.3$/m);
        // Required only once every web server uses TLS (the require-tls step), not at the restart.
        assert.doesNotMatch(cnf, /require_secure_transport/);
        assert.strictEqual(renderRequireSecureTransport().split("\n").slice(1).join("\n"), "[mariadbd]\nrequire_secure_transport = ON\n");
        const plain = renderMariadbConfig({ bindAddress: "10.254.0.124", port: 3306, innodbBufferPoolSize: "512M", innodbLogFileSize: "128M" });
        assert.doesNotMatch(plain, /ssl_|tls_version/);
    });

    it("binds to the DB's address, uses utf8mb4 and logs slow queries", () => {
        assert.match(cnf, /^bind-address = 10\.254\.0\.124$/m);
        assert.match(cnf, /^character-set-server = utf8mb4$/m);
        assert.match(cnf, /^innodb_buffer_pool_size = 512M$/m);
        assert.match(cnf, /^innodb_flush_neighbors = 0$/m);
        assert.match(cnf, /^slow_query_log = 1$/m);
    });

    it("derives max_connections from web servers x pool + headroom", () => {
        assert.strictEqual(maxConnections(2, 10, 20), 40);
        assert.match(renderMaxConnections(40), /^max_connections = 40$/m);
    });

    it("is accepted by MariaDB's own option parser", () => {
        const dir = tmpDir("pi-cnf-");
        const f = path.join(dir, "my.cnf");
        fs.writeFileSync(f, cnf + renderMaxConnections(40).replace("[mariadbd]\n", "") + renderRequireSecureTransport().replace(/^[^]*\[mariadbd\]\n/, ""));
        const r = spawnSync("mariadbd", [`--defaults-file=${f}`, "--help", "--verbose"], { encoding: "utf8" });
        assert.strictEqual(r.error, undefined, "mariadbd must be installed (apt-get install mariadb-server)");
        assert.strictEqual(r.status, 0, r.stderr);
        assert.match(r.stdout, /^innodb-flush-neighbors\s+0$/m);
        assert.match(r.stdout, /^max-connections\s+40$/m);
        assert.match(r.stdout, /^ssl-cert\s+\/etc\/pi-cluster\/tls\/server\.crt$/m);
        assert.match(r.stdout, /^tls-version\s+TLSv1\.2,TLSv1\.3$/m);
        assert.match(r.stdout, /^require-secure-transport\s+TRUE$/m);
        // And it fails on a bad option, so the check above can fail.
        fs.appendFileSync(f, "no_such_option = 1\n");
        assert.notStrictEqual(spawnSync("mariadbd", [`--defaults-file=${f}`, "--help", "--verbose"]).status, 0);
    });
});

describe("mariadb config of a read replica", () => {
    it("is read-only with its own server and GTID domain ids, and keeps the binlog with what it applies", () => {
        const id = replicaServerId("10.254.0.127");
        assert.strictEqual(id, 10 * 2 ** 24 + 254 * 2 ** 16 + 127);
        assert.strictEqual(replicaServerId("255.255.255.255"), 2 ** 32 - 1);
        assert.throws(() => replicaServerId("10.254.0"), /expected an IPv4 address/);
        const cnf = renderMariadbConfig({ bindAddress: "10.254.0.127", port: 3306, innodbBufferPoolSize: "512M", innodbLogFileSize: "128M", replica: { serverId: id } });
        for (const line of [`server_id = ${id}`, `gtid_domain_id = ${id}`, "log_bin = mariadb-bin", "gtid_strict_mode = ON", "log_slave_updates = ON", "read_only = ON"]) {
            assert.ok(cnf.split("\n").includes(line), line);
        }
        // The primary stays server 1, domain 0 (the default), with the binlog on.
        const primary = renderMariadbConfig({ bindAddress: "10.254.0.124", port: 3306, innodbBufferPoolSize: "512M", innodbLogFileSize: "128M", binlog: true });
        assert.match(primary, /^server_id = 1$/m);
        assert.doesNotMatch(primary, /read_only|gtid_domain_id/);
    });
});

describe("mariadb semi-synchronous replication", () => {
    const database = renderSemiSyncConfig(semiSyncSettings({ role: "database", hasReplicas: true, timeoutMs: 1000 }));
    const replica = renderSemiSyncConfig(semiSyncSettings({ role: "replica", hasReplicas: false, timeoutMs: 1000 }));

    it("makes the database with replicas wait for an ack after the binlog sync (lossless), up to the timeout", () => {
        assert.strictEqual(
            database.split("\n[mariadbd]\n")[1],
            "rpl_semi_sync_master_enabled = ON\nrpl_semi_sync_master_wait_point = AFTER_SYNC\nrpl_semi_sync_master_timeout = 1000\nrpl_semi_sync_slave_enabled = OFF\n",
        );
    });

    it("makes a replica ack, with the same wait settings for when it is promoted", () => {
        assert.strictEqual(
            replica.split("\n[mariadbd]\n")[1],
            "rpl_semi_sync_master_enabled = OFF\nrpl_semi_sync_master_wait_point = AFTER_SYNC\nrpl_semi_sync_master_timeout = 1000\nrpl_semi_sync_slave_enabled = ON\n",
        );
    });

    it("never waits on a database without replicas, or with a timeout of 0", () => {
        for (const a of [{ hasReplicas: false, timeoutMs: 1000 }, { hasReplicas: true, timeoutMs: 0 }]) {
            assert.deepStrictEqual(semiSyncSettings({ role: "database", ...a }).slice(0, 1), [["rpl_semi_sync_master_enabled", "OFF"]], JSON.stringify(a));
        }
        assert.deepStrictEqual(semiSyncSettings({ role: "database", hasReplicas: true, timeoutMs: 60000 })[2], ["rpl_semi_sync_master_timeout", "60000"]);
    });

    it("is accepted by MariaDB's own option parser, beside the server config", () => {
        const f = path.join(tmpDir("pi-cnf-"), "my.cnf");
        for (const [text, master, slave] of [[database, "TRUE", "FALSE"], [replica, "FALSE", "TRUE"]]) {
            fs.writeFileSync(f, renderMariadbConfig({ bindAddress: "10.254.0.124", port: 3306, innodbBufferPoolSize: "512M", innodbLogFileSize: "128M", binlog: true }) + text.replace(/^[^]*\[mariadbd\]\n/, ""));
            const r = spawnSync("mariadbd", [`--defaults-file=${f}`, "--help", "--verbose"], { encoding: "utf8" });
            assert.strictEqual(r.status, 0, r.stderr);
            assert.match(r.stdout, new RegExp(`^rpl-semi-sync-master-enabled\\s+${master}$`, "m"));
            assert.match(r.stdout, /^rpl-semi-sync-master-wait-point\s+AFTER_SYNC$/m);
            assert.match(r.stdout, /^rpl-semi-sync-master-timeout\s+1000$/m);
            assert.match(r.stdout, new RegExp(`^rpl-semi-sync-slave-enabled\\s+${slave}$`, "m"));
        }
    });
});

describe("mariadb config with backups on", () => {
    const cnf = renderMariadbConfig({ bindAddress: "10.254.0.124", port: 3306, innodbBufferPoolSize: "512M", innodbLogFileSize: "128M", binlog: true });

    it("turns on a row-based, GTID-strict binlog synced at each commit", () => {
        for (const line of ["server_id = 1", "log_bin = mariadb-bin", "binlog_format = ROW", "gtid_strict_mode = ON", "sync_binlog = 1", "binlog_expire_logs_seconds = 604800"]) {
            assert.match(cnf, new RegExp(`^${line}$`, "m"));
        }
    });

    it("is accepted by MariaDB's own option parser", () => {
        const f = path.join(tmpDir("pi-cnf-"), "my.cnf");
        fs.writeFileSync(f, cnf);
        const r = spawnSync("mariadbd", [`--defaults-file=${f}`, "--help", "--verbose"], { encoding: "utf8" });
        assert.strictEqual(r.status, 0, r.stderr);
        assert.match(r.stdout, /^binlog-format\s+ROW$/m);
        assert.match(r.stdout, /^gtid-strict-mode\s+TRUE$/m);
        assert.match(r.stdout, /^sync-binlog\s+1$/m);
    });
});
