// Every config key fed values of the wrong shape: the config is refused with a ConfigError
// that names the key (or taken, when the value happens to fit), and never another error, so
// no config value reaches a stack trace (issue 20).
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { ConfigError, parseConfig } from "../../components/config";
import { rawConfig } from "./helpers";

const REPO = path.join(__dirname, "..", "..");
const DECLARED = Object.keys((yaml.load(fs.readFileSync(path.join(REPO, "Pulumi.yaml"), "utf8")) as { config: Record<string, unknown> }).config);
// Keys the schema takes that Pulumi.yaml leaves undeclared (secrets and maps; README "Config reference").
const UNDECLARED = ["reapply", "reseed", "backup", "tlsCertificate"];
const HOST_FIELDS = ["name", "address", "hostKey", "sshPort", "ramMb"];
const WRONG: unknown[] = [-1, 0, 1.5, 1e12, "x", "", "-512M", "0.0.0.0/0", "999.1.1.1", {}, [], [{}], null, true, { a: 1 }];

/** What parseConfig does with `raw`: "ok", or the ConfigError's message; any other error fails the test. */
function outcome(raw: Record<string, unknown>, where: string, value: unknown): string {
    try {
        parseConfig(raw);
        return "ok";
    } catch (e) {
        assert.ok(e instanceof ConfigError, `${where} = ${JSON.stringify(value)}: ${e instanceof Error ? e.stack : String(e)}`);
        return e.message;
    }
}

describe("every config key with a value of the wrong shape", () => {
    for (const key of [...DECLARED, ...UNDECLARED]) {
        it(`${key}: refused naming it, or taken; never another error`, () => {
            for (const value of WRONG) {
                const m = outcome({ ...rawConfig(2), [key]: value }, key, value);
                if (m !== "ok") assert.match(m, new RegExp(`pi-cluster:${key}\\b`), `${key} = ${JSON.stringify(value)}: ${m}`);
            }
        });
    }

    for (const role of ["loadBalancer", "webServers", "database", "dbReplicas"]) {
        it(`${role}: each host field refused naming it, or taken; never another error`, () => {
            for (const field of HOST_FIELDS) {
                for (const value of WRONG) {
                    const raw = rawConfig(2);
                    const list = Array.isArray(raw[role]) ? (raw[role] as Record<string, unknown>[]) : undefined;
                    const host = { ...((list ? list[0] : raw[role]) as Record<string, unknown> | undefined ?? { name: "pi-db-read1", address: "10.254.0.127" }), [field]: value };
                    const changed = { ...raw, [role]: list || role === "dbReplicas" ? [host] : host };
                    const m = outcome(changed, `${role}.${field}`, value);
                    if (m !== "ok") assert.match(m, new RegExp(`pi-cluster:${role}(\\[0\\])?`), `${role}.${field} = ${JSON.stringify(value)}: ${m}`);
                }
            }
        });
    }
});
