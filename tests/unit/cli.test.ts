// The operator CLI (cli/): its arguments and exit codes, the lab's defaults, and the
// progress it shows from engine events. The commands against a real stack run in the
// cluster suite (tests/e2e/cluster.test.ts).
import * as assert from "assert";
import * as path from "path";
import { EngineEvent } from "@pulumi/pulumi/automation";
import { main } from "../../cli/main";
import { ConvergeProgress } from "../../cli/progress";
import { LAB_PASSPHRASE, REPO, stackEnv } from "../../cli/stack";

/** Runs the CLI in this process with stderr and stdout captured. */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
    const saved = { out: process.stdout.write, err: process.stderr.write, env: { ...process.env } };
    let out = "";
    let err = "";
    process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
    process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
    Object.assign(process.env, env);
    try {
        return { code: await main(args), out, err };
    } finally {
        process.stdout.write = saved.out;
        process.stderr.write = saved.err;
        process.env = saved.env;
    }
}

const ev = (kind: "pre" | "out" | "failed", name: string, op = "create", type = "command:remote:Command"): EngineEvent =>
    ({
        sequence: 0,
        timestamp: 0,
        [kind === "pre" ? "resourcePreEvent" : kind === "out" ? "resOutputsEvent" : "resOpFailedEvent"]: { metadata: { op, urn: `urn:pulumi:lab::pi-cluster::x$${type}::${name}`, type } },
    }) as unknown as EngineEvent;

describe("the pi-cluster CLI", () => {
    it("prints its help with exit 0, and refuses an unknown command or option with exit 2", async () => {
        const help = await cli(["--help"]);
        assert.strictEqual(help.code, 0);
        assert.match(help.out, /deploy.*\n[\s\S]*preview[\s\S]*verify[\s\S]*status/);
        assert.strictEqual((await cli(["frob"])).code, 2);
        const bad = await cli(["status", "--nope"]);
        assert.strictEqual(bad.code, 2);
        assert.match(bad.err, /unknown option '--nope'/);
    });

    it("refuses a stack name that is not one before touching anything, naming --stack", async () => {
        const r = await cli(["verify", "--stack", "a b"]);
        assert.strictEqual(r.code, 2);
        assert.match(r.err, /--stack: expected a stack name .* got 'a b'/);
    });

    it("says what to set when a stack has no backend, rather than asking to log in", async () => {
        const r = await cli(["status", "--stack", "production"], { PULUMI_BACKEND_URL: "", PULUMI_HOME: path.join(REPO, "no-such-dir") });
        assert.strictEqual(r.code, 2);
        assert.match(r.err, /no backend; set PULUMI_BACKEND_URL .* or run pulumi login/);
    });

    it("refuses promote's bad --catch-up-seconds and a second replica before opening the stack", async () => {
        for (const bad of ["x", "-1", "1.5"]) {
            const r = await cli(["promote", "--catch-up-seconds", bad, "--stack", "no-such-stack"]);
            assert.strictEqual(r.code, 2, r.err);
            assert.match(r.err, new RegExp(`--catch-up-seconds: expected whole seconds, got '${bad.replace(".", "\\.")}'`));
        }
        const two = await cli(["promote", "pi-db-read1", "pi-db-read2"]);
        assert.strictEqual(two.code, 2);
        assert.match(two.err, /too many arguments/);
        const help = await cli(["promote", "--help"]);
        assert.match(help.out, /--allow-behind[\s\S]*--allow-unreachable-replicas[\s\S]*--allow-unfenced[\s\S]*--catch-up-seconds <n>/);
    });

    it("refuses recover's bad arguments before opening the stack, and lists its options", async () => {
        for (const [args, re] of [
            [[], /which host\?/],
            [["pi-web1", "--all"], /host names or --all, not both/],
            [["pi-web1", "--host-key", "nope"], /--host-key: expected a public key/],
            [["--all", "--db-data", "/no/such.tgz"], /--db-data: no such file/],
        ] as const) {
            const r = await cli(["recover", ...args, "--stack", "no-such-stack", "--json"]);
            assert.strictEqual(r.code, 2, r.err);
            assert.match(r.err, re);
            assert.strictEqual(JSON.parse(r.out).ok, false);
        }
        const help = await cli(["recover", "--help"]);
        assert.match(help.out, /names +the Pis to recover[\s\S]*--event-log <file>[\s\S]*--all[\s\S]*--host-key <key>[\s\S]*--db-data <file>/);
    });

    it("gives the lab stack the lab's backend and passphrase unless they are set, and any stack no update checks", () => {
        const lab = stackEnv("lab", {});
        assert.strictEqual(lab.PULUMI_BACKEND_URL, `file://${path.join(REPO, ".state", "backend")}`);
        assert.strictEqual(lab.PULUMI_CONFIG_PASSPHRASE, LAB_PASSPHRASE);
        assert.strictEqual(lab.PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION, "true");
        const own = stackEnv("lab", { PULUMI_BACKEND_URL: "file:///srv/state", PULUMI_CONFIG_PASSPHRASE_FILE: "/root/pass" });
        assert.strictEqual(own.PULUMI_BACKEND_URL, "file:///srv/state");
        assert.strictEqual(own.PULUMI_CONFIG_PASSPHRASE, undefined);
        const prod = stackEnv("production", {});
        assert.strictEqual(prod.PULUMI_BACKEND_URL, undefined);
        assert.strictEqual(prod.PULUMI_CONFIG_PASSPHRASE, undefined);
    });
});

describe("deploy's progress", () => {
    it("shows per Pi the step running now and for how long, and a line per finished step", () => {
        let now = 1000;
        const p = new ConvergeProgress(["pi-db", "pi-db-read1", "pi-web1"], () => now);
        assert.strictEqual(p.onEvent(ev("pre", "pi-db-base")), undefined);
        p.onEvent(ev("pre", "pi-db-read1-base"));
        p.onEvent(ev("pre", "pi-cluster", "create", "pi-cluster:cluster:PiCluster"));
        p.onEvent(ev("pre", "pi-web1-base", "same"));
        now += 12_400;
        assert.deepStrictEqual(p.lines(), ["pi-db        0 done     base create 12 s", "pi-db-read1  0 done     base create 12 s"]);
        assert.strictEqual(p.onEvent(ev("out", "pi-db-base")), "  12.4 s  pi-db-base create done (12.4 s)");
        p.onEvent(ev("pre", "pi-db-tls", "update"));
        p.onEvent(ev("pre", "pi-cluster-db-password", "create", "random:index/randomPassword:RandomPassword"));
        now += 2000;
        assert.strictEqual(p.onEvent(ev("failed", "pi-db-tls", "update")), "  14.4 s  pi-db-tls update FAILED (2.0 s)");
        assert.deepStrictEqual(p.lines(), [
            "cluster      0 done     pi-cluster-db-password create 2 s",
            "pi-db        1 done, 1 failed  -",
            "pi-db-read1  0 done     base create 14 s",
        ]);
        assert.deepStrictEqual(p.summary(), { "pi-db": { done: 1, failed: 1 }, "pi-db-read1": { done: 0, failed: 0 }, cluster: { done: 0, failed: 0 } });
    });
});
