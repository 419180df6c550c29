import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ConfigError, loadConfig } from "../../src/config";

const required = { DB_HOST: "10.254.0.124", DB_PASSWORD: "secret", API_WRITE_TOKEN: "0123456789abcdefABCDEF" };

describe("config", () => {
  it("applies the contract's defaults", () => {
    const config = loadConfig(required);
    assert.equal(config.port, 3000);
    assert.equal(config.nodeName, os.hostname());
    assert.deepEqual(config.db, {
      host: "10.254.0.124",
      port: 3306,
      database: "webapp_db",
      user: "webapp_user",
      password: "secret",
      poolSize: 10,
    });
    assert.deepEqual(config.corsOrigins, []);
    assert.equal(config.statusCacheMs, 2000);
    assert.equal(config.backupStatusFile, null);
  });

  it("reads the version from the app's package.json", () => {
    assert.equal(loadConfig(required).version, require("../../package.json").version);
  });

  it("reads every variable", () => {
    const config = loadConfig({
      ...required,
      PORT: "8080",
      NODE_NAME: "pi-web2",
      DB_PORT: "3307",
      DB_NAME: "n",
      DB_USER: "u",
      DB_POOL_SIZE: "4",
      CORS_ORIGINS: "https://a.example, http://b.example:8080/",
      STATUS_CACHE_MS: "0",
      BACKUP_STATUS_FILE: "/var/lib/pi-cluster/backup-status.json",
    });
    assert.equal(config.port, 8080);
    assert.equal(config.nodeName, "pi-web2");
    assert.deepEqual(config.db, { host: "10.254.0.124", port: 3307, database: "n", user: "u", password: "secret", poolSize: 4 });
    assert.deepEqual(config.corsOrigins, ["https://a.example", "http://b.example:8080"]);
    assert.equal(config.statusCacheMs, 0);
    assert.equal(config.backupStatusFile, "/var/lib/pi-cluster/backup-status.json");
  });

  it("rejects a relative BACKUP_STATUS_FILE", () => {
    assert.throws(() => loadConfig({ ...required, BACKUP_STATUS_FILE: "status.json" }), /BACKUP_STATUS_FILE: expected an absolute path, got "status.json"/);
  });

  it("names every missing required variable", () => {
    assert.throws(() => loadConfig({}), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /DB_HOST: required/);
      assert.match(e.message, /DB_PASSWORD: required/);
      assert.match(e.message, /API_WRITE_TOKEN: required/);
      return true;
    });
  });

  it("rejects an out-of-range or non-numeric port with the variable and value", () => {
    assert.throws(() => loadConfig({ ...required, PORT: "70000" }), /PORT: expected an integer from 1 to 65535, got "70000"/);
    assert.throws(() => loadConfig({ ...required, DB_POOL_SIZE: "ten" }), /DB_POOL_SIZE: expected an integer from 1 to 1000, got "ten"/);
  });

  it("rejects a CORS origin that is not scheme://host[:port]", () => {
    assert.throws(() => loadConfig({ ...required, CORS_ORIGINS: "example.com" }), /CORS_ORIGINS: .*got "example.com"/);
    assert.throws(() => loadConfig({ ...required, CORS_ORIGINS: "https://a.example/path" }), /CORS_ORIGINS/);
  });

  it("reads the write token, and refuses a short or malformed one without showing it", () => {
    assert.equal(loadConfig(required).writeToken, required.API_WRITE_TOKEN);
    for (const [token, why] of [
      ["short-secret", /API_WRITE_TOKEN: expected at least 16 characters/],
      ["has a space in it, 0123456789", /API_WRITE_TOKEN: expected letters, digits and -._~\+\/ only/],
    ] as const) {
      assert.throws(() => loadConfig({ ...required, API_WRITE_TOKEN: token }), (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, why);
        assert.ok(!e.message.includes(token), "the message shows the token");
        return true;
      });
    }
  });

  it("reads the database's CA and the name in its certificate, for TLS", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pi-app-ca-"));
    const ca = path.join(dir, "db-ca.pem");
    fs.writeFileSync(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    const config = loadConfig({ ...required, DB_SSL_CA: ca, DB_SSL_SERVERNAME: "pi-db" });
    assert.deepEqual(config.db.ssl, { ca: fs.readFileSync(ca, "utf8"), serverName: "pi-db" });
    assert.equal(loadConfig(required).db.ssl, undefined);
    // A DB_HOST that is a name is the name checked.
    assert.equal(loadConfig({ ...required, DB_HOST: "pi-db", DB_SSL_CA: ca }).db.ssl?.serverName, "pi-db");
  });

  it("refuses to start when DB_SSL_CA is set but cannot be read, naming the variable and the file", () => {
    assert.throws(() => loadConfig({ ...required, DB_SSL_CA: "/nonexistent/db-ca.pem", DB_SSL_SERVERNAME: "pi-db" }), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /DB_SSL_CA: cannot read the CA file "\/nonexistent\/db-ca\.pem" \(ENOENT\)/);
      return true;
    });
  });

  it("refuses a CA file that holds no certificate, and an IP DB_HOST without the certificate's name", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pi-app-ca-"));
    const junk = path.join(dir, "junk");
    fs.writeFileSync(junk, "not a certificate\n");
    assert.throws(() => loadConfig({ ...required, DB_SSL_CA: junk, DB_SSL_SERVERNAME: "pi-db" }), /DB_SSL_CA: expected a PEM certificate/);
    const ca = path.join(dir, "ca");
    fs.writeFileSync(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    assert.throws(() => loadConfig({ ...required, DB_SSL_CA: ca }), /DB_SSL_SERVERNAME: required with DB_SSL_CA when DB_HOST is an IP address \("10\.254\.0\.124"\)/);
  });

  it("has no replicas and a 5 s lag bound by default, or with DB_REPLICAS empty", () => {
    assert.deepEqual(loadConfig(required).replication, { replicas: [], maxLagSeconds: 5 });
    assert.deepEqual(loadConfig({ ...required, DB_REPLICAS: "  " }).replication.replicas, []);
  });

  it("reads DB_REPLICAS as NAME@HOST:PORT entries in order, and the lag bound", () => {
    const config = loadConfig({
      ...required,
      DB_REPLICAS: "pi-db-read1@10.254.0.127:3306, pi-db-read2@pi-db-read2.lan:3307",
      DB_REPLICA_MAX_LAG_SECONDS: "0",
    });
    assert.deepEqual(config.replication, {
      replicas: [
        { name: "pi-db-read1", host: "10.254.0.127", port: 3306 },
        { name: "pi-db-read2", host: "pi-db-read2.lan", port: 3307 },
      ],
      maxLagSeconds: 0,
    });
  });

  for (const [entry, why] of [
    ["10.254.0.127:3306", /DB_REPLICAS: expected comma-separated NAME@HOST:PORT entries .*got "10\.254\.0\.127:3306"/],
    ["pi-db-read1@10.254.0.127", /DB_REPLICAS: expected comma-separated NAME@HOST:PORT .*got "pi-db-read1@10\.254\.0\.127"/],
    ["Pi_DB@10.254.0.127:3306", /DB_REPLICAS: expected NAME to be a host name .*got "Pi_DB" in "Pi_DB@10\.254\.0\.127:3306"/],
    ["-read1@10.254.0.127:3306", /DB_REPLICAS: expected NAME to be a host name/],
    ["pi-db-read1@10.254.0.300:3306", /DB_REPLICAS: expected HOST to be an IPv4 address or a host name, got "10\.254\.0\.300"/],
    ["pi-db-read1@10.254.0.127:0", /DB_REPLICAS: expected PORT from 1 to 65535, got "0" in "pi-db-read1@10\.254\.0\.127:0"/],
    ["pi-db-read1@10.254.0.127:65536", /DB_REPLICAS: expected PORT from 1 to 65535, got "65536"/],
    ["pi-db-read1@10.254.0.127:3306,pi-db-read1@10.254.0.128:3306", /DB_REPLICAS: replica name "pi-db-read1" appears twice \(in "pi-db-read1@10\.254\.0\.128:3306"\)/],
    ["pi-db-read1@10.254.0.127:3306,pi-db-read2@10.254.0.127:3306", /DB_REPLICAS: address 10\.254\.0\.127:3306 appears twice \(in "pi-db-read2@10\.254\.0\.127:3306"\)/],
  ] as const) {
    it(`refuses DB_REPLICAS="${entry}", naming the variable and the bad entry`, () => {
      assert.throws(() => loadConfig({ ...required, DB_REPLICAS: entry }), (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, why);
        return true;
      });
    });
  }

  it("refuses a lag bound outside 0..3600", () => {
    assert.throws(() => loadConfig({ ...required, DB_REPLICA_MAX_LAG_SECONDS: "3601" }), /DB_REPLICA_MAX_LAG_SECONDS: expected an integer from 0 to 3600, got "3601"/);
    assert.throws(() => loadConfig({ ...required, DB_REPLICA_MAX_LAG_SECONDS: "-1" }), /DB_REPLICA_MAX_LAG_SECONDS: expected an integer from 0 to 3600, got "-1"/);
  });

  it("runs no metrics listener when METRICS_PORT is unset or empty", () => {
    assert.equal(loadConfig(required).metricsPort, null);
    assert.equal(loadConfig({ ...required, METRICS_PORT: "" }).metricsPort, null);
    assert.equal(loadConfig({ ...required, METRICS_PORT: "  " }).metricsPort, null);
  });

  it("reads METRICS_PORT as a port from 1024 to 65535", () => {
    assert.equal(loadConfig({ ...required, METRICS_PORT: "9464" }).metricsPort, 9464);
    assert.equal(loadConfig({ ...required, METRICS_PORT: "1024" }).metricsPort, 1024);
    assert.equal(loadConfig({ ...required, METRICS_PORT: "65535" }).metricsPort, 65535);
  });

  for (const bad of ["80", "1023", "70000", "abc", "9464.5", "-9464"]) {
    it(`refuses METRICS_PORT="${bad}", naming the variable, the range and the value`, () => {
      assert.throws(
        () => loadConfig({ ...required, METRICS_PORT: bad }),
        (e: unknown) => e instanceof ConfigError && e.message.includes(`METRICS_PORT: expected an integer from 1024 to 65535, got "${bad}"`),
      );
    });
  }

  it("refuses a METRICS_PORT equal to PORT, the default PORT included", () => {
    assert.throws(() => loadConfig({ ...required, PORT: "8080", METRICS_PORT: "8080" }), /METRICS_PORT: expected a port other than PORT \(8080\), got "8080"/);
    assert.throws(() => loadConfig({ ...required, METRICS_PORT: "3000" }), /METRICS_PORT: expected a port other than PORT \(3000\), got "3000"/);
  });

  it("takes a CA bundle (several concatenated PEM CAs) and refuses a truncated one", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pi-app-ca-"));
    const one = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const bundle = path.join(dir, "bundle.pem");
    fs.writeFileSync(bundle, one + one.replace("MIIB", "MIIC") + one.replace("MIIB", "MIID"));
    assert.equal(loadConfig({ ...required, DB_SSL_CA: bundle, DB_SSL_SERVERNAME: "pi-db" }).db.ssl?.ca, fs.readFileSync(bundle, "utf8"));
    const truncated = path.join(dir, "truncated.pem");
    fs.writeFileSync(truncated, one + "-----BEGIN CERTIFICATE-----\nMIIC\n");
    assert.throws(() => loadConfig({ ...required, DB_SSL_CA: truncated, DB_SSL_SERVERNAME: "pi-db" }), /DB_SSL_CA: ".*truncated\.pem" has 2 BEGIN CERTIFICATE lines but 1 complete certificates/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
