// The cluster's own step scripts on the lab, run over SSH in the program's dependency
// order (see steps.ts): converge, idempotence (every script run again changes nothing),
// verify, scale out, fault, dashboard in a browser, teardown. This is the end-to-end
// proof of everything below the transport while the command provider cannot be built
// here; the engine-level proof is cluster.test.ts.
import * as assert from "assert";
import * as checks from "./checks";
import { record } from "./checks";
import { lab } from "./lib";
import { changesIn, labConfig, newPassword, planSteps, runSteps, Step } from "./steps";

function hostShare(results: { name: string; seconds: number }[], host: string): number {
    return Math.round(results.filter((r) => r.name.startsWith(`${host}-`)).reduce((s, r) => s + r.seconds, 0));
}

describe("the cluster's steps on the lab, over SSH", function () {
    const password = newPassword();
    let steps: Step[] = [];

    before(() => {
        const status = lab("status");
        for (const h of ["pi-lb", "pi-web1", "pi-web2", "pi-db"]) assert.match(status, new RegExp(`^${h}\\s.*running`, "m"));
    });

    it("converges 4 bare hosts", async () => {
        steps = await planSteps(labConfig(), password);
        const started = Date.now();
        const results = await runSteps(steps);
        record("stepsConvergeSeconds", (Date.now() - started) / 1000);
        record("stepsHostSeconds", Object.fromEntries(["pi-lb", "pi-web1", "pi-web2", "pi-db"].map((h) => [h, hostShare(results, h)])));
        assert.strictEqual(results.length, steps.length);
        assert.ok(changesIn(results).length > 20, "a cold converge changes things");
    });

    it("changes nothing when every step runs again", async () => {
        const started = Date.now();
        const results = await runSteps(steps);
        record("stepsRerunSeconds", (Date.now() - started) / 1000);
        assert.deepStrictEqual(changesIn(results), []);
    });

    it("answers /api/ from both web servers through the LB", () => checks.apiFromEveryWebServer(["pi-web1", "pi-web2"]));
    it("serves /api/health and round-trips a note through the LB", () => checks.healthAndNotes());
    it("serves the dashboard, cluster.json and the internal routes", () => checks.staticAndInternalRoutes(["pi-web1", "pi-web2"]));
    it("enforces the security groups between the lab hosts", () => checks.securityGroups());
    it("keeps the DB password out of process lists, journals and world-readable files", () => checks.passwordStaysHidden(password, ["pi-web1", "pi-web2"]));

    it("scales out to 3 web servers: new steps for pi-web3, and only the peers' steps that name it change", async () => {
        lab("up", "--web", "3");
        const next = await planSteps(labConfig(), password);
        const before = new Map(steps.map((s) => [s.name, JSON.stringify(s)]));
        const created = next.filter((s) => !before.has(s.name)).map((s) => s.name).sort();
        const updated = next.filter((s) => before.has(s.name) && before.get(s.name) !== JSON.stringify({ ...s })).map((s) => s.name).sort();
        assert.deepStrictEqual(created, ["pi-web3-app", "pi-web3-app-upload", "pi-web3-base", "pi-web3-firewall", "pi-web3-node", "pi-web3-pm2", "pi-web3-pm2-upload", "pi-web3-wait-ssh"]);
        assert.deepStrictEqual(updated.filter((n) => !n.startsWith("pi-web3")), ["pi-db-app-db", "pi-db-firewall", "pi-db-mariadb", "pi-lb-firewall", "pi-lb-nginx-conf"]);
        const started = Date.now();
        await runSteps(next.filter((s) => created.includes(s.name) || updated.includes(s.name)));
        record("stepsScaleOutSeconds", (Date.now() - started) / 1000);
        await checks.rotationBecomes(["pi-web1", "pi-web2", "pi-web3"]);
        // Back to 2: the LB and DB drop pi-web3 first, then its own steps are torn down.
        lab("config", "--web", "2");
        const back = await planSteps(labConfig(), password);
        await runSteps(back.filter((s) => ["pi-db-app-db", "pi-db-firewall", "pi-db-mariadb", "pi-lb-firewall", "pi-lb-nginx-conf"].includes(s.name)));
        await checks.rotationBecomes(["pi-web1", "pi-web2"]);
        await runSteps(next.filter((s) => s.host === "pi-web3"), "delete");
        lab("remove", "pi-web3");
        steps = back;
    });

    it("keeps serving while pi-web1 loses power, and takes it back after", () => checks.survivesPowerCut("pi-web1"));
    it("shows every node live on the dashboard in a real browser, and a down node within 20 s", () => checks.dashboardInBrowser());

    it("tears down what it installed and keeps the database's data", async () => {
        const started = Date.now();
        await runSteps(steps, "delete");
        record("stepsTeardownSeconds", (Date.now() - started) / 1000);
        checks.removedButDataKept();
    });
});
