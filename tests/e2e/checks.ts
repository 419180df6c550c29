// What must hold of a converged cluster, checked from this machine and from the lab hosts
// with real HTTP, real TCP and real browsers, for the engine e2e (cluster.test.ts).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { http, lab, LB, LB_URL, onHost, OUT, REPO, run, tcpOpenFromHost, tcpProbeFromMachine, writeHeaders } from "./lib";

export const figures: Record<string, unknown> = {};

export function record(key: string, value: unknown): void {
    figures[key] = value;
    fs.mkdirSync(OUT, { recursive: true });
    // Each suite its own file (scripts/test.sh names them), so one suite never overwrites another's.
    fs.writeFileSync(path.join(OUT, process.env.E2E_FIGURES_FILE ?? "e2e-figures.json"), JSON.stringify(figures, null, 2));
    console.log(`      figure ${key}: ${JSON.stringify(value)}`);
}

export async function nodesSeen(requests: number): Promise<string[]> {
    const seen = new Set<string>();
    for (let i = 0; i < requests; i++) {
        const r = await http(`${LB_URL}/api/`);
        assert.strictEqual(r.status, 200, r.body);
        // The public status names the node that answered.
        seen.add(r.json().node);
    }
    return [...seen].sort();
}

export async function waitFor(what: string, seconds: number, check: () => Promise<boolean>): Promise<number> {
    const started = Date.now();
    while ((Date.now() - started) / 1000 < seconds) {
        if (await check().catch(() => false)) return (Date.now() - started) / 1000;
        await new Promise((r) => setTimeout(r, 1000));
    }
    throw new Error(`${what} did not happen within ${seconds}s`);
}

/**
 * Waits until round-robin through the LB reaches exactly `expected`: `systemctl reload nginx`
 * returns before the new workers take over, so a scale shows up a moment later.
 */
export async function rotationBecomes(expected: string[], seconds = 20): Promise<void> {
    let last: string[] = [];
    try {
        await waitFor(`the LB rotation to become ${expected.join(", ")}`, seconds, async () => {
            last = await nodesSeen(4 * expected.length);
            return JSON.stringify(last) === JSON.stringify(expected);
        });
    } catch (e) {
        throw new Error(`${(e as Error).message}; last seen: ${last.join(", ")}`);
    }
}

export async function apiFromEveryWebServer(expected: string[]): Promise<void> {
    assert.deepStrictEqual(await nodesSeen(4 * expected.length), expected);
    // This machine is on the management network, which gets the internal status.
    const status = (await http(`${LB_URL}/api/internal/status`)).json();
    assert.strictEqual(status.db.reachable, true, JSON.stringify(status.db));
    assert.match(status.db.version, /MariaDB/);
}

/** Checks /api/health and writes a note through the LB; returns the note's id. */
export async function healthAndNotes(): Promise<number> {
    const health = await http(`${LB_URL}/api/health`);
    assert.strictEqual(health.status, 200);
    assert.strictEqual(health.json().status, "ok");
    const title = `e2e ${Date.now()}`;
    const created = await http(`${LB_URL}/api/notes`, {
        method: "POST",
        headers: writeHeaders(),
        body: JSON.stringify({ title, body: "written through the load balancer" }),
    });
    assert.strictEqual(created.status, 201, created.body);
    const id = created.json().id;
    // Read it back twice so both web servers (round-robin) serve it from MariaDB.
    for (let i = 0; i < 2; i++) {
        const got = await http(`${LB_URL}/api/notes/${id}`);
        assert.strictEqual(got.status, 200, got.body);
        assert.strictEqual(got.json().title, title);
    }
    const bad = await http(`${LB_URL}/api/notes`, { method: "POST", headers: writeHeaders(), body: "{}" });
    assert.strictEqual(bad.status, 400);
    assert.match(bad.body, /title/);
    return id;
}

