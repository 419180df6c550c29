// scripts/verify's pure half: which step runs where, read from a state export; what a
// step's `verify` run means; the report and the repair it names.
import * as assert from "assert";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { APPLY } from "../../components/remote";
import { fileText, SCRIPTS_DIR, shellVars } from "../../components/render/shell";
import { knownHostsLine, renderReport, stepOwner, stepResult, StackExport, stepsFromState } from "../../scripts/verify/state";
import { tmpDir } from "./helpers";

const SIG = "4dabf18193072939515e22adb298388d";
const secret = (v: unknown) => ({ [SIG]: "1b47061264138c4ac30d75fd1eb44270", plaintext: JSON.stringify(v) });
const conn = (host: string) => secret({ host, port: 22, user: "pi", privateKey: "KEY", hostKey: "ssh-ed25519 AAAA" });

function exported(): StackExport {
    const step = (name: string, host: string, extra: Record<string, unknown> = {}) => ({
        urn: `urn:pulumi:lab::pi-cluster::pi-cluster:cluster:PiCluster$command:remote:Command::${name}`,
        type: "command:remote:Command",
        inputs: { create: APPLY, connection: conn(host), stdin: `script of ${name}`, ...extra },
    });
    return {
        deployment: {
            resources: [
                { urn: "urn:pulumi:lab::pi-cluster::pulumi:pulumi:Stack::pi-cluster-lab", type: "pulumi:pulumi:Stack", outputs: { nodes: [{ name: "pi-lb", address: "10.0.0.1" }, { name: "pi-web1", address: "10.0.0.2" }] } },
                { urn: "urn:x::pi-web1-wait-ssh", type: "command:remote:Command", inputs: { create: "sudo -n true && uname -m", connection: conn("10.0.0.2") } },
                step("pi-lb-base", "10.0.0.1"),
                step("pi-web1-app", "10.0.0.2", { stdin: secret("DB_PASSWORD=x") }),
                step("pi-web1-admit", "10.0.0.1"),
                { urn: "urn:x::pi-web1-app-upload", type: "command:remote:CopyToRemote", inputs: { connection: conn("10.0.0.2") } },
            ],
        },
    };
}

describe("verify: steps from the state", () => {
    it("takes each step that runs a rendered script, with its Pi, in the state's order, secrets opened", () => {
        const steps = stepsFromState(exported());
        assert.deepStrictEqual(steps.map((s) => `${s.name}@${s.host}`), ["pi-lb-base@pi-lb", "pi-web1-app@pi-web1", "pi-web1-admit@pi-lb"]);
        assert.strictEqual(steps[1].script, "DB_PASSWORD=x");
        assert.strictEqual(steps[0].privateKey, "KEY");
    });

    it("refuses a state without nodes, a step on an unknown address, and an export whose secrets are sealed", () => {
        const e = exported();
        e.deployment.resources![0].outputs = {};
        assert.throws(() => stepsFromState(e), /no `nodes` output/);
        const f = exported();
        (f.deployment.resources![2].inputs as Record<string, unknown>).connection = conn("10.0.0.9");
        assert.throws(() => stepsFromState(f), /pi-lb-base runs on 10.0.0.9, which no node of the stack has/);
        const g = exported();
        (g.deployment.resources![2].inputs as Record<string, unknown>).connection = { [SIG]: "x", ciphertext: "..." };
        assert.throws(() => stepsFromState(g), /--show-secrets/);
    });

    it("pins a host key as known_hosts does, on port 22 and on another", () => {
        assert.strictEqual(knownHostsLine("10.0.0.1", 22, "ssh-ed25519 AAAA \n"), "10.0.0.1 ssh-ed25519 AAAA");
        assert.strictEqual(knownHostsLine("10.0.0.1", 2222, "ssh-ed25519 AAAA"), "[10.0.0.1]:2222 ssh-ed25519 AAAA");
    });
});

