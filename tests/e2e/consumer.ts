// The StackReference consumer (examples/consumer) against the lab's cluster stack, with the
// real engine, in the same file backend: up, its outputs checked against the cluster's,
// the contract-version refusal proven by a real run, then destroy and stack rm. The engine
// e2e calls it once the cluster is up; it needs no Pi itself (a StackReference reads state).
import * as assert from "assert";
import { REPO, run } from "./lib";

const CONSUMER_DIR = "examples/consumer";
const STACK = "consumer-lab";

interface ClusterOutputs {
    contractVersion: number;
    lbUrl: string;
    apiUrl: string;
    webServers: { name: string; address: string }[];
    database: { host: string; port: number };
}

/**
 * Runs the consumer against `clusterStack` and checks what it derives. `clusterStack` is
 * fully qualified, as a StackReference needs it: `organization/pi-cluster/lab` on a file
 * backend. Throws on any failed check; always removes the consumer's stack.
 */
export async function consumerAgainstLab(opts: { backendUrl: string; passphrase: string; clusterStack: string }): Promise<{ targets: unknown; seconds: number }> {
    assert.match(opts.clusterStack, /^[^/]+\/pi-cluster\/[^/]+$/, "clusterStack must be ORG/pi-cluster/STACK (a file backend's ORG is organization)");
    const env: NodeJS.ProcessEnv = {
        ...process.env,
        PULUMI_BACKEND_URL: opts.backendUrl,
        PULUMI_CONFIG_PASSPHRASE: opts.passphrase,
        PULUMI_SKIP_UPDATE_CHECK: "true",
        NO_COLOR: "1",
    };
    delete env.PULUMI_CONFIG_PASSPHRASE_FILE;
    const pulumi = (args: string[], allowFail = false) => run("pulumi", [...args, "--non-interactive"], { env, cwd: REPO, allowFail });
    const consumer = (args: string[], allowFail = false) => pulumi([...args, "--cwd", CONSUMER_DIR, "--stack", STACK], allowFail);

    const cluster = JSON.parse(pulumi(["stack", "output", "--json", "--stack", opts.clusterStack]).stdout) as ClusterOutputs;

    // A stack that a killed run left behind would not start from nothing.
    pulumi(["stack", "rm", "--yes", "--force", STACK, "--cwd", CONSUMER_DIR], true);
    pulumi(["stack", "init", STACK, "--cwd", CONSUMER_DIR]);
    let passed = false;
    try {
        consumer(["config", "set", "clusterStack", opts.clusterStack]);
        const started = Date.now();
        consumer(["up", "--yes", "--skip-preview"]);
        const seconds = (Date.now() - started) / 1000;

        const out = JSON.parse(consumer(["stack", "output", "--json"]).stdout) as { targets: unknown; databaseEndpoint: unknown };
        assert.deepStrictEqual(out.targets, [
            { name: "load-balancer", url: `${cluster.lbUrl}/api/health` },
            ...cluster.webServers.map((w) => ({ name: w.name, url: `${cluster.apiUrl}nodes/${w.name}/health` })),
        ]);
        assert.strictEqual(out.databaseEndpoint, `${cluster.database.host}:${cluster.database.port}`);

        // A program written for another contract version must refuse this stack, by name.
        consumer(["config", "set", "supportedContractVersion", "99"]);
        const refused = consumer(["up", "--yes", "--skip-preview"], true);
        assert.notStrictEqual(refused.status, 0, "the consumer accepted a contract version it does not support");
        assert.match(
            `${refused.stdout}\n${refused.stderr}`,
            new RegExp(`has contractVersion ${cluster.contractVersion}, but this program supports contractVersion 99 only`),
        );
        consumer(["config", "rm", "supportedContractVersion"]);
        passed = true;
        return { targets: out.targets, seconds };
    } finally {
        const destroyed = consumer(["destroy", "--yes", "--skip-preview"], true);
        const removed = pulumi(["stack", "rm", "--yes", STACK, "--cwd", CONSUMER_DIR], true);
        // After a failed check, that failure is the error to see; otherwise a leftover stack is one.
        if (passed && (destroyed.status !== 0 || removed.status !== 0)) {
            throw new Error(`could not remove the stack ${STACK}:\n${destroyed.stderr}\n${removed.stderr}`);
        }
    }
}
