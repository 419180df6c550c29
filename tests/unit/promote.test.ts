// scripts/promote/state.ts: what leaves the state when the database Pi is lost.
import * as assert from "assert";
import { Deployment, withoutLostDatabase } from "../../scripts/promote/state";

const STACK = "urn:pulumi:lab::pi-cluster::";
const CLUSTER = `${STACK}pi-cluster:cluster:PiCluster::pi-cluster`;
const db = (name: string) => `${STACK}pi-cluster:cluster:PiCluster$pi-cluster:db:Database::${name}`;
const dbStep = (db: string, step: string) => `${STACK}pi-cluster:cluster:PiCluster$pi-cluster:db:Database$command:remote:Command::${db}-${step}`;
const dbHost = (name: string) => `${STACK}pi-cluster:cluster:PiCluster$pi-cluster:db:Database$pi-cluster:host:Host::${name}`;
const hostStep = (name: string, step: string) => `${STACK}pi-cluster:cluster:PiCluster$pi-cluster:db:Database$pi-cluster:host:Host$command:remote:Command::${name}-${step}`;
const webApp = `${STACK}pi-cluster:cluster:PiCluster$pi-cluster:web:WebServer$command:remote:Command::pi-web1-app`;

function state(): Deployment {
    const r = (urn: string, parent: string | undefined, type: string, dependencies: string[] = [], extra: Record<string, unknown> = {}) => ({ urn, parent, type, dependencies, ...extra });
    return {
        version: 3,
        deployment: {
            manifest: {},
            resources: [
                r(CLUSTER, undefined, "pi-cluster:cluster:PiCluster"),
                r(db("pi-db"), CLUSTER, "pi-cluster:db:Database"),
                r(dbHost("pi-db"), db("pi-db"), "pi-cluster:host:Host"),
                r(hostStep("pi-db", "base"), dbHost("pi-db"), "command:remote:Command"),
                r(dbStep("pi-db", "mariadb"), db("pi-db"), "command:remote:Command", [hostStep("pi-db", "base")]),
                r(dbStep("pi-db", "app-db"), db("pi-db"), "command:remote:Command", [dbStep("pi-db", "mariadb")], { propertyDependencies: { stdin: [dbStep("pi-db", "mariadb")] } }),
                r(db("pi-db-read1"), CLUSTER, "pi-cluster:db:Database"),
                r(dbStep("pi-db-read1", "mariadb"), db("pi-db-read1"), "command:remote:Command"),
                r(dbStep("pi-db-read1", "source"), db("pi-db-read1"), "command:remote:Command", [dbStep("pi-db", "app-db")]),
                r(dbStep("pi-db-read1", "replica"), db("pi-db-read1"), "command:remote:Command", [dbStep("pi-db-read1", "source")], {
                    propertyDependencies: { stdin: [dbStep("pi-db", "mariadb")], connection: [] },
                }),
                r(webApp, CLUSTER, "command:remote:Command", [dbStep("pi-db", "app-db"), dbStep("pi-db-read1", "replica")], { deletedWith: dbStep("pi-db", "app-db") }),
            ],
        },
    };
}

describe("promotion: the state without the lost database (scripts/promote/state.ts)", () => {
    it("takes out the lost database's component, everything under it, and the replicas' source steps", () => {
        const { deployment, removed } = withoutLostDatabase(state(), "pi-db", ["pi-db-read1"]);
        assert.deepStrictEqual(removed.sort(), [db("pi-db"), dbHost("pi-db"), hostStep("pi-db", "base"), dbStep("pi-db", "mariadb"), dbStep("pi-db", "app-db"), dbStep("pi-db-read1", "source")].sort());
        const urns = deployment.deployment.resources!.map((r) => r.urn);
        assert.deepStrictEqual(urns, [CLUSTER, db("pi-db-read1"), dbStep("pi-db-read1", "mariadb"), dbStep("pi-db-read1", "replica"), webApp]);
    });

    it("leaves no reference to what it took out in what stays", () => {
        const { deployment, removed } = withoutLostDatabase(state(), "pi-db", ["pi-db-read1"]);
        const text = JSON.stringify(deployment);
        for (const urn of removed) assert.ok(!text.includes(JSON.stringify(urn)), `${urn} is still referenced`);
        const web = deployment.deployment.resources!.find((r) => r.urn === webApp)!;
        assert.deepStrictEqual(web.dependencies, [dbStep("pi-db-read1", "replica")]);
        assert.strictEqual(web.deletedWith, undefined);
        const replica = deployment.deployment.resources!.find((r) => r.urn === dbStep("pi-db-read1", "replica"))!;
        assert.deepStrictEqual(replica.propertyDependencies, { stdin: [], connection: [] });
    });

    it("refuses a name that is not a database of the state, and keeps the input as it was", () => {
        const before = state();
        const copy = JSON.stringify(before);
        assert.throws(() => withoutLostDatabase(before, "pi-web1", []), /no database component named pi-web1/);
        withoutLostDatabase(before, "pi-db", ["pi-db-read1"]);
        assert.strictEqual(JSON.stringify(before), copy);
    });
});
