// What must hold of TLS on a converged cluster (issue 11): HTTPS on the load balancer, its
// redirect and cipher profile, and encrypted, required TLS between the web servers and
// MariaDB. Checked from this machine (curl, testssl.sh, tcpdump on the lab's bridge) and from
// the lab hosts, for the engine e2e (cluster.test.ts).
import * as assert from "assert";
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { record } from "./checks";
import { LB, onHost, OUT, pulumi, run, setConfig, up } from "./lib";

export const LB_HTTPS = `https://${LB}`;
const DB = "10.254.0.124";
/** The lab's bridge: every packet between the lab hosts crosses it. */
export const LAB_BRIDGE = "pilab0";

/** A stack output as JSON. */
function output<T>(name: string, secret = false): T {
    return JSON.parse(pulumi(["stack", "output", name, "--json", ...(secret ? ["--show-secrets"] : [])]).stdout) as T;
}

/** The caCertificate output, written to test-output/ for curl and testssl.sh. */
export function caFile(): string {
    const pem = output<string>("caCertificate");
    assert.match(pem, /^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----\n$/);
    fs.mkdirSync(OUT, { recursive: true });
    const file = path.join(OUT, "lb-ca.pem");
    fs.writeFileSync(file, pem);
    return file;
}

/** curl from this machine: exit status, and what -w printed after the body. */
function curl(args: string[]): { status: number; out: string; err: string } {
    const r = run("curl", ["-sS", "--max-time", "10", ...args], { allowFail: true });
    return { status: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/**
 * (1) `curl --cacert <caCertificate output> https://<lb>/api/health` succeeds over HTTP/2,
 * and without --cacert fails verification. The expiry output matches the certificate nginx
 * sends and /tls.json; the CA key is root-only on the LB; the renewal timer is active.
 */
export function httpsWithClusterCa(): void {
    const ca = caFile();
    const ok = curl(["--cacert", ca, "--http2", "-w", "\n%{http_version} %{http_code}", `${LB_HTTPS}/api/health`]);
    assert.strictEqual(ok.status, 0, ok.err);
    const [body, version] = ok.out.split("\n");
    assert.strictEqual(version, "2 200", ok.out);
    assert.strictEqual(JSON.parse(body).status, "ok");

    const untrusted = curl(["-o", "/dev/null", `${LB_HTTPS}/api/health`]);
    // 60: the peer's certificate cannot be authenticated with known CA certificates.
    assert.strictEqual(untrusted.status, 60, `expected curl's verification failure, got ${untrusted.status}: ${untrusted.err}`);

    const expiry = output<string>("certificateExpiry");
    assert.match(expiry, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.ok(Date.parse(expiry) - Date.now() > 30 * 86400_000, `the certificate expires within the renewal window: ${expiry}`);
    const served = run("bash", ["-c", `openssl s_client -connect ${LB}:443 -servername pi-lb </dev/null 2>/dev/null | openssl x509 -noout -enddate`]).stdout;
    assert.strictEqual(new Date(served.trim().replace(/^notAfter=/, "")).toISOString().replace(/\.000Z$/, "Z"), expiry);
    const live = curl(["--cacert", ca, `${LB_HTTPS}/tls.json`]);
    assert.deepStrictEqual(JSON.parse(live.out), { certificateExpiry: expiry });

    assert.strictEqual(onHost("pi-lb", "sudo stat -c '%a %U:%G' /etc/pi-cluster/tls/ca.key /etc/pi-cluster/tls/server.key").out.trim(), "600 root:root\n600 root:root");
    assert.strictEqual(onHost("pi-lb", "systemctl is-active pi-cluster-tls-renew.timer").out.trim(), "active");
    record("tlsCertificateExpiry", expiry);
}

/**
 * (2) With pi-cluster:httpsRedirect on (the default), port 80 answers 301 to the same URL on
 * https; the load balancer's own probes on 127.0.0.1:80 still get the site.
 */
export function httpRedirectsToHttps(): void {
    for (const p of ["/api/health", "/", "/cluster.json?x=1"]) {
        const r = curl(["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", `http://${LB}${p}`]);
        assert.strictEqual(r.out, `301 https://${LB}${p}`, r.err);
    }
    const probe = onHost("pi-lb", "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/api/health");
    assert.strictEqual(probe.out.trim(), "200");
}

/**
 * (2) as one case for a lab stack that keeps plain HTTP (httpsRedirect false, for the request
 * streams and fetch): turns the redirect on, checks it, and turns it off again; each flip
 * updates the LB's site step and nothing else.
 */
export function redirectWhenOn(): void {
    setConfig("httpsRedirect", "true");
    try {
        assert.deepStrictEqual(up("https-redirect").changes, { update: ["pi-lb-nginx-conf"] });
        httpRedirectsToHttps();
    } finally {
        setConfig("httpsRedirect", "false");
    }
    assert.deepStrictEqual(up("https-redirect-off").changes, { update: ["pi-lb-nginx-conf"] });
    httpServesPlain();
}

/** With httpsRedirect off, port 80 serves the site as before. */
export function httpServesPlain(): void {
    const r = curl(["-o", "/dev/null", "-w", "%{http_code}", `http://${LB}/api/health`]);
    assert.strictEqual(r.out, "200", r.err);
}

interface TestsslFinding {
    id: string;
    severity: string;
    finding: string;
}

/** testssl.sh as Debian installs it (`testssl`), or upstream's name. */
function testsslCommand(): string {
    for (const c of ["testssl", "testssl.sh"]) {
        if (run("bash", ["-c", `command -v ${c}`], { allowFail: true }).status === 0) return c;
    }
    throw new Error("testssl.sh is missing: run scripts/setup.sh (Debian package testssl.sh)");
}

/**
 * (3) testssl.sh against the LB's 443: protocols and the standard cipher categories. No
 * protocol below TLS 1.2 and no weak cipher category is offered; TLS 1.2 and 1.3 are, and
 * HTTP/2 by ALPN. Category ids differ by version: 3.0 (Debian 12) reports AVERAGE and STRONG,
 * 3.2 (trixie) OBSOLETED, STRONG_NOFS and STRONG_FS; whichever the scan reports is judged.
 */
export function testsslScan(target = `${LB}:443`): void {
    const json = path.join(OUT, "testssl.json");
    fs.mkdirSync(OUT, { recursive: true });
    fs.rmSync(json, { force: true });
    // -p protocols, -s the standard cipher categories (NULL, EXPORT, LOW, 3DES, CBC, AEAD...).
    const r = run(testsslCommand(), ["--quiet", "--color", "0", "--warnings", "batch", "--ip", "one", "-p", "-s", "--jsonfile", json, target], { allowFail: true });
    assert.ok(fs.existsSync(json), `testssl.sh wrote no JSON (exit ${r.status}):\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`);
    const findings = JSON.parse(fs.readFileSync(json, "utf8")) as TestsslFinding[];
    const byId = new Map(findings.map((f) => [f.id, f]));
    const find = (id: string) => {
        const f = byId.get(id);
        assert.ok(f, `testssl.sh reported no ${id}; ids: ${[...byId.keys()].join(", ")}`);
        return f;
    };
    const offered = (f: TestsslFinding) => /^offered/.test(f.finding);
    for (const id of ["SSLv2", "SSLv3", "TLS1", "TLS1_1"]) assert.ok(!offered(find(id)), `${id}: ${find(id).finding}`);
    for (const id of ["TLS1_2", "TLS1_3"]) assert.ok(offered(find(id)), `${id}: ${find(id).finding}`);
    // Weak: no encryption, no authentication, export grade, low, 3DES/IDEA, then 3.0's
    // "average" (CBC and the like) or 3.2's CBC (obsoleted) and AEAD without forward secrecy.
    const always = ["cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW", "cipherlist_3DES_IDEA"];
    const weak = [...always, ...["cipherlist_AVERAGE", "cipherlist_OBSOLETED", "cipherlist_STRONG_NOFS"].filter((id) => byId.has(id))];
    assert.ok(weak.length > always.length, "testssl.sh reported no CBC category (AVERAGE or OBSOLETED)");
    for (const id of weak) assert.ok(!offered(find(id)), `${id}: ${find(id).finding}`);
    const strong = byId.has("cipherlist_STRONG_FS") ? "cipherlist_STRONG_FS" : "cipherlist_STRONG";
    assert.ok(offered(find(strong)), `${strong}: ${find(strong).finding}`);
    assert.strictEqual(find("ALPN_HTTP2").finding, "h2");
    const summary = Object.fromEntries(
        [...["SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3"], ...weak, strong, "ALPN_HTTP2"].map((id) => [id, find(id).finding]),
    );
    const bad = findings.filter((f) => /^(HIGH|CRITICAL)$/.test(f.severity)).map((f) => `${f.id}: ${f.finding}`);
    assert.deepStrictEqual(bad, []);
    record("testssl", summary);
}

/** The app's mysql2 on a web server, run as root with a script on stdin (the password rides in it, never in argv). */
function mysql2OnHost(host: string, script: string): { status: number; out: string } {
    return onHost(host, "sudo node -", `const mysql = require("/opt/pi-cluster/app/current/node_modules/mysql2/promise");\n${script}`);
}

/**
 * (4) From a web host, a plaintext connection as the app user is refused, while one over TLS
 * (the CA the stack ships, the DB's name) works; MariaDB says TLS is required; and the app
 * works: a note round trip through the LB on https. `writeHeaders`: extra headers for the
 * write (a bearer token, once writes need one).
 */
export function dbRequiresTls(webHost = "pi-web1", writeHeaders: Record<string, string> = {}): void {
    const password = output<string>("dbPassword", true);
    const connect = (ssl: string) => `
        mysql.createConnection({ host: ${JSON.stringify(DB)}, port: 3306, user: "webapp_user", password: ${JSON.stringify(password)}, database: "webapp_db", ${ssl} })
            .then(async (c) => { const [r] = await c.query("SHOW SESSION STATUS LIKE 'Ssl_version'"); console.log("CONNECTED " + r[0].Value); await c.end(); })
            .catch((e) => { console.log("REFUSED " + e.message); });`;
    const plain = mysql2OnHost(webHost, connect(""));
    assert.match(plain.out, /REFUSED (Access denied for user|.*insecure transport)/, plain.out);
    const tls = mysql2OnHost(
        webHost,
        connect(`host: "pi-db", stream: () => require("net").connect(3306, ${JSON.stringify(DB)}), ssl: { ca: require("fs").readFileSync("/etc/pi-cluster/db-ca.pem", "utf8"), rejectUnauthorized: true, verifyIdentity: true }`),
    );
    assert.match(tls.out, /CONNECTED TLSv1\.[23]/, tls.out);
    assert.strictEqual(onHost("pi-db", "sudo mariadb -N -e 'SELECT @@require_secure_transport'").out.trim(), "1");
    assert.match(onHost("pi-db", `sudo mariadb -N -e "SHOW GRANTS FOR 'webapp_user'@'10.254.0.122'"`).out, /REQUIRE SSL/);
    record("dbTls", { plain: plain.out.trim(), tls: tls.out.trim() });
    noteRoundTrip(`tls-e2e-${Date.now()}`, writeHeaders);
}

/** Writes a note through the LB on https and reads it back; returns its id. */
export function noteRoundTrip(title: string, writeHeaders: Record<string, string> = {}): number {
    const ca = caFile();
    // Headers from a 0600 file, so a token never shows in a process list.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pi-tls-e2e-"));
    try {
        const headers = path.join(dir, "headers");
        fs.writeFileSync(headers, ["content-type: application/json", ...Object.entries(writeHeaders).map(([k, v]) => `${k}: ${v}`)].join("\n") + "\n", { mode: 0o600 });
        const created = curl(["--cacert", ca, "-H", `@${headers}`, "-d", JSON.stringify({ title, body: `body of ${title}` }), "-w", "\n%{http_code}", `${LB_HTTPS}/api/notes`]);
        const [body, code] = created.out.split("\n");
        assert.strictEqual(code, "201", created.out + created.err);
        const id = JSON.parse(body).id as number;
        const got = curl(["--cacert", ca, `${LB_HTTPS}/api/notes/${id}`]);
        assert.strictEqual(JSON.parse(got.out).title, title);
        return id;
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/**
 * (5) A capture on the lab's bridge, port 3306, while a note with a unique marker is written
 * and read back through the LB: MariaDB traffic is there, and neither the marker nor any SQL
 * text is in it. Needs tcpdump (scripts/setup.sh) and root, as the e2e runs.
 */
export async function captureShowsNoPlaintext(writeHeaders: Record<string, string> = {}, iface = LAB_BRIDGE): Promise<void> {
    const pcap = path.join(OUT, "db-capture.pcap");
    fs.mkdirSync(OUT, { recursive: true });
    fs.rmSync(pcap, { force: true });
    const tcpdump = spawn("tcpdump", ["-i", iface, "-U", "-s", "0", "-w", pcap, "tcp", "port", "3306"], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    tcpdump.stderr!.on("data", (d) => (stderr += d));
    // tcpdump says "listening on" once the capture runs.
    for (let i = 0; i < 50 && !/listening on/.test(stderr); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(stderr, /listening on/, `tcpdump did not start: ${stderr}`);
    const marker = `MARKER${Date.now()}X${Math.random().toString(36).slice(2, 10)}`;
    try {
        // Twice, so both web servers (round-robin) reach MariaDB with it.
        for (let i = 0; i < 2; i++) noteRoundTrip(`${marker}-${i}`, writeHeaders);
        await new Promise((r) => setTimeout(r, 1000));
    } finally {
        tcpdump.kill("SIGINT");
        await new Promise((r) => tcpdump.once("exit", r));
    }
    const bytes = fs.readFileSync(pcap);
    const packets = /(\d+) packets captured/.exec(stderr)?.[1];
    assert.ok(Number(packets) >= 8, `too little MariaDB traffic captured on ${iface} to judge (${packets} packets): ${stderr}`);
    for (const text of [marker, "INSERT INTO", "SELECT ", "webapp_db", "notes", "body of"]) {
        assert.ok(!bytes.includes(Buffer.from(text)), `the capture holds "${text}" in plain text`);
    }
    record("dbCapture", { packets: Number(packets), bytes: bytes.length, marker: "absent", sql: "absent" });
}
