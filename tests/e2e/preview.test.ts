// Bad config through the real engine: `pulumi preview` (the pinned CLI and language host,
// a throwaway file backend) must fail with a message that names the key, before any
// resource exists, so no host is ever contacted. Needs no lab and no provider plugin.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { rawConfig, tmpDir } from "../unit/helpers";
import { REPO, run } from "./lib";

describe("pulumi preview rejects bad config with the real engine", function () {
    const dir = tmpDir("pi-preview-");
    const stack = `preview-${process.pid}`;
    const env = {
        ...process.env,
        PULUMI_BACKEND_URL: `file://${dir}/state`,
        PULUMI_CONFIG_PASSPHRASE: "",
        PULUMI_SKIP_UPDATE_CHECK: "true",
        NO_COLOR: "1",
    };

    function preview(config: Record<string, unknown>): { status: number | null; out: string } {
        const file = path.join(dir, "config.yaml");
        // JSON is YAML: the stack file Pulumi reads.
        const entries = Object.entries(config).map(([k, v]) => [`pi-cluster:${k}`, v]);
        fs.writeFileSync(file, JSON.stringify({ config: Object.fromEntries(entries) }));
        const r = run("pulumi", ["preview", "--stack", stack, "--config-file", file, "--non-interactive", "--color", "never"], { env, allowFail: true });
        return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
    }

    before(() => {
        fs.mkdirSync(path.join(dir, "state"));
        run("pulumi", ["stack", "init", stack, "--non-interactive"], { env, cwd: REPO });
    });

    after(() => {
        run("pulumi", ["stack", "rm", "--yes", "--force", stack, "--non-interactive"], { env, allowFail: true });
        fs.rmSync(dir, { recursive: true, force: true });
    });

    it("names a malformed address and the value, with no stack trace and no resource", () => {
        const c = rawConfig(2);
        (c.webServers as any[])[1].address = "10.254.0.300";
        const r = preview(c);
        assert.notStrictEqual(r.status, 0);
        assert.match(r.out, /pi-cluster:webServers\[1\]\.address: expected an IPv4 address such as 192\.168\.254\.122, got "10\.254\.0\.300"/);
        assert.doesNotMatch(r.out, /at parseConfig/);
        assert.doesNotMatch(r.out, /command:remote/);
    });

    it("names an empty web server list", () => {
        const r = preview({ ...rawConfig(2), webServers: [] });
        assert.notStrictEqual(r.status, 0);
        assert.match(r.out, /pi-cluster:webServers: expected at least one web server/);
    });

    it("names a missing required key (Pulumi's own schema check)", () => {
        const c = rawConfig(2);
        delete c.database;
        const r = preview(c);
        assert.notStrictEqual(r.status, 0);
        assert.match(r.out, /missing configuration value.*'database'/);
    });

    it("names a port out of range (Pulumi's schema, then ours)", () => {
        const r = preview({ ...rawConfig(2), appPort: 70000 });
        assert.notStrictEqual(r.status, 0);
        assert.match(r.out, /pi-cluster:appPort: expected a port between 1 and 65535, got 70000/);
    });
});
