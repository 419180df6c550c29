// The cluster end to end on the lab, in Molecule's order: converge, idempotence,
// verify, scale, fault, destroy. Real Pulumi engine, real Pis-in-containers, real HTTP.
// Run by scripts/test.sh after `lab/lab up`; it leaves the lab up for `lab down`.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { hostShare, http, lab, LB, LB_URL, onHost, OUT, pulumi, run, tcpOpenFromHost, tcpOpenFromMachine, up, UpResult } from "./lib";

const figures: Record<string, unknown> = {};
const WEB3_STEPS = ["pi-web3-app", "pi-web3-app-upload", "pi-web3-base", "pi-web3-firewall", "pi-web3-node", "pi-web3-pm2", "pi-web3-pm2-upload", "pi-web3-wait-ssh"];
// Adding or removing a web server touches its peers only where they name it.
const SCALE_UPDATES = ["pi-db-app-db", "pi-db-firewall", "pi-db-mariadb", "pi-lb-firewall", "pi-lb-nginx-conf"];

function record(key: string, value: unknown): void {
    figures[key] = value;
    fs.mkdirSync(OUT, { recursive: true });
    fs.writeFileSync(path.join(OUT, "e2e-figures.json"), JSON.stringify(figures, null, 2));
    console.log(`      figure ${key}: ${JSON.stringify(value)}`);
}

async function nodesSeen(requests: number): Promise<Set<string>> {
    const seen = new Set<string>();
    for (let i = 0; i < requests; i++) {
        const r = await http(`${LB_URL}/api/`);
        assert.strictEqual(r.status, 200, r.body);
        seen.add(r.json().node.name);
    }
    return seen;
}

async function waitFor(what: string, seconds: number, check: () => Promise<boolean>): Promise<number> {
    const started = Date.now();
    while ((Date.now() - started) / 1000 < seconds) {
        if (await check().catch(() => false)) return (Date.now() - started) / 1000;
        await new Promise((r) => setTimeout(r, 1000));
    }
    throw new Error(`${what} did not happen within ${seconds}s`);
}

