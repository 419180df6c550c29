// What a build step on the deploying machine can see: under `pulumi up` the process
// environment holds the decrypted stack config, and no build may inherit it. And the builds
// of what is missing, side by side.
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { buildArtifact, buildArtifacts, buildEnv } from "../../components/artifacts";
import { tmpDir } from "./helpers";

const FAKE_SECRET = "Fake0Secret0A-Build-Must0Never0See";

describe("build environment", () => {
    it("keeps PATH, HOME, npm's registry, cache and proxy settings and the machine's proxy", () => {
        const kept = {
            PATH: "/usr/bin:/bin",
            HOME: "/home/deploy",
            npm_config_registry: "http://127.0.0.1:4873/",
            "npm_config_@acme:registry": "http://127.0.0.1:4874/",
            npm_config_cache: "/var/cache/npm",
            NPM_CONFIG_HTTPS_PROXY: "http://127.0.0.1:3128",
            "npm_config_strict-ssl": "true",
            npm_config_cafile: "/etc/ssl/certs/ca-certificates.crt",
            HTTP_PROXY: "http://127.0.0.1:3128",
            https_proxy: "http://127.0.0.1:3128",
            NO_PROXY: "localhost",
        };
        assert.deepStrictEqual(buildEnv(kept), { ...kept, NG_CLI_ANALYTICS: "false" });
    });

    it("drops PULUMI_*, npm credentials and anything else", () => {
        const env = buildEnv({
            PATH: "/bin",
            PULUMI_CONFIG: JSON.stringify({ "pi-cluster:sshPrivateKey": FAKE_SECRET }),
            PULUMI_CONFIG_SECRET_KEYS: '["pi-cluster:sshPrivateKey"]',
            PULUMI_CONFIG_PASSPHRASE: FAKE_SECRET,
            PULUMI_ACCESS_TOKEN: FAKE_SECRET,
            PULUMI_MONITOR: "127.0.0.1:1234",
            "npm_config_//127.0.0.1:4873/:_authToken": FAKE_SECRET,
            npm_config__auth: FAKE_SECRET,
            NODE_OPTIONS: "--require /tmp/hook.js",
            AWS_SECRET_ACCESS_KEY: FAKE_SECRET,
            NG_CLI_ANALYTICS: "true",
        });
        assert.deepStrictEqual(env, { PATH: "/bin", NG_CLI_ANALYTICS: "false" });
    });

    it("runs a build step that cannot see PULUMI_CONFIG or a secret in the deploying process", function () {
        this.timeout(30000);
        const src = tmpDir("pi-build-src-");
        fs.writeFileSync(path.join(src, "README"), "a source with one file\n");
        const saved = { ...process.env };
        process.env.PULUMI_CONFIG = JSON.stringify({ "pi-cluster:sshPrivateKey": FAKE_SECRET });
        process.env.PULUMI_CONFIG_SECRET_KEYS = '["pi-cluster:sshPrivateKey"]';
        process.env.PI_CLUSTER_FAKE_SECRET = FAKE_SECRET;
        process.env.npm_config_registry = "http://127.0.0.1:4873/";
        let artifact;
        try {
            artifact = buildArtifact(
                { kind: "envprobe", source: src, build: ["env > env.txt"], pack: { paths: ["env.txt"] } },
                tmpDir("pi-build-cache-"),
            );
        } finally {
            for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
            Object.assign(process.env, saved);
        }
        const seen = execFileSync("tar", ["-xzOf", artifact.path, "env.txt"], { encoding: "utf8" });
        // The probe must really have run with an environment, or the checks below prove nothing.
        assert.match(seen, /^PATH=/m);
        assert.match(seen, /^NG_CLI_ANALYTICS=false$/m);
        assert.match(seen, /^npm_config_registry=http:\/\/127\.0\.0\.1:4873\/$/m);
        assert.doesNotMatch(seen, /PULUMI/);
        assert.ok(!seen.includes(FAKE_SECRET), "the build saw the secret");
    });

    it("builds what is missing side by side, and names each build that failed", function () {
        this.timeout(30000);
        const meet = tmpDir("pi-build-meet-");
        // Each build waits (5 s at most) until the other has started: run one after the other, they never meet.
        const spec = (kind: string, other: string, fails = false) => {
            const src = tmpDir(`pi-build-${kind}-`);
            fs.writeFileSync(path.join(src, "README"), `${kind}\n`);
            const wait = `touch ${meet}/${kind}; for i in $(seq 100); do [ -e ${meet}/${other} ] && break; sleep 0.05; done; [ -e ${meet}/${other} ] && echo met > out.txt`;
            return { kind, source: src, build: [wait, fails ? "echo broken; exit 3" : "true"], pack: { paths: ["out.txt"] } };
        };
        const cache = tmpDir("pi-build-cache-");
        const [a, b] = buildArtifacts([spec("a", "b"), spec("b", "a")], cache);
        for (const x of [a, b]) assert.strictEqual(execFileSync("tar", ["-xzOf", x.path, "out.txt"], { encoding: "utf8" }), "met\n");
        // Built: the same tarballs again, nothing run.
        assert.deepStrictEqual(buildArtifacts([spec("a", "b"), spec("b", "a")], cache), [a, b]);
        for (const f of fs.readdirSync(meet)) fs.rmSync(path.join(meet, f));
        assert.throws(() => buildArtifacts([spec("c", "d", true), spec("d", "c")], cache), /^Error: the build of c failed \(its output, each line marked with its kind, is above\)$/);
        assert.deepStrictEqual(fs.readdirSync(cache).filter((f) => f.startsWith("c-")), [], "a failed build left a tarball");
    });
});
