// The StackReference consumer (examples/consumer): its pure derivation, then the program
// itself under Pulumi's mocks with a mocked cluster stack. tests/e2e/consumer.ts runs it
// with the real engine against the lab.
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { checkContractVersion, ClusterOutputs, Monitoring, monitoringFrom } from "../../examples/consumer/monitoring";
import { saveMocks } from "./helpers";

const STACK = "organization/pi-cluster/lab";

/** The lab stack's outputs, as `pulumi stack output --json` shows them. */
function labOutputs(): Record<string, unknown> {
    return {
        contractVersion: 1,
        lbUrl: "http://10.254.0.121",
        apiUrl: "http://10.254.0.121/api/",
        dashboardUrl: "http://10.254.0.121/",
        webServers: [
            { name: "pi-web1", address: "10.254.0.122" },
            { name: "pi-web2", address: "10.254.0.123" },
        ],
        database: { host: "10.254.0.124", port: 3306, name: "webapp_db", user: "webapp_user" },
        dbPassword: "Mock0Password0That0Must0Not0Leak",
    };
}

const EXPECTED: Monitoring = {
    targets: [
        { name: "load-balancer", url: "http://10.254.0.121/api/health" },
        { name: "pi-web1", url: "http://10.254.0.121/api/nodes/pi-web1/health" },
        { name: "pi-web2", url: "http://10.254.0.121/api/nodes/pi-web2/health" },
    ],
    databaseEndpoint: "10.254.0.124:3306",
};

describe("consumer: monitoring targets from the cluster's outputs", function () {
    it("derives the LB's /api/health, each node's /api/nodes/<name>/health and host:port of the DB", () => {
        assert.deepStrictEqual(monitoringFrom(STACK, labOutputs()), EXPECTED);
    });

    it("keeps a non-default HTTP port and escapes node names in URLs", () => {
        const o = { ...labOutputs(), lbUrl: "http://10.0.0.1:8080", apiUrl: "http://10.0.0.1:8080/api/", webServers: [{ name: "web a", address: "10.0.0.2" }] };
        assert.deepStrictEqual(monitoringFrom(STACK, o).targets, [
            { name: "load-balancer", url: "http://10.0.0.1:8080/api/health" },
            { name: "web a", url: "http://10.0.0.1:8080/api/nodes/web%20a/health" },
        ]);
    });

    for (const version of [2, 0, "1", undefined]) {
        it(`refuses contractVersion ${JSON.stringify(version)} with a RunError naming the key, the value and version 1`, () => {
            assert.throws(
                () => monitoringFrom(STACK, { ...labOutputs(), contractVersion: version }),
                (e: unknown) => {
                    assert.ok(e instanceof pulumi.RunError, `${e}`);
                    assert.strictEqual(
                        e.message.split(". ")[0],
                        `the cluster stack "${STACK}" has contractVersion ${JSON.stringify(version) ?? "undefined"}, but this program supports contractVersion 1 only`,
                    );
                    return true;
                },
            );
        });
    }

    it("checks the version before any other output, so a reshaped stack fails on its version", () => {
        const v2: ClusterOutputs = { contractVersion: 2, endpoints: { lb: "x" } } as ClusterOutputs;
        assert.throws(() => monitoringFrom(STACK, v2), /has contractVersion 2, but this program supports contractVersion 1 only/);
    });

    it("lists every supported version in the refusal", () => {
        assert.throws(() => checkContractVersion(STACK, 3, [1, 2]), /supports contractVersion 1 or 2 only/);
        assert.strictEqual(checkContractVersion(STACK, 2, [1, 2]), 2);
    });

    const bad: [keyof ClusterOutputs, unknown, RegExp][] = [
        ["lbUrl", "ftp://10.254.0.121", /output lbUrl: expected an http\(s\) URL, got "ftp:\/\/10\.254\.0\.121"/],
        ["apiUrl", "http://10.254.0.121/api", /output apiUrl: expected an http\(s\) URL ending in \/, got "http:\/\/10\.254\.0\.121\/api"/],
        ["webServers", [], /output webServers: expected a non-empty list of \{name, address\}, got \[\]/],
        ["database", { host: "10.254.0.124", port: "3306" }, /output database: expected \{host, port, name, user\} with a numeric port/],
    ];
    for (const [key, value, message] of bad) {
        it(`names the output when ${key} has the wrong shape`, () => {
            assert.throws(() => monitoringFrom(STACK, { ...labOutputs(), [key]: value }), message);
        });
    }
});

describe("consumer program under Pulumi's mocks, with a mocked cluster stack", function () {
    let clusterOutputs: Record<string, unknown> = labOutputs();
    const refs: string[] = [];
    let restoreMocks: () => void;

    before(() => {
        restoreMocks = saveMocks();
        pulumi.runtime.setMocks(
            {
                newResource(args: pulumi.runtime.MockResourceArgs) {
                    if (args.type !== "pulumi:pulumi:StackReference") return { id: `${args.name}-id`, state: args.inputs };
                    refs.push(args.inputs.name);
                    return { id: args.inputs.name, state: { ...args.inputs, outputs: clusterOutputs, secretOutputNames: ["dbPassword"] } };
                },
                call: (args: pulumi.runtime.MockCallArgs) => args.inputs,
            },
            "pi-cluster-consumer",
            "consumer-lab",
            false,
        );
    });

    after(() => restoreMocks());

    /** Runs the program (an async function) with this config and the mocked cluster outputs. */
    async function runProgram(config: Record<string, string>, outputs: Record<string, unknown>): Promise<Monitoring> {
        clusterOutputs = outputs;
        pulumi.runtime.setAllConfig(Object.fromEntries(Object.entries(config).map(([k, v]) => [`pi-cluster-consumer:${k}`, v])));
        // `export =` of a function: with esModuleInterop the import wraps it as `default`.
        const mod = (await import("../../examples/consumer")) as unknown as { default: () => Promise<Monitoring> };
        return mod.default();
    }

    it("reads the stack named by clusterStack and exports the targets and the DB endpoint", async () => {
        refs.length = 0;
        const out = await runProgram({ clusterStack: STACK }, labOutputs());
        assert.deepStrictEqual(refs, [STACK]);
        assert.deepStrictEqual(out, EXPECTED);
        assert.doesNotMatch(JSON.stringify(out), /Mock0Password/);
    });

    it("fails with the RunError when the cluster stack bumps contractVersion", async () => {
        await assert.rejects(
            runProgram({ clusterStack: STACK }, { ...labOutputs(), contractVersion: 2 }),
            (e: unknown) => e instanceof pulumi.RunError && /has contractVersion 2, but this program supports contractVersion 1 only/.test(e.message),
        );
    });

    it("fails the same way when the program is told it was written for another version", async () => {
        await assert.rejects(
            runProgram({ clusterStack: STACK, supportedContractVersion: "99" }, labOutputs()),
            /has contractVersion 1, but this program supports contractVersion 99 only/,
        );
    });
});
