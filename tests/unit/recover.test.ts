// `pi-cluster recover` (cli/recover.ts): which Pis it acts on and the usage errors it gives
// before anything runs, the key check, the reapply bump, and the database Pi's data step
// (assets/scripts/recover-db-data.sh) run for real on this machine, with systemctl and pgrep faked.
// The whole command against the lab runs in the cluster suite (node replacement, drift
// repair, full recovery).
import * as assert from "assert";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parseConfig } from "../../components/config";
import { checkRecoverArgs, configHosts, DB_DATA_ARCHIVE, nextReapply, presentedKey, recoverTargets, renderDbDataStep, RecoverOptions } from "../../cli/recover";
import { CliError } from "../../cli/stack";
import { HOST_KEY, rawConfig, replicasConfig, tmpDir } from "./helpers";

const opts = (o: Partial<RecoverOptions>): RecoverOptions => ({ names: [], all: false, ...o });

/** The CliError `f` throws: its exit code and message. */
function usage(f: () => unknown): { code: number; message: string } {
    try {
        f();
    } catch (e) {
        assert.ok(e instanceof CliError, String(e));
        return { code: e.code, message: e.message };
    }
    assert.fail("no error");
}

describe("pi-cluster recover", () => {
    const hosts = configHosts(parseConfig({ ...rawConfig(2), dbReplicas: replicasConfig(1) }));

    it("knows every Pi of the config and where it sits there, in the config's order", () => {
        assert.deepStrictEqual(
            hosts.map((h) => `${h.name} ${h.path} ${h.address}:${h.sshPort}`),
            ["pi-lb loadBalancer 10.254.0.121:22", "pi-web1 webServers[0] 10.254.0.122:22", "pi-web2 webServers[1] 10.254.0.123:22", "pi-db database 10.254.0.124:22", "pi-db-read1 dbReplicas[0] 10.254.0.127:22"],
        );
        assert.strictEqual(hosts[0].hostKey, HOST_KEY);
    });

    it("acts on the Pis named, once each, or on all with --all", () => {
        assert.deepStrictEqual(recoverTargets(hosts, opts({ names: ["pi-web2", "pi-lb", "pi-web2"] }), "lab").map((h) => h.name), ["pi-web2", "pi-lb"]);
        assert.strictEqual(recoverTargets(hosts, opts({ all: true }), "lab").length, 5);
    });

    it("refuses bad arguments with exit 2, naming what is wrong, before the stack is opened", () => {
        const cases: [Partial<RecoverOptions>, RegExp][] = [
            [{}, /which host\? usage: pi-cluster recover NAME/],
            [{ names: ["pi-web1"], all: true }, /host names or --all, not both/],
            [{ names: ["pi-web1", "pi-web2"], hostKey: HOST_KEY }, /--host-key goes with exactly one host name/],
            [{ names: ["pi-web1"], hostKey: "AAAA" }, /--host-key: expected a public key such as 'ssh-ed25519 AAAA\.\.\.' .*got 'AAAA'/],
            // Well formed, but the Pis' sshd offers no RSA host key: pinned, the up would fail.
            [{ names: ["pi-web1"], hostKey: "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ" }, /--host-key: expected the Pi's ed25519 or ECDSA host key.*got a ssh-rsa key/],
            [{ all: true, dbData: "/no/such/data.tgz" }, /--db-data: no such file: \/no\/such\/data\.tgz/],
        ];
        for (const [o, re] of cases) {
            const e = usage(() => checkRecoverArgs(opts(o)));
            assert.strictEqual(e.code, 2, e.message);
            assert.match(e.message, re);
        }
        assert.doesNotThrow(() => checkRecoverArgs(opts({ names: ["pi-web1"], hostKey: `${HOST_KEY}` })));
    });

    it("refuses a host the stack does not have, naming the ones it has, and --db-data without the database", () => {
        const unknown = usage(() => recoverTargets(hosts, opts({ names: ["pi-web1", "pi-web9"] }), "production"));
        assert.strictEqual(unknown.code, 2);
        assert.match(unknown.message, /no host named 'pi-web9' in stack production; its hosts: pi-lb, pi-web1, pi-web2, pi-db, pi-db-read1/);
        const data = path.join(tmpDir("pi-recover-args-"), "data.tgz");
        fs.writeFileSync(data, "");
        const noDb = usage(() => recoverTargets(hosts, opts({ names: ["pi-web1"], dbData: data }), "lab"));
        assert.match(noDb.message, /--db-data goes with the database Pi \(pi-db\) among the hosts/);
        assert.strictEqual(recoverTargets(hosts, opts({ all: true, dbData: data }), "lab").length, 5);
    });

    it("reads the key ssh-keyscan shows for the pinned key's type, and bumps reapply from what the config holds", () => {
        const scan = "# 10.254.0.122:22 SSH-2.0-OpenSSH_10.0\n10.254.0.122 ssh-rsa AAAArsa\n10.254.0.122 ssh-ed25519 AAAAed comment\n";
        assert.strictEqual(presentedKey(scan, "ssh-ed25519"), "ssh-ed25519 AAAAed");
        assert.strictEqual(presentedKey(scan, "ecdsa-sha2-nistp256"), undefined);
        assert.strictEqual(presentedKey("", "ssh-ed25519"), undefined);
        assert.deepStrictEqual([undefined, 0, "2", 4, "x", -3].map(nextReapply), [1, 1, 3, 5, 1, 1]);
    });

    describe("the database Pi's data step, run here with systemctl and pgrep faked", function () {
        let root = "";
        let env: NodeJS.ProcessEnv = {};
        const datadir = () => path.join(root, "mysql");
        const state = () => path.join(root, "backup-state");
        const calls = () => fs.readFileSync(path.join(root, "systemctl.log"), "utf8").trim().split("\n");

        /** The rendered step with this machine's paths in place of the Pi's, run as it runs there. */
        function runStep(archive: string) {
            const script = renderDbDataStep("pi-db")
                .replace(`ARCHIVE='${DB_DATA_ARCHIVE}'`, `ARCHIVE='${archive}'`)
                .replace("DATADIR='/var/lib/mysql'", `DATADIR='${datadir()}'`)
                .replace("DB_OWNER='mysql:mysql'", "DB_OWNER='root:root'")
                .replace("BACKUP_STATE='/var/lib/pi-cluster-backup'", `BACKUP_STATE='${state()}'`);
            return spawnSync("bash", ["-s", "--", "restore"], { input: script, env, encoding: "utf8" });
        }

        /** A tar.gz of a data directory holding mysql/ and one file saying `says`. */
        function archive(says: string, withMysql = true): string {
            const src = tmpDir("pi-recover-src-");
            if (withMysql) fs.mkdirSync(path.join(src, "mysql"));
            fs.writeFileSync(path.join(src, "ibdata1"), says);
            const file = path.join(root, `data-${says}.tgz`);
            execFileSync("tar", ["-C", src, "-czf", file, "."]);
            return file;
        }

        beforeEach(() => {
            root = tmpDir("pi-recover-step-");
            const bin = path.join(root, "bin");
            fs.mkdirSync(bin);
            fs.writeFileSync(path.join(bin, "systemctl"), `#!/bin/sh\necho "$*" >> ${root}/systemctl.log\n`, { mode: 0o755 });
            // No MariaDB server after the stop, unless the case writes a pid to still-running.
            fs.writeFileSync(path.join(bin, "pgrep"), `#!/bin/sh\ncat ${root}/still-running 2>/dev/null\n`, { mode: 0o755 });
            fs.writeFileSync(path.join(root, "systemctl.log"), "");
            env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
            fs.mkdirSync(datadir());
            fs.writeFileSync(path.join(datadir(), "ibdata1"), "fresh");
            fs.mkdirSync(state());
            for (const f of ["lsn", "chain", "shipped", "series"]) fs.writeFileSync(path.join(state(), f), "old");
        });

        it("puts the archived data in place, keeps the old beside it, forgets the backup chain and starts a full", () => {
            const file = archive("restored");
            const r = runStep(file);
            assert.strictEqual(r.status, 0, r.stderr + r.stdout);
            assert.strictEqual(fs.readFileSync(path.join(datadir(), "ibdata1"), "utf8"), "restored");
            const aside = fs.readdirSync(root).filter((f) => f.startsWith("mysql.before-restore-"));
            assert.strictEqual(aside.length, 1);
            assert.strictEqual(fs.readFileSync(path.join(root, aside[0], "ibdata1"), "utf8"), "fresh");
            assert.deepStrictEqual(fs.readdirSync(state()).sort(), ["backup.lock", "ship.lock"]);
            assert.ok(!fs.existsSync(file), "the archive was left on the Pi");
            assert.deepStrictEqual(calls(), ["stop mariadb", "start mariadb", "cat pi-cluster-backup-full.service", "start --no-block pi-cluster-backup-full.service"]);
            assert.match(r.stdout, /\[pi-db-db-data\] MariaDB runs on the restored data/);
        });

        it("starts MariaDB again and changes nothing when a server does not stop", () => {
            fs.writeFileSync(path.join(root, "still-running"), "4242\n");
            const r = runStep(archive("restored"));
            assert.strictEqual(r.status, 1);
            assert.match(r.stderr, /MariaDB did not stop \(mariadbd pid\(s\) 4242 still run\); nothing changed/);
            assert.strictEqual(fs.readFileSync(path.join(datadir(), "ibdata1"), "utf8"), "fresh");
            assert.deepStrictEqual(fs.readdirSync(root).filter((f) => f.startsWith("mysql.")), []);
            assert.deepStrictEqual(calls(), ["stop mariadb", "start mariadb"]);
        });

        it("refuses an archive without a data directory and changes nothing", () => {
            const file = archive("bad", false);
            const r = runStep(file);
            assert.strictEqual(r.status, 1);
            assert.match(r.stderr, /the archive holds no MariaDB data directory \(no \.\/mysql\/ in it\); nothing changed/);
            assert.strictEqual(fs.readFileSync(path.join(datadir(), "ibdata1"), "utf8"), "fresh");
            assert.deepStrictEqual(fs.readdirSync(state()).sort(), ["chain", "lsn", "series", "shipped"]);
            assert.deepStrictEqual(calls(), [""]);
        });
    });
});