export async function staticAndInternalRoutes(webServers: string[]): Promise<void> {
    const index = await http(`${LB_URL}/`);
    assert.strictEqual(index.status, 200);
    assert.match(index.headers.get("cache-control") ?? "", /no-cache/);
    assert.strictEqual(index.headers.get("server"), "nginx");
    assert.strictEqual(index.headers.get("x-content-type-options"), "nosniff");
    const asset = /src="(main-[A-Za-z0-9]+\.js)"/.exec(index.body);
    assert.ok(asset, "index.html names a hashed main bundle");
    const js = await http(`${LB_URL}/${asset![1]}`);
    assert.match(js.headers.get("cache-control") ?? "", /max-age=31536000/);
    const spa = await http(`${LB_URL}/some/deep/link`);
    assert.strictEqual(spa.status, 200);
    assert.strictEqual(spa.body, index.body);
    const cluster = (await http(`${LB_URL}/cluster.json`)).json();
    assert.deepStrictEqual(cluster.webServers.map((w: { name: string }) => w.name), webServers);
    const internal = (await http(`${LB_URL}/internal/cluster.json`)).json();
    assert.deepStrictEqual(internal.webServers.map((w: { name: string }) => w.name), webServers);
    assert.ok(internal.webServers.every((w: { address?: string }) => typeof w.address === "string"));
    const stub = await http(`${LB_URL}/api/lb/stub_status`);
    assert.match(stub.body, /^Active connections: \d+/);
    for (const w of webServers) {
        const node = await http(`${LB_URL}/api/nodes/${w}/internal/status`);
        assert.strictEqual(node.json().node.name, w);
    }
}

export function securityGroups(): void {
    const web1 = "10.254.0.122";
    const db = "10.254.0.124";
    const matrix: [string, string, number, boolean][] = [
        ["pi-web1", db, 3306, true],
        ["pi-web2", db, 3306, true],
        // The load balancer is the backup target, whose binlog stream (backup.stream, on in the
        // lab) logs in to the database as pi_binlog: its one way into 3306.
        ["pi-lb", db, 3306, true],
        ["pi-lb", web1, 3000, true],
        ["pi-db", web1, 3000, false],
        ["pi-web2", web1, 3000, false],
        ["pi-web1", LB, 80, true],
    ];
    assert.deepStrictEqual(matrix.map(([from, to, port]) => [from, to, port, tcpOpenFromHost(from, to, port)]), matrix);
    // This machine is on the management network: ssh and http yes, app and db no.
    const fromMachine: [string, number, boolean][] = [
        [LB, 80, true], [LB, 22, true], [web1, 22, true], [db, 22, true],
        [web1, 3000, false], [db, 3306, false], [LB, 3000, false],
    ];
    const probes = fromMachine.map(([h, p]) => tcpProbeFromMachine(h, p));
    assert.deepStrictEqual(
        fromMachine.map(([h, p], i) => [h, p, probes[i].open]),
        fromMachine,
        `from this machine:\n${probes.map((p) => p.detail).join("\n")}`,
    );
}

/**
 * The ways a secret could sit in text: plain, hex, and base64 at each of the three byte
 * alignments it can have inside a longer encoded text (standard and URL-safe alphabets).
 */
