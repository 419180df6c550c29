// The policy pack's rules (policy/policies.ts) on the resources the real program builds
// under Pulumi's mocks, which must pass, and on each violation a rule is there to catch.
// tests/e2e/policy.test.ts runs the pack through the real engine.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as yaml from "js-yaml";
import { PolicyResource, ResourceValidationArgs, ResourceValidationPolicy, StackValidationPolicy, unknownCheckingProxy } from "@pulumi/policy";
import { backupProblems, deleteProblem, hostKeyProblem, httpsProblems, managementProblems, orphanUploads, policies, secretIn, secretLoggingProblem } from "../../policy/policies";
import { AGE_PUBLIC_KEY, fakeArtifacts, HOST_KEY, installMocks, promiseOf, rawConfig, Recorded, recorder, replicasConfig, saveMocks, settle } from "./helpers";

type Mod = typeof import("../../components");

// What the pack's server puts in place of a string a preview cannot know yet (internal to
// @pulumi/policy, so untyped); reading it through unknownCheckingProxy throws UnknownValueError.
const { unknownStringValue } = require("@pulumi/policy/proxy") as { unknownStringValue: string };

const REPO = path.join(__dirname, "..", "..");
const PRODUCTION = { ...rawConfig(2), backup: { agePublicKey: AGE_PUBLIC_KEY }, dbReplicas: replicasConfig(1) };

class NotApplicable extends Error {}

function urnOf(r: Recorded): string {
    return `urn:pulumi:unit::pi-cluster::${r.type}::${r.name}`;
}

/** What a resource rule reports on a resource, as the pack's server would call it. */
function resourceViolations(policy: ResourceValidationPolicy, type: string, props: Record<string, unknown>, name = "step"): string[] {
    const found: string[] = [];
    const args = {
        type,
        props,
        urn: `urn:pulumi:unit::pi-cluster::${type}::${name}`,
        name,
        stackTags: new Map(),
        isType: (cls: { __pulumiType?: string }) => cls.__pulumiType === type,
        notApplicable: (reason?: string) => {
            throw new NotApplicable(reason);
        },
    } as unknown as ResourceValidationArgs;
    const validations = Array.isArray(policy.validateResource) ? policy.validateResource : [policy.validateResource!];
    for (const validate of validations) {
        try {
            validate(args, (message) => found.push(message));
        } catch (e) {
            if (!(e instanceof NotApplicable)) throw e;
        }
    }
    return found;
}

/** What a stack rule reports, with `stacks` as its config; "not applicable: ..." when it says so. */
function stackViolations(policy: StackValidationPolicy, resources: PolicyResource[], stacks = ["unit"]): string[] {
    const found: string[] = [];
    try {
        policy.validateStack(
            {
                resources,
                stackTags: new Map(),
                getConfig: <T>() => ({ stacks }) as T,
                notApplicable: (reason?: string) => {
                    throw new NotApplicable(reason);
                },
            },
            (message, urn) => found.push(urn ? `${urn}: ${message}` : message),
        );
    } catch (e) {
        if (!(e instanceof NotApplicable)) throw e;
        return [`not applicable: ${e.message}`];
    }
    return found;
}

/** The recorded resources as the pack sees them in a stack validation. */
function policyResources(res: Recorded[]): PolicyResource[] {
    const byName = new Map<string, PolicyResource>();
    for (const r of res) byName.set(r.name, { type: r.type, name: r.name, urn: urnOf(r), props: r.inputs, dependencies: [], propertyDependencies: {} } as unknown as PolicyResource);
    for (const r of res) byName.get(r.name)!.dependencies.push(...r.dependsOn.flatMap((d) => byName.get(d) ?? []));
    return [...byName.values()];
}

