// scripts/verify's SSH half against a real sshd on this machine: one connection per Pi, the
// steps as sessions on it, a few at once, reported in order; a Pi that does not answer and
// one that shows another host key.
import * as assert from "assert";
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import { verifyHost } from "../../scripts/verify/ssh";
import { VerifyStep } from "../../scripts/verify/state";
import { tmpDir } from "./helpers";

const SSHD = "/usr/sbin/sshd";

/** A port nothing listens on now. */
function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.on("error", reject);
        s.listen(0, "127.0.0.1", () => {
            const { port } = s.address() as net.AddressInfo;
            s.close(() => resolve(port));
        });
    });
}

describe("verify over SSH: one connection per Pi (a real sshd)", function () {
    let dir = "";
    let port = 0;
    let sshd: ChildProcess | undefined;
    let log = "";
    let hostKey = "";
    let privateKey = "";

    before(async function () {
        if (process.getuid?.() !== 0 || !fs.existsSync(SSHD)) this.skip();
        dir = tmpDir("verify-ssh-");
        execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "host")]);
        execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "user")]);
        hostKey = fs.readFileSync(path.join(dir, "host.pub"), "utf8").split(" ").slice(0, 2).join(" ");
        privateKey = fs.readFileSync(path.join(dir, "user"), "utf8");
        fs.copyFileSync(path.join(dir, "user.pub"), path.join(dir, "authorized_keys"));
        port = await freePort();
        const config = [
            `Port ${port}`,
            "ListenAddress 127.0.0.1",
            `HostKey ${path.join(dir, "host")}`,
            `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
            `PidFile ${path.join(dir, "sshd.pid")}`,
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "LogLevel VERBOSE",
            // Bash run by sshd reads ~/.bashrc when SHLVL says it is the first shell; one it
            // takes for a nested shell does not. Without this, whatever the machine's root
            // ~/.bashrc runs (pyenv init here, 0.4 s) is paid by every session of the test.
            "SetEnv SHLVL=1",
        ];
        fs.writeFileSync(path.join(dir, "sshd_config"), `${config.join("\n")}\n`);
        fs.mkdirSync("/run/sshd", { recursive: true });
        sshd = spawn(SSHD, ["-D", "-e", "-f", path.join(dir, "sshd_config")], { stdio: ["ignore", "ignore", "pipe"] });
        sshd.stderr!.on("data", (d) => (log += d));
        for (let i = 0; i < 100 && !/Server listening/.test(log); i++) await new Promise((r) => setTimeout(r, 20));
        assert.match(log, /Server listening/, log);
    });

    after(() => {
        sshd?.kill("SIGTERM");
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    /**
     * A step whose script records how many steps run at once and then says `says`. With
     * `waitFor`, it first waits (up to 5 s) until that step runs too: run one after another,
     * the two never meet.
     */
    function step(name: string, says: string, over: Partial<VerifyStep> = {}, waitFor?: string): VerifyStep {
        const running = path.join(dir, "running");
        const script = [
            "set -euo pipefail",
            '[[ "$1" == verify ]] || exit 9',
            `mkdir -p ${running}; touch ${running}/${name}`,
            ...(waitFor ? [`for ((i = 0; i < 100; i++)); do [[ -e ${running}/${waitFor} ]] && break; sleep 0.05; done`] : []),
            `ls ${running} | wc -l >> ${path.join(dir, "concurrent")}`,
            "sleep 0.05",
            `rm -f ${running}/${name}`,
            says,
        ].join("\n");
        return { name, host: "pi-test", address: "127.0.0.1", port, user: "root", privateKey, hostKey, script, ...over };
    }

    it("checks a Pi's steps over one connection, a few sessions at once, and reports them in order", async () => {
        const work = tmpDir("verify-ssh-work-");
        const accepted = () => (log.match(/Accepted publickey for root/g) ?? []).length;
        const before = accepted();
        const steps = [
            step("a", "exit 0", {}, "b"),
            step("b", "exit 0", {}, "a"),
            ...["c", "d"].map((n) => step(n, "exit 0")),
            step("f", 'echo "DRIFT file /etc/x: content differs"; exit 3'),
            step("g", "exit 0"),
        ];
        const r = await verifyHost(steps, work, { command: "bash -s -- verify", sessions: 3 });
        assert.deepStrictEqual(r.steps.map((s) => `${s.name} ${s.status}`), ["a ok", "b ok", "c ok", "d ok", "f drift", "g ok"]);
        assert.deepStrictEqual(r.steps[4].items, ["file /etc/x: content differs"]);
        assert.strictEqual(accepted() - before, 1, `one login for 6 steps:\n${log}`);
        const counts = fs.readFileSync(path.join(dir, "concurrent"), "utf8").trim().split("\n").map(Number);
        assert.ok(Math.max(...counts) > 1, `the steps ran one after another: ${counts}`);
        assert.ok(Math.max(...counts) <= 3, `more than 3 sessions at once: ${counts}`);
        // The connection is closed again, and nothing is left in the caller's directory but its files.
        assert.deepStrictEqual(fs.readdirSync(work).sort(), ["pi-test.key", "pi-test.known_hosts"]);
        assert.strictEqual(fs.statSync(path.join(work, "pi-test.key")).mode & 0o777, 0o600);
    });

    it("names a Pi that does not answer once, not per step", async () => {
        const closed = await freePort();
        const r = await verifyHost([step("a", "exit 0", { port: closed }), step("b", "exit 0", { port: closed })], tmpDir("verify-ssh-work-"), { command: "bash -s -- verify" });
        assert.deepStrictEqual(r.steps.map((s) => `${s.name} ${s.status}`), ["a unreachable"]);
        assert.match(r.steps[0].items[0], /does not answer SSH: .*refused/);
    });

    it("names a Pi that shows another host key, and runs nothing on it", async () => {
        const other = tmpDir("verify-ssh-other-");
        execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(other, "k")]);
        const wrong = fs.readFileSync(path.join(other, "k.pub"), "utf8").split(" ").slice(0, 2).join(" ");
        const r = await verifyHost([step("a", "exit 0", { hostKey: wrong })], tmpDir("verify-ssh-work-"), { command: "bash -s -- verify" });
        assert.deepStrictEqual(r.steps.map((s) => `${s.name} ${s.status}`), ["a host-key"]);
    });
});