export function secretEncodings(secret: string): string[] {
    const out = new Set([secret, Buffer.from(secret).toString("hex"), Buffer.from(secret).toString("hex").toUpperCase()]);
    for (let pad = 0; pad < 3; pad++) {
        const b64 = Buffer.from("\0".repeat(pad) + secret).toString("base64");
        // Skip the characters that also encode the padding, and the last partial group.
        const core = b64.slice(Math.ceil((pad * 4) / 3), Math.floor(((pad + secret.length) * 4) / 3));
        out.add(core);
        out.add(core.replace(/\+/g, "-").replace(/\//g, "_"));
    }
    return [...out];
}

export function assertNoSecret(secret: string, text: string, where: string): void {
    const found = secretEncodings(secret).filter((e) => text.includes(e));
    assert.deepStrictEqual(found, [], `the password is in ${where}`);
}

export function passwordStaysHidden(password: string, webServers: string[]): void {
    // The encoded forms must be findable, or the checks below could never fail.
    const envFile = Buffer.from(`DB_HOST=10.254.0.124\nDB_PASSWORD=${password}\nDB_POOL=10\n`).toString("base64");
    assert.throws(() => assertNoSecret(password, envFile, "a base64 env file"));
    for (const h of [...webServers, "pi-db", "pi-lb"]) {
        const ps = onHost(h, "ps -eo args");
        assert.strictEqual(ps.status, 0);
        assertNoSecret(password, ps.out, `${h}'s process list`);
        const logs = onHost(h, "sudo journalctl --no-pager -q | cat");
        assertNoSecret(password, logs.out, `${h}'s journal`);
    }
    for (const w of webServers) {
        assert.strictEqual(onHost(w, "sudo stat -c '%a %U' /etc/pi-cluster/app-secrets.env").out.trim(), "600 pi-cluster-app");
        assert.notStrictEqual(onHost(w, "cat /etc/pi-cluster/app-secrets.env").status, 0, "pi must not read the secrets file without sudo");
        // The settings file holds no secret, and is not world-readable either.
        assert.strictEqual(onHost(w, "sudo stat -c '%a %U:%G' /etc/pi-cluster/app.env").out.trim(), "640 root:pi-cluster-app");
        assertNoSecret(password, onHost(w, "sudo cat /etc/pi-cluster/app.env").out, `${w}'s app.env`);
    }
    assertNoSecret(password, run("ps", ["-eo", "args"]).stdout, "this machine's process list");
}

export async function survivesPowerCut(host: string): Promise<void> {
    let ok = 0;
    const failures: string[] = [];
    let stopped = false;
    const started = Date.now();
    while (Date.now() - started < 25000) {
        if (!stopped && Date.now() - started > 3000) {
            lab("stop", host);
            stopped = true;
        }
        try {
            const r = await http(`${LB_URL}/api/health`, { timeoutMs: 8000 });
            if (r.status === 200) ok++;
            else failures.push(`${r.status} ${r.body.slice(0, 80)}`);
        } catch (e) {
            failures.push(String(e));
        }
        await new Promise((r) => setTimeout(r, 50));
    }
    record("faultRequests", { ok, failed: failures.length });
    assert.ok(stopped);
    assert.deepStrictEqual(failures, []);
    assert.ok(ok > 50, `only ${ok} requests in 25 s`);
    lab("start", host);
    const back = await waitFor(`${host} serving again`, 180, async () => (await http(`${LB_URL}/api/nodes/${host}/health`, { timeoutMs: 3000 })).status === 200);
    record("backAfterBootSeconds", back);
}

/**
 * Runs one of the dashboard's Chromium scripts (assets/dashboard, `npm run <script>`) against
 * the lab's LB with `env` added; its output goes to test-output/<log>, and it must exit 0.
 */
export function dashboardScript(script: string, env: Record<string, string>, log: string): void {
    const r = run("npm", ["run", script], {
        cwd: path.join(REPO, "assets", "dashboard"),
        env: { ...process.env, LB_URL, ...env },
        allowFail: true,
    });
    fs.writeFileSync(path.join(OUT, log), `${r.stdout}\n${r.stderr}`);
    assert.strictEqual(r.status, 0, `${r.stdout.slice(-4000)}\n${r.stderr.slice(-2000)}`);
}

export function dashboardInBrowser(): void {
    dashboardScript("e2e", { LAB: path.join(REPO, "lab", "lab") }, "dashboard-e2e.log");
    const timings = path.join(OUT, "dashboard-e2e.json");
    if (fs.existsSync(timings)) record("dashboard", JSON.parse(fs.readFileSync(timings, "utf8")));
}

/** After destroy: no stack service, package or firewall on any host; the DB's data kept. */
export function removedButDataKept(hosts: string[]): void {
    assert.notStrictEqual(onHost("pi-lb", "command -v nginx").status, 0, "nginx still installed");
    assert.notStrictEqual(onHost("pi-web1", "command -v node").status, 0, "node still installed");
    assert.notStrictEqual(onHost("pi-db", "command -v mariadbd").status, 0, "mariadb still installed");
    assert.strictEqual(onHost("pi-db", "sudo test -d /var/lib/mysql/webapp_db").status, 0, "the data must be kept");
    for (const h of hosts) {
        assert.notStrictEqual(onHost(h, "sudo nft list table inet pi_cluster").status, 0, `firewall table still on ${h}`);
        const units = onHost(h, "systemctl list-unit-files 'pi-cluster*' --no-legend | cat").out.trim();
        assert.strictEqual(units, "", `${h} still has units: ${units}`);
    }
}

/**
 * sshd on every Pi takes keys only, never root, only the deploy user: a password login, a
 * root login with the deploy key, and another user are each refused by the server.
 */
export function sshdHardened(hosts: string[], key: string, addresses: Record<string, string>): void {
    const attempt = (user: string, address: string, extra: string[]) =>
        run("ssh", ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", ...extra, `${user}@${address}`, "true"], { allowFail: true });
    for (const h of hosts) {
        const address = addresses[h];
        const password = attempt("pi", address, ["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive"]);
        assert.notStrictEqual(password.status, 0, `${h}: a password login went through`);
        assert.match(password.stderr, /Permission denied \(publickey\)/, `${h}: sshd offers more than publickey: ${password.stderr}`);
        for (const user of ["root", "nobody"]) {
            const r = attempt(user, address, ["-i", key, "-o", "IdentitiesOnly=yes"]);
            assert.notStrictEqual(r.status, 0, `${h}: ${user} logged in with the deploy key`);
            assert.match(r.stderr, /Permission denied/, `${h}: ${user}: ${r.stderr}`);
        }
        // The deploy user still gets in with its key.
        assert.strictEqual(attempt("pi", address, ["-i", key, "-o", "IdentitiesOnly=yes"]).status, 0, `${h}: the deploy user is locked out`);
    }
}