describe("policy pack", function () {
    let mod: Mod;
    let restoreMocks: () => void;
    let steps: Recorded[];
    const rule = (name: string) => policies(() => mod.parseSettings(PRODUCTION)).find((p) => p.name === name)!;
    const step = (name: string) => steps.find((s) => s.name === name)!;

    before(async () => {
        restoreMocks = saveMocks();
        const recorded = installMocks();
        mod = await import("../../components");
        const cluster = new mod.PiCluster("pi-cluster", { config: mod.parseConfig(PRODUCTION), artifacts: fakeArtifacts() }, { transformations: [recorder(recorded)] });
        await promiseOf(cluster.webServers);
        await settle(recorded);
        steps = [...recorded.values()].filter((r) => r.type.startsWith("command:remote:"));
    });

    after(() => restoreMocks());

    it("passes every resource rule on the real stack's remote steps and uploads", () => {
        const resourceRules = policies().filter((p): p is ResourceValidationPolicy => "validateResource" in p);
        assert.deepStrictEqual(
            resourceRules.map((p) => p.name),
            ["remote-steps-have-delete", "secret-steps-log-no-stdout", "pinned-host-keys"],
        );
        const found = steps.flatMap((s) => resourceRules.flatMap((p) => resourceViolations(p, s.type, s.inputs, s.name).map((m) => `${s.name}: ${m}`)));
        assert.deepStrictEqual(found, []);
        // The rules had something to hold for: steps, uploads and secret steps of every kind.
        assert.ok(steps.filter((s) => s.type === "command:remote:CopyToRemote").length >= 5);
        const secretSteps = steps.filter((s) => typeof s.inputs.stdin === "string" && secretIn(s.inputs.stdin)).map((s) => s.name);
        assert.deepStrictEqual(secretSteps.sort(), [
            "pi-cluster-binlog-stream-service",
            "pi-cluster-binlog-stream-source",
            "pi-db-app-db",
            "pi-db-read1-replica",
            "pi-db-read1-source",
            "pi-web1-app-secrets",
            "pi-web2-app-secrets",
        ]);
    });

    it("remote-steps-have-delete: catches a step script without a delete", () => {
        const { delete: _delete, ...inputs } = step("pi-db-mariadb").inputs;
        assert.match(resourceViolations(rule("remote-steps-have-delete") as ResourceValidationPolicy, "command:remote:Command", inputs).join(), /expected a delete that undoes this step/);
    });

    it("remote-steps-have-delete: catches an install in the command text, and a script not known yet at a preview", () => {
        assert.ok(deleteProblem({ create: "sudo apt-get install -y nginx" }));
        assert.ok(deleteProblem({ create: "echo x | sudo tee /etc/motd" }));
        assert.ok(deleteProblem(unknownCheckingProxy({ create: "sudo bash -s -- apply", stdin: unknownStringValue })));
        // wait-ssh's probe changes nothing on the Pi.
        assert.strictEqual(deleteProblem(step("pi-db-wait-ssh").inputs), undefined);
    });

    it("secret-steps-log-no-stdout: catches a secret step that logs stdout, or leaves logging to the provider's default", () => {
        const { logging: _logging, ...inputs } = step("pi-web1-app-secrets").inputs;
        const policy = rule("secret-steps-log-no-stdout") as ResourceValidationPolicy;
        assert.match(resourceViolations(policy, "command:remote:Command", { ...inputs, logging: "stdoutAndStderr" }).join(), /carries the variable [A-Z_]*(PASSWORD|TOKEN|SECRETS_TEXT)/);
        assert.match(resourceViolations(policy, "command:remote:Command", inputs).join(), /got "stdoutAndStderr"/);
    });

    it("secret-steps-log-no-stdout: counts a private key carried as a file's text, and waits for a script not known yet", () => {
        const script = `KEY_TEXT=$(cat <<'PI_CLUSTER_EOF'; printf x\n-----BEGIN PRIVATE KEY-----\nMC4\n-----END PRIVATE KEY-----\nPI_CLUSTER_EOF\n)`;
        assert.match(secretLoggingProblem({ stdin: script, logging: "stdoutAndStderr" }) ?? "", /carries a private key/);
        assert.strictEqual(secretLoggingProblem({ stdin: script, logging: "stderr" }), undefined);
        assert.strictEqual(secretLoggingProblem(unknownCheckingProxy({ stdin: unknownStringValue, logging: "stdoutAndStderr" })), undefined);
    });

    it("pinned-host-keys: catches a step and an upload with no host key, and an RSA key the Pis' sshd does not offer", () => {
        const policy = rule("pinned-host-keys") as ResourceValidationPolicy;
        for (const name of ["pi-db-base", "pi-web1-app-upload"]) {
            const s = step(name);
            const { hostKey: _key, ...connection } = s.inputs.connection;
            assert.match(resourceViolations(policy, s.type, { ...s.inputs, connection }).join(), /expected connection\.hostKey/, name);
            const rsa = { ...connection, hostKey: "ssh-rsa AAAAB3NzaC1yc2E" };
            assert.match(resourceViolations(policy, s.type, { ...s.inputs, connection: rsa }).join(), /got a ssh-rsa key/, name);
        }
        assert.strictEqual(hostKeyProblem({ connection: { hostKey: HOST_KEY } }), undefined);
    });

    it("uploads-are-torn-down: passes the real stack, catches an upload no step with a delete depends on", () => {
        const policy = rule("uploads-are-torn-down") as StackValidationPolicy;
        assert.deepStrictEqual(stackViolations(policy, policyResources(steps)), []);
        const orphaned = steps.map((s) => (s.name === "pi-lb-dashboard" ? { ...s, dependsOn: s.dependsOn.filter((d) => d !== "pi-lb-dashboard-upload") } : s));
        assert.deepStrictEqual(orphanUploads(policyResources(orphaned)), [urnOf(step("pi-lb-dashboard-upload"))]);
    });

    it("production rules: pass the shipped Pulumi.production.yaml once its host keys and backups are set", () => {
        const file = yaml.load(fs.readFileSync(path.join(REPO, "Pulumi.production.yaml"), "utf8")) as { config: Record<string, any> };
        const raw = Object.fromEntries(Object.entries(file.config).map(([k, v]) => [k.replace(/^pi-cluster:/, ""), v]));
        for (const h of [raw.loadBalancer, ...raw.webServers, raw.database]) h.hostKey = HOST_KEY;
        const settings = mod.parseSettings({ ...raw, backup: { agePublicKey: AGE_PUBLIC_KEY } });
        assert.deepStrictEqual([...managementProblems(settings), ...httpsProblems(settings), ...backupProblems(settings)], []);
        // As shipped, backups are off: production refuses that.
        assert.match(backupProblems(mod.parseSettings(raw)).join(), /pi-cluster:backup is not set/);
    });

    it("production-management-network: refuses 0.0.0.0/0 and a /4 admin network even with allowPublicManagement", () => {
        const settings = mod.parseSettings({ ...PRODUCTION, managementCidr: "0.0.0.0/0", adminCidrs: ["10.0.0.0/4"], allowPublicManagement: true });
        const found = stackViolations(policies(() => settings).find((p) => p.name === "production-management-network") as StackValidationPolicy, []);
        assert.deepStrictEqual(
            found.map((m) => m.split(":")[1]),
            ["managementCidr is 0.0.0.0/0", "adminCidrs[0] is 10.0.0.0/4"],
        );
        assert.match(found[0], /whatever pi-cluster:allowPublicManagement says/);
    });

    it("production-https-only: refuses httpsRedirect false", () => {
        assert.match(httpsProblems(mod.parseSettings({ ...PRODUCTION, httpsRedirect: false })).join(), /pi-cluster:httpsRedirect is false/);
    });

    it("production-backups-off-the-database: refuses no backups, and a target that is the database Pi", () => {
        const settings = mod.parseSettings(PRODUCTION);
        assert.match(backupProblems({ ...settings, backup: undefined }).join(), /pi-cluster:backup is not set/);
        const onDb = { ...settings, backup: { ...settings.backup!, target: { ...settings.backup!.target, host: settings.database.address } } };
        assert.match(backupProblems(onDb).join(), /backup\.target\.host is 10\.254\.0\.124, the database Pi itself/);
    });

    it("production rules hold for the production stacks only (the pack's config says which)", () => {
        const wide = mod.parseSettings({ ...PRODUCTION, managementCidr: "0.0.0.0/0", allowPublicManagement: true });
        const policy = policies(() => wide).find((p) => p.name === "production-management-network") as StackValidationPolicy;
        assert.deepStrictEqual(stackViolations(policy, [], ["production"]), ["not applicable: only for the stacks production"]);
        assert.strictEqual(stackViolations(policy, [], ["unit"]).length, 1);
        assert.deepStrictEqual(policy.configSchema?.properties.stacks.default, ["production"]);
    });
});
