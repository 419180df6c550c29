import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig, type Config } from "../../src/config";
import { Database } from "../../src/db/pool";
import { TEST_WRITE_TOKEN } from "../helpers";

/**
 * The app against a MariaDB that requires TLS, as the stack's database does: a server of its own
 * (scripts/test-mariadb.sh with TEST_MARIADB_TLS_DIR), with a CA and a certificate made by the
 * same lib.sh functions that make them on the database Pi.
 */
const script = path.join(__dirname, "..", "..", "scripts", "test-mariadb.sh");
const lib = path.join(__dirname, "..", "..", "..", "scripts", "lib.sh");
const base = fs.mkdtempSync(path.join(os.tmpdir(), "pi-app-tls-"));
const env = { ...process.env, TEST_MARIADB_PORT: process.env.TEST_MARIADB_TLS_PORT ?? "3308", TEST_MARIADB_DIR: path.join(base, "mariadb") };

/** A CA in dir, and a server certificate for name and address signed by it (lib.sh). */
function certificates(dir: string, name: string, address: string): void {
  const owner = `${os.userInfo().uid}:${os.userInfo().gid}`;
  execFileSync("bash", ["-c", `set -euo pipefail; STEP=test; source "${lib}"; tls_make_ca "$1" "test CA"; tls_server_cert "$1" "$2" "$3" 365 30 "$4"`, "-", dir, name, address, owner], {
    stdio: ["ignore", "ignore", "inherit"],
  });
}

async function caught(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (err) {
    return err as Error & { code?: string };
  }
  assert.fail("expected a rejection");
}

describe("database over TLS (real MariaDB that requires it)", function () {
  this.timeout(60_000);
  const serverTls = path.join(base, "tls");
  const otherTls = path.join(base, "other");
  let config: Config["db"];
  let db: Database | undefined;

  before(() => {
    certificates(serverTls, "pi-db", "127.0.0.1");
    certificates(otherTls, "pi-db", "127.0.0.1");
    const out = execFileSync("bash", [script, "start"], { encoding: "utf8", env: { ...env, TEST_MARIADB_TLS_DIR: serverTls }, stdio: ["ignore", "pipe", "inherit"] });
    const vars = Object.fromEntries(out.split("\n").flatMap((l) => (/^(DB_[A-Z_]+)=(.*)$/.exec(l) ? [[RegExp.$1, RegExp.$2]] : [])));
    config = loadConfig({ ...vars, API_WRITE_TOKEN: TEST_WRITE_TOKEN, DB_SSL_CA: path.join(serverTls, "ca.crt"), DB_SSL_SERVERNAME: "pi-db" }).db;
  });

  afterEach(async () => {
    await db?.close();
    db = undefined;
  });

  after(() => {
    execFileSync("bash", [script, "stop"], { env, stdio: "inherit" });
    fs.rmSync(base, { recursive: true, force: true });
  });

  it("connects over TLS 1.2 or 1.3 to the server its CA signed, by the name in the certificate", async () => {
    db = new Database(config);
    const rows = await db.query<Array<{ Value: string }>>("SHOW SESSION STATUS LIKE 'Ssl_version'");
    assert.match(rows[0].Value, /^TLSv1\.[23]$/);
    const notes = await db.query<Array<{ n: number }>>("SELECT COUNT(*) AS n FROM notes");
    assert.equal(typeof notes[0].n, "number");
  });

  it("connects with a CA bundle in which the server's CA is not the first (replicas' CAs beside the primary's)", async () => {
    const bundle = fs.readFileSync(path.join(otherTls, "ca.crt"), "utf8") + fs.readFileSync(path.join(serverTls, "ca.crt"), "utf8");
    db = new Database({ ...config, ssl: { ...config.ssl!, ca: bundle } });
    const rows = await db.query<Array<{ Value: string }>>("SHOW SESSION STATUS LIKE 'Ssl_version'");
    assert.match(rows[0].Value, /^TLSv1\.[23]$/);
  });

  it("refuses a certificate that names another server", async () => {
    db = new Database({ ...config, ssl: { ...config.ssl!, serverName: "pi-web1" } }, { sleep: async () => undefined });
    const err = await caught(db.query("SELECT 1"));
    assert.match(err.message, /pi-web1.*altnames|altnames.*pi-web1/);
  });

  it("refuses a server whose certificate another CA signed", async () => {
    db = new Database({ ...config, ssl: { ...config.ssl!, ca: fs.readFileSync(path.join(otherTls, "ca.crt"), "utf8") } }, { sleep: async () => undefined });
    const err = await caught(db.query("SELECT 1"));
    assert.match(err.message, /certificate/i);
  });

  it("is refused without TLS, with the same credentials that work over TLS", async () => {
    const { ssl: _ssl, ...plain } = config;
    db = new Database(plain, { sleep: async () => undefined });
    const err = await caught(db.query("SELECT 1"));
    // MariaDB 10.11 (Debian 12) refuses as "access denied"; later ones name the secure transport.
    assert.match(err.message, /Access denied for user|insecure transport are prohibited/);
  });
});
