// The cluster end to end on the lab with the real Pulumi engine, in Molecule's order:
// converge, idempotence, verify, scale, fault, destroy. Needs the complete toolchain
// (the command and random plugins); scripts/test.sh runs it when ensure.sh has them.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as checks from "./checks";
import { record } from "./checks";
import { hostShare, lab, OUT, pulumi, run, up, UpResult } from "./lib";

const WEB3_STEPS = ["pi-web3-app", "pi-web3-app-upload", "pi-web3-base", "pi-web3-firewall", "pi-web3-node", "pi-web3-pm2", "pi-web3-pm2-upload", "pi-web3-wait-ssh"];
// Adding or removing a web server touches its peers only where they name it.
const SCALE_UPDATES = ["pi-db-app-db", "pi-db-firewall", "pi-db-mariadb", "pi-lb-firewall", "pi-lb-nginx-conf"];

describe("the cluster on the lab, with the Pulumi engine", function () {
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

    it("answers /api/ from both web servers through the LB", () => checks.apiFromEveryWebServer(["pi-web1", "pi-web2"]));
    it("serves /api/health and round-trips a note through the LB", () => checks.healthAndNotes());
    it("serves the dashboard, cluster.json and the internal routes", () => checks.staticAndInternalRoutes(["pi-web1", "pi-web2"]));
    it("enforces the security groups between the lab hosts", () => checks.securityGroups());

    it("keeps the DB password out of state, command output, process lists and world-readable files", () => {
        const exported = pulumi(["stack", "export"]).stdout;
        assert.ok(!exported.includes(password), "plaintext password in `pulumi stack export`");
        assert.ok(exported.includes("4dabf18193072939515e22adb298388d"), "secrets are stored encrypted");
        for (const log of fs.readdirSync(OUT).filter((f) => /^up-.*\.log$|^events-.*\.jsonl$/.test(f))) {
            assert.ok(!fs.readFileSync(path.join(OUT, log), "utf8").includes(password), `password in ${log}`);
        }
        checks.passwordStaysHidden(password, ["pi-web1", "pi-web2"]);
    });

    it("scales out to 3 web servers: provisions only pi-web3 and updates what names it", async () => {
        lab("up", "--web", "3");
        const r = up("scale-out");
        assert.deepStrictEqual(r.changes.create, WEB3_STEPS);
        assert.deepStrictEqual(r.changes.update, SCALE_UPDATES);
        assert.strictEqual(r.changes.delete, undefined);
        record("scaleOutSeconds", r.seconds);
        record("scaleOutChanges", (r.changes.create?.length ?? 0) + (r.changes.update?.length ?? 0));
        await checks.rotationBecomes(["pi-web1", "pi-web2", "pi-web3"]);
    });

    it("scales back in to 2: the LB drops pi-web3 before its services are torn down", async () => {
        lab("config", "--web", "2");
        const r = up("scale-in");
        assert.deepStrictEqual(r.changes.delete, WEB3_STEPS);
        assert.deepStrictEqual(r.changes.update, SCALE_UPDATES);
        const seq = (op: string, name: string) =>
            r.events.find((e) => e.resourcePreEvent?.metadata.op === op && e.resourcePreEvent.metadata.urn.endsWith(`::${name}`))!.sequence;
        assert.ok(seq("update", "pi-lb-nginx-conf") < seq("delete", "pi-web3-app"), "upstream changed before the app was stopped");
        await checks.rotationBecomes(["pi-web1", "pi-web2"]);
        lab("remove", "pi-web3");
    });

    it("keeps serving while pi-web1 loses power, and takes it back after", () => checks.survivesPowerCut("pi-web1"));
    it("shows every node live on the dashboard in a real browser, and a down node within 20 s", () => checks.dashboardInBrowser());

    it("destroys what it installed and keeps the database's data", () => {
        const started = Date.now();
        pulumi(["destroy", "--yes", "--skip-preview"]);
        record("destroySeconds", (Date.now() - started) / 1000);
        checks.removedButDataKept();
    });
});