describe("the cluster on the lab", function () {
    let password = "";

    before(() => {
        const status = lab("status");
        for (const h of ["pi-lb", "pi-web1", "pi-web2", "pi-db"]) assert.match(status, new RegExp(`^${h}\\s.*running`, "m"));
        run("pulumi", ["stack", "select", "--create", "lab", "--non-interactive"]);
    });

    it("converges 4 bare hosts with one pulumi up", () => {
        const r = up("converge");
        assert.ok((r.summary.create ?? 0) > 30, `expected a cold create, got ${JSON.stringify(r.summary)}`);
        record("convergeSeconds", r.seconds);
        record("convergeHostShareSeconds", Object.fromEntries(["pi-lb", "pi-web1", "pi-web2", "pi-db"].map((h) => [h, hostShare(r.events, h)])));
        password = pulumi(["stack", "output", "dbPassword", "--show-secrets"]).stdout.trim();
        assert.match(password, /^[A-Za-z0-9]{32}$/);
    });

    it("reports no changes on a second run (preview and up)", () => {
        pulumi(["preview", "--expect-no-changes", "--diff"]);
        const r: UpResult = up("noop");
        const changed = Object.entries(r.summary).filter(([op, n]) => op !== "same" && n > 0);
        assert.deepStrictEqual(changed, [], `second up changed: ${JSON.stringify(r.changes)}`);
        record("noopUpSeconds", r.seconds);
        record("noopUpChanges", changed.length);
    });

    it("answers /api/ from both web servers through the LB", async () => {
        const seen = await nodesSeen(8);
        assert.deepStrictEqual([...seen].sort(), ["pi-web1", "pi-web2"]);
        const status = (await http(`${LB_URL}/api/`)).json();
        assert.strictEqual(status.db.reachable, true, JSON.stringify(status.db));
        assert.match(status.db.version, /MariaDB/);
    });

    it("serves /api/health and round-trips a note through the LB", async () => {
        const health = await http(`${LB_URL}/api/health`);
        assert.strictEqual(health.status, 200);
        assert.strictEqual(health.json().status, "ok");
        const title = `e2e ${Date.now()}`;
        const created = await http(`${LB_URL}/api/notes`, {
            method: "POST",
            headers: { "content-type": "application/json" },
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
        const bad = await http(`${LB_URL}/api/notes`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
        assert.strictEqual(bad.status, 400);
        assert.match(bad.body, /title/);
    });

    it("serves the dashboard, cluster.json and stub_status with the right headers", async () => {
        const index = await http(`${LB_URL}/`);
        assert.strictEqual(index.status, 200);
        assert.match(index.headers.get("cache-control") ?? "", /no-cache/);
        assert.strictEqual(index.headers.get("server"), "nginx");
        const asset = /src="(main-[A-Za-z0-9]+\.js)"/.exec(index.body);
        assert.ok(asset, "index.html names a hashed main bundle");
        const js = await http(`${LB_URL}/${asset![1]}`, { headers: { "accept-encoding": "gzip" } });
        assert.match(js.headers.get("cache-control") ?? "", /max-age=31536000/);
        const spa = await http(`${LB_URL}/some/deep/link`);
        assert.strictEqual(spa.status, 200);
        assert.strictEqual(spa.body, index.body);
        const cluster = (await http(`${LB_URL}/cluster.json`)).json();
        assert.deepStrictEqual(cluster.webServers.map((w: { name: string }) => w.name), ["pi-web1", "pi-web2"]);
        const stub = await http(`${LB_URL}/api/lb/stub_status`);
        assert.match(stub.body, /^Active connections: \d+/);
        const node = await http(`${LB_URL}/api/nodes/pi-web2/`);
        assert.strictEqual(node.json().node.name, "pi-web2");
    });

    it("enforces the security groups between the lab hosts", () => {
        const web1 = "10.254.0.122";
        const db = "10.254.0.124";
        const matrix: [string, string, number, boolean][] = [
            ["pi-web1", db, 3306, true],
            ["pi-web2", db, 3306, true],
            ["pi-lb", db, 3306, false],
            ["pi-lb", web1, 3000, true],
            ["pi-db", web1, 3000, false],
            ["pi-web2", web1, 3000, false],
            ["pi-web1", LB, 80, true],
        ];
        const got = matrix.map(([from, to, port]) => [from, to, port, tcpOpenFromHost(from, to, port)]);
        assert.deepStrictEqual(got, matrix);
        // From the management network (this machine): ssh and http yes, app and db no.
        const fromMachine: [string, number, boolean][] = [
            [LB, 80, true], [LB, 22, true], [web1, 22, true], [db, 22, true],
            [web1, 3000, false], [db, 3306, false], [LB, 3000, false],
        ];
        assert.deepStrictEqual(fromMachine.map(([h, p]) => [h, p, tcpOpenFromMachine(h, p)]), fromMachine);
    });

    it("keeps the DB password out of state, command output, process lists and world-readable files", () => {
        const exported = pulumi(["stack", "export"]).stdout;
        assert.ok(!exported.includes(password), "plaintext password in `pulumi stack export`");
        assert.ok(exported.includes("4dabf18193072939515e22adb298388d"), "secrets are stored encrypted");
        for (const log of fs.readdirSync(OUT).filter((f) => /^up-.*\.log$|^events-.*\.jsonl$/.test(f))) {
            assert.ok(!fs.readFileSync(path.join(OUT, log), "utf8").includes(password), `password in ${log}`);
        }
        for (const h of ["pi-web1", "pi-web2", "pi-db"]) {
            const ps = onHost(h, "ps -eo args");
            assert.strictEqual(ps.status, 0);
            assert.ok(!ps.out.includes(password), `password in ${h}'s process list`);
        }
        const env = onHost("pi-web1", "sudo stat -c '%a %U' /etc/pi-cluster/app.env");
        assert.strictEqual(env.out.trim(), "600 pi-cluster-app");
        assert.notStrictEqual(onHost("pi-web1", "cat /etc/pi-cluster/app.env").status, 0, "pi must not read the env file without sudo");
    });

    it("scales out to 3 web servers: provisions only pi-web3 and updates what names it", async () => {
        lab("up", "--web", "3");
        const r = up("scale-out");
        assert.deepStrictEqual(r.changes.create, WEB3_STEPS);
        assert.deepStrictEqual(r.changes.update, SCALE_UPDATES);
        assert.strictEqual(r.changes.delete, undefined);
        record("scaleOutSeconds", r.seconds);
        record("scaleOutChanges", (r.changes.create?.length ?? 0) + (r.changes.update?.length ?? 0));
        const seen = await nodesSeen(12);
        assert.deepStrictEqual([...seen].sort(), ["pi-web1", "pi-web2", "pi-web3"]);
    });

    it("scales back in to 2: the LB drops pi-web3 before its services are torn down", async () => {
        lab("config", "--web", "2");
        const r = up("scale-in");
        assert.deepStrictEqual(r.changes.delete, WEB3_STEPS);
        assert.deepStrictEqual(r.changes.update, SCALE_UPDATES);
        const seq = (op: string, name: string) =>
            r.events.find((e) => e.resourcePreEvent?.metadata.op === op && e.resourcePreEvent.metadata.urn.endsWith(`::${name}`))!.sequence;
        assert.ok(seq("update", "pi-lb-nginx-conf") < seq("delete", "pi-web3-app"), "upstream changed before the app was stopped");
        const seen = await nodesSeen(8);
        assert.deepStrictEqual([...seen].sort(), ["pi-web1", "pi-web2"]);
        lab("remove", "pi-web3");
    });

    it("keeps serving while pi-web1 loses power, and takes it back after", async () => {
        let ok = 0;
        const failures: string[] = [];
        let stopped = false;
        const started = Date.now();
        while (Date.now() - started < 25000) {
            if (!stopped && Date.now() - started > 3000) {
                lab("stop", "pi-web1");
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
        lab("start", "pi-web1");
        const back = await waitFor("pi-web1 serving again", 180, async () => (await http(`${LB_URL}/api/nodes/pi-web1/health`, { timeoutMs: 3000 })).status === 200);
        record("web1BackAfterBootSeconds", back);
    });

    it("shows every node live on the dashboard in a real browser, and a down node within 20 s", () => {
        const r = run("npm", ["run", "e2e"], {
            cwd: path.join(__dirname, "..", "..", "assets", "dashboard"),
            env: { ...process.env, LB_URL, LAB: path.join(__dirname, "..", "..", "lab", "lab") },
            allowFail: true,
        });
        fs.writeFileSync(path.join(OUT, "dashboard-e2e.log"), `${r.stdout}\n${r.stderr}`);
        assert.strictEqual(r.status, 0, `${r.stdout.slice(-4000)}\n${r.stderr.slice(-2000)}`);
        const timings = path.join(OUT, "dashboard-e2e.json");
        if (fs.existsSync(timings)) record("dashboard", JSON.parse(fs.readFileSync(timings, "utf8")));
    });

    it("destroys what it installed and keeps the database's data", () => {
        const started = Date.now();
        pulumi(["destroy", "--yes", "--skip-preview"]);
        record("destroySeconds", (Date.now() - started) / 1000);
        assert.notStrictEqual(onHost("pi-lb", "command -v nginx").status, 0, "nginx still installed");
        assert.notStrictEqual(onHost("pi-web1", "command -v node").status, 0, "node still installed");
        assert.notStrictEqual(onHost("pi-db", "command -v mariadbd").status, 0, "mariadb still installed");
        assert.strictEqual(onHost("pi-db", "sudo test -d /var/lib/mysql/webapp_db").status, 0, "the data must be kept");
        assert.notStrictEqual(onHost("pi-web1", "sudo nft list table inet pi_cluster").status, 0, "firewall table still there");
    });
});