describe("verify: what a step's check said", () => {
    it("reads drift lines and their diffs, ssh's host-key refusal, no answer, and a check that broke", () => {
        assert.strictEqual(stepResult("s", 0, "[s] as desired\n").status, "ok");
        const d = stepResult("s", 3, "DRIFT /etc/x: content differs from the rendered file\n    --- rendered\n    -a\n    +b\n[s] 1 difference(s)\n");
        assert.deepStrictEqual([d.status, d.items, d.detail], ["drift", ["/etc/x: content differs from the rendered file"], ["    --- rendered", "    -a", "    +b"]]);
        assert.strictEqual(stepResult("s", 255, "@@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@@\nHost key verification failed.\n").status, "host-key");
        assert.strictEqual(stepResult("s", 255, "ssh: connect to host 10.0.0.1 port 22: Connection timed out\n").status, "unreachable");
        assert.match(stepResult("s", 1, "[s] ERROR: unknown action 'verify': expected apply or delete\n").items[0], /predates verify: run pulumi up once/);
        const broken = stepResult("s", 1, "[s] ERROR: something\n");
        assert.deepStrictEqual([broken.status, broken.items], ["failed", ["the check exited 1", "[s] ERROR: something"]]);
    });

    it("names the repair: recover for drift (a web server's LB steps count as its own), the new key for a wiped Pi", () => {
        assert.strictEqual(stepOwner("pi-web1-admit", ["pi-lb", "pi-web1", "pi-web10"]), "pi-web1");
        assert.strictEqual(stepOwner("pi-web10-admit", ["pi-lb", "pi-web1", "pi-web10"]), "pi-web10");
        const ok = { name: "ok", status: "ok" as const, items: [], detail: [] };
        const report = renderReport(
            [
                { name: "pi-lb", address: "10.0.0.1", steps: [ok, { name: "pi-web1-admit", status: "drift", items: ["/etc/nginx/pi-cluster/upstream/pi-web1.conf: missing"], detail: [] }] },
                { name: "pi-web1", address: "10.0.0.2", steps: [ok] },
                { name: "pi-web2", address: "10.0.0.3", steps: [{ name: "pi-web2-base", status: "host-key", items: ["presents another SSH host key"], detail: [] }] },
                { name: "pi-db", address: "10.0.0.4", steps: [{ name: "pi-db-base", status: "drift", items: ["sshd: x"], detail: ["    -a", "    +  b"] }] },
            ],
            "production",
        );
        assert.match(report, /^pi-lb \(10\.0\.0\.1\): DRIFT in 1 of 2 steps$/m);
        assert.match(report, /^pi-web1 \(10\.0\.0\.2\): as desired \(1 steps\)$/m);
        assert.match(report, /^ {6}\+ {2}b$/m, "a diff line keeps its indentation");
        assert.match(report, /verify: 3 of 4 Pis drifted/);
        assert.match(report, /^ {2}npx pi-cluster recover pi-web1 --stack production /m);
        assert.match(report, /^ {2}npx pi-cluster recover pi-db --stack production /m);
        assert.match(report, /npx pi-cluster recover pi-web2 --host-key '<its key>' --stack production/);
        assert.doesNotMatch(report, /recover pi-lb/);
        assert.match(renderReport([{ name: "pi-lb", address: "a", steps: [ok] }], "lab"), /every Pi of stack lab is as the last pulumi up left it/);
    });
});

describe("verify: the scripts' own checks", () => {
    it("expect_file reports a changed, missing or re-moded file, shows no diff of a secret one, and changes nothing", () => {
        const dir = tmpDir("pi-verify-");
        const me = execFileSync("id", ["-un"], { encoding: "utf8" }).trim();
        const group = execFileSync("id", ["-gn"], { encoding: "utf8" }).trim();
        const site = path.join(dir, "site");
        const env = path.join(dir, "env");
        fs.writeFileSync(site, "listen 80;\nbody 10m;\n", { mode: 0o644 });
        fs.writeFileSync(env, "DB_PASSWORD=handedit\n", { mode: 0o600 });
        // Group-readable (root:prometheus 0640, the Alertmanager config) is still a secret's file.
        const hook = path.join(dir, "hook");
        fs.writeFileSync(hook, "url: https://hooks.invalid/handtoken\n", { mode: 0o640 });
        const script = [
            fs.readFileSync(path.join(SCRIPTS_DIR, "lib.sh"), "utf8"),
            shellVars({ SITE: fileText("listen 80;\nbody 64k;\n"), ENV: fileText("DB_PASSWORD=stack\n"), HOOK: fileText("url: https://hooks.invalid/stacktoken\n") }),
            `expect_file "$SITE" ${site} 0644 ${me}:${group}`,
            `expect_file "$ENV" ${env} 0600 ${me}:${group}`,
            `expect_file "$HOOK" ${hook} 0640 ${me}:${group}`,
            `expect_file "$SITE" ${path.join(dir, "gone")} 0644`,
            `chmod 0640 ${site}; expect_file "listen 80;"$'\\n'"body 10m;"$'\\n' ${site} 0644 ${me}:${group}`,
            'echo "drifts=$DRIFTS"',
        ].join("\n");
        const r = spawnSync("bash", ["-c", script], { encoding: "utf8" });
        assert.strictEqual(r.status, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`^DRIFT ${site}: content differs from the rendered file$`, "m"));
        assert.match(r.stdout, /^ {4}-body 64k;$/m);
        assert.match(r.stdout, /^ {4}\+body 10m;$/m);
        assert.match(r.stdout, new RegExp(`^DRIFT ${env}: content differs from the rendered file$`, "m"));
        assert.match(r.stdout, new RegExp(`^DRIFT ${hook}: content differs from the rendered file$`, "m"));
        assert.doesNotMatch(r.stdout, /handedit|DB_PASSWORD=stack|handtoken|stacktoken/, "a secret file's lines are never shown");
        assert.match(r.stdout, /DRIFT .*gone: missing/);
        assert.match(r.stdout, new RegExp(`DRIFT ${site}: mode and owner are 640 ${me}:${group}, expected 644 ${me}:${group}`));
        assert.match(r.stdout, /^drifts=5$/m);
        assert.strictEqual(fs.readFileSync(site, "utf8"), "listen 80;\nbody 10m;\n");
    });

    it("every step script has a verify action", () => {
        // promote-*.sh and recover-*.sh are the promote and recover commands' actions on a Pi,
        // no step of `pulumi up`.
        const scripts = fs.readdirSync(path.join(__dirname, "..", "..", "assets", "scripts")).filter((f) => f.endsWith(".sh") && f !== "lib.sh" && !/^(promote|recover)-/.test(f));
        for (const f of scripts) assert.match(fs.readFileSync(path.join(__dirname, "..", "..", "assets", "scripts", f), "utf8"), /^verify\(\) \{$/m, f);
    });
});
