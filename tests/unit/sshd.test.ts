// sshd's drop-in: exact key lines, the real sshd (-t and -T) on it inside Debian's
// sshd_config, and the base step's own check that the drop-in is in force.
import * as assert from "assert";
import { execFileSync, spawnSync, SpawnSyncReturns } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { fileText, renderScript } from "../../components/render/shell";
import { renderSshdDropIn, SSHD_KEX_ALLOWED, sshdExpected } from "../../components/render/sshd";
import { tmpDir } from "./helpers";

const SSHD = "/usr/sbin/sshd";
const dropIn = renderSshdDropIn({ user: "pi" });

/**
 * What the deploying client, pulumi-command 1.2.1's golang.org/x/crypto v0.48 (ssh/common.go:
 * supportedKexAlgos, supportedCiphers; the host key type is the pinned key's), can use.
 */
const GO_CLIENT = {
    kex: ["mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521", "diffie-hellman-group14-sha256", "diffie-hellman-group16-sha512"],
    ciphers: ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes128-ctr", "aes192-ctr", "aes256-ctr"],
    keys: ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "rsa-sha2-256", "rsa-sha2-512"],
};

function valueOf(text: string, keyword: string): string {
    const m = new RegExp(`^${keyword} (.*)$`, "m").exec(text);
    assert.ok(m, `no ${keyword} line`);
    return m[1];
}

/** Debian's sshd_config (bookworm and trixie) without its comments: the drop-ins come first. */
function debianSshdConfig(dir: string, hostKey: string): string {
    return [
        `Include ${dir}/sshd_config.d/*.conf`,
        `HostKey ${hostKey}`,
        "KbdInteractiveAuthentication no",
        "UsePAM yes",
        "X11Forwarding yes",
        "PrintMotd no",
        "AcceptEnv LANG LC_*",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
        "",
    ].join("\n");
}

/** A directory with Debian's sshd_config, a host key and the drop-in in sshd_config.d/. */
function sshdDir(others: Record<string, string> = {}, ownDropIn = dropIn): { dir: string; config: string } {
    const dir = tmpDir("pi-sshd-");
    fs.mkdirSync(path.join(dir, "sshd_config.d"));
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "host_ed25519_key")]);
    fs.writeFileSync(path.join(dir, "sshd_config.d", "10-pi-cluster.conf"), ownDropIn);
    for (const [name, text] of Object.entries(others)) fs.writeFileSync(path.join(dir, "sshd_config.d", name), text);
    const config = path.join(dir, "sshd_config");
    fs.writeFileSync(config, debianSshdConfig(dir, path.join(dir, "host_ed25519_key")));
    return { dir, config };
}

/**
 * Runs a command where sshd's own checks can run unprivileged and touch nothing: in a user
 * and mount namespace of its own, with a fresh /run holding the /run/sshd that sshd demands.
 */
function inSshdNamespace(args: string[]): SpawnSyncReturns<string> {
    assert.ok(fs.existsSync(SSHD), `${SSHD} must be installed (apt-get install openssh-server; scripts/setup.sh does)`);
    const r = spawnSync("unshare", ["--map-root-user", "--mount", "sh", "-c", 'mount -t tmpfs tmpfs /run && mkdir -m 0755 /run/sshd && exec "$@"', "sh", ...args], {
        encoding: "utf8",
    });
    assert.strictEqual(r.error, undefined, "unshare (util-linux) must be installed");
    return r;
}

describe("sshd drop-in", () => {
    it("lets in only the deploy user, with a key, never root", () => {
        for (const line of [
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "AuthenticationMethods publickey",
            "PubkeyAuthentication yes",
            "PermitRootLogin no",
            "AllowUsers pi",
            "MaxAuthTries 3",
            "LoginGraceTime 20",
        ]) {
            assert.match(dropIn, new RegExp(`^${line}$`, "m"));
        }
        assert.match(renderSshdDropIn({ user: "deploy" }), /^AllowUsers deploy$/m);
        assert.throws(() => renderSshdDropIn({ user: "pi root" }), /not a plain user name/);
    });

    it("turns off X11, agent, TCP and socket forwarding", () => {
        for (const k of ["X11Forwarding", "AllowAgentForwarding", "AllowTcpForwarding", "AllowStreamLocalForwarding"]) {
            assert.match(dropIn, new RegExp(`^${k} no$`, "m"));
        }
    });

    it("offers only ed25519/ECDSA keys, AEAD ciphers and ETM MACs", () => {
        assert.strictEqual(valueOf(dropIn, "HostKeyAlgorithms"), "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521");
        assert.strictEqual(
            valueOf(dropIn, "PubkeyAcceptedAlgorithms"),
            "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com",
        );
        assert.strictEqual(valueOf(dropIn, "Ciphers"), "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com");
        assert.strictEqual(valueOf(dropIn, "MACs"), "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com");
        // Removes from the defaults, so that trixie keeps ML-KEM where bookworm's sshd knows none.
        assert.match(valueOf(dropIn, "KexAlgorithms"), /^-ecdh-sha2-nistp256,.*diffie-hellman-group14-sha256/);
    });

    it("leaves the deploying client a key exchange, a cipher and key types it speaks", () => {
        assert.ok(SSHD_KEX_ALLOWED.some((k) => GO_CLIENT.kex.includes(k)));
        assert.ok(valueOf(dropIn, "Ciphers").split(",").some((c) => GO_CLIENT.ciphers.includes(c)));
        for (const k of ["ssh-ed25519", "ecdsa-sha2-nistp256"]) {
            assert.ok(valueOf(dropIn, "HostKeyAlgorithms").split(",").includes(k) && GO_CLIENT.keys.includes(k), k);
            assert.ok(valueOf(dropIn, "PubkeyAcceptedAlgorithms").split(",").includes(k), k);
        }
    });

    it("passes sshd -t inside Debian's sshd_config, and wins over its later lines", () => {
        const { config } = sshdDir();
        const t = inSshdNamespace([SSHD, "-t", "-f", config]);
        assert.strictEqual(t.status, 0, t.stderr);
        const T = inSshdNamespace([SSHD, "-T", "-f", config, "-C", "user=pi,host=pi-web1,addr=10.254.0.1"]);
        assert.strictEqual(T.status, 0, T.stderr);
        for (const line of sshdExpected({ user: "pi" })) assert.match(T.stdout, new RegExp(`^${line}$`, "m"));
        // Debian's own "X11Forwarding yes" comes later and loses.
        assert.match(T.stdout, /^x11forwarding no$/m);
        const kex = valueOf(T.stdout, "kexalgorithms").split(",");
        assert.ok(kex.length > 0 && kex.every((k) => SSHD_KEX_ALLOWED.includes(k)), kex.join(","));
        assert.ok(kex.includes("curve25519-sha256"), "the Go client's exchange on an sshd without ML-KEM");
        // And sshd -t can fail: a cipher it does not know is refused.
        const bad = sshdDir({ "20-bad.conf": "Ciphers aes128-nonesuch\n" });
        assert.notStrictEqual(inSshdNamespace([SSHD, "-t", "-f", bad.config]).status, 0);
    });
});

describe("host-base.sh's sshd check", () => {
    /** Runs check_sshd from the rendered base step against the config in `dir`. */
    function checkSshd(dir: string, config: string, extraUsers?: string[]): SpawnSyncReturns<string> {
        const script = renderScript("host-base", {
            STEP: "test",
            SSH_USER: "pi",
            PACKAGES: [],
            UNATTENDED: "false",
            AUTO_UPGRADES_TEXT: "",
            UU_POLICY_TEXT: "",
            SSHD_DROP_IN: path.join(dir, "sshd_config.d", "10-pi-cluster.conf"),
            SSHD_CONF_TEXT: fileText(renderSshdDropIn({ user: "pi", extraUsers })),
            SSHD_EXPECT: sshdExpected({ user: "pi", extraUsers }),
            SSHD_KEX_ALLOWED,
        });
        const fixed = "readonly SSHD_CONFIG=/etc/ssh/sshd_config\n";
        assert.ok(script.includes(fixed));
        const f = path.join(dir, "check.sh");
        fs.writeFileSync(f, script.replace(fixed, `readonly SSHD_CONFIG=${config}\n`).replace(/main "\$@" <\/dev\/null\n$/, "check_sshd\n"));
        return inSshdNamespace(["bash", f]);
    }

    it("passes the drop-in in force", () => {
        const { dir, config } = sshdDir();
        const r = checkSshd(dir, config);
        assert.strictEqual(r.status, 0, r.stdout + r.stderr);
    });

    it("fails when a file sshd reads first turns passwords back on", () => {
        const { dir, config } = sshdDir({ "00-vendor.conf": "PasswordAuthentication yes\n" });
        const r = checkSshd(dir, config);
        assert.strictEqual(r.status, 1);
        assert.match(r.stdout, /sshd -T shows 'passwordauthentication yes' where .* says 'passwordauthentication no': another file sets it first/);
    });

    it("passes with the backup target's user let in from the database's address only", () => {
        const extra = ["pi-backup@10.254.0.124"];
        const { dir, config } = sshdDir({}, renderSshdDropIn({ user: "pi", extraUsers: extra }));
        const r = checkSshd(dir, config, extra);
        assert.strictEqual(r.status, 0, r.stdout + r.stderr);
        assert.throws(() => renderSshdDropIn({ user: "pi", extraUsers: ["pi-backup"] }), /not user@address/);
    });

    it("fails when another file lets a second user in", () => {
        const { dir, config } = sshdDir({ "90-admin.conf": "AllowUsers admin\n" });
        const r = checkSshd(dir, config);
        assert.strictEqual(r.status, 1);
        assert.match(r.stdout, /shows 'allowusers pi; allowusers admin'|shows 'allowusers admin; allowusers pi'/);
    });

    it("fails when sshd would still offer a classic key exchange", () => {
        const { dir, config } = sshdDir({ "00-vendor.conf": "KexAlgorithms curve25519-sha256,ecdh-sha2-nistp256\n" });
        const r = checkSshd(dir, config);
        assert.strictEqual(r.status, 1);
        assert.match(r.stdout, /would still offer the key exchange ecdh-sha2-nistp256/);
    });

    it("fails when sshd -t rejects the config", () => {
        const { dir, config } = sshdDir({ "50-broken.conf": "NoSuchKeyword yes\n" });
        const r = checkSshd(dir, config);
        assert.strictEqual(r.status, 1);
        assert.match(r.stdout, /sshd -t rejects the config: .*NoSuchKeyword/);
    });
});
