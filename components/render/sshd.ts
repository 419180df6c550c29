// sshd's drop-in on every Pi: keys only, the deploy user only, modern algorithms only.
// Pure: the deploy user in, file text (and what `sshd -T` must then show) out.

/**
 * The key types sshd accepts, for host keys and for users' keys (with FIDO security keys
 * for users). No RSA: pulumi-command asks for exactly the pinned host key's type, and
 * config.ts refuses an RSA host key or deploy key before a Pi is touched.
 */
export const SSH_HOST_KEY_TYPES = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"];
export const SSH_USER_KEY_TYPES = [...SSH_HOST_KEY_TYPES, "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"];

/**
 * The key exchanges sshd may offer once the drop-in is read: hybrid post-quantum ML-KEM
 * (OpenSSH 9.9+, Debian trixie) and NTRU Prime (8.5+), and X25519. The Go client of
 * pulumi-command (golang.org/x/crypto v0.48) speaks mlkem768x25519-sha256 and
 * curve25519-sha256, not sntrup.
 */
export const SSHD_KEX_ALLOWED = [
    "mlkem768x25519-sha256",
    "sntrup761x25519-sha512",
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
];

/**
 * Removed from OpenSSH's default list rather than naming what stays: an allow list that
 * names mlkem768x25519-sha256 fails `sshd -t` on OpenSSH 9.2 (bookworm), and one without
 * it would cost the deploy connection its post-quantum exchange on trixie. sshd does not
 * check names after "-", so a name a version lacks does no harm.
 */
const KEX_REMOVED = [
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
    "diffie-hellman-group14-sha1",
    "diffie-hellman-group1-sha1",
    "diffie-hellman-group-exchange-sha1",
];

export interface SshdArgs {
    /** The deploy user, the only one sshd lets in (beside extraUsers). */
    user: string;
    /** Other users, as sshd's AllowUsers patterns (user@address): the backup target's user. Default none. */
    extraUsers?: string[];
}

/** The drop-in's settings as sshd keywords and values, in file order. */
function settings(a: SshdArgs): [string, string][] {
    if (!/^[a-z_][a-z0-9_-]*$/.test(a.user)) throw new Error(`sshd: user ${JSON.stringify(a.user)} is not a plain user name`);
    for (const u of a.extraUsers ?? []) {
        if (!/^[a-z_][a-z0-9_-]*@[0-9.]+$/.test(u)) throw new Error(`sshd: extra user ${JSON.stringify(u)} is not user@address`);
    }
    return [
        ["PasswordAuthentication", "no"],
        ["KbdInteractiveAuthentication", "no"],
        ["AuthenticationMethods", "publickey"],
        ["PubkeyAuthentication", "yes"],
        ["PermitRootLogin", "no"],
        ["AllowUsers", [a.user, ...(a.extraUsers ?? [])].join(" ")],
        ["HostKeyAlgorithms", SSH_HOST_KEY_TYPES.join(",")],
        ["PubkeyAcceptedAlgorithms", SSH_USER_KEY_TYPES.join(",")],
        ["KexAlgorithms", `-${KEX_REMOVED.join(",")}`],
        ["Ciphers", "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com"],
        // Unused with the AEAD ciphers above; set so that no future cipher brings back MAC-then-encrypt.
        ["MACs", "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com"],
        ["X11Forwarding", "no"],
        ["AllowAgentForwarding", "no"],
        ["AllowTcpForwarding", "no"],
        ["AllowStreamLocalForwarding", "no"],
        ["MaxAuthTries", "3"],
        ["LoginGraceTime", "20"],
    ];
}

export function renderSshdDropIn(a: SshdArgs): string {
    return `# Managed by pi-cluster; rendered by components/render/sshd.ts.
# Keys only, ${a.user} only, modern algorithms only. Read before the rest of sshd_config, so
# these values win (sshd keeps the first value it reads).
${settings(a)
    .map(([k, v]) => `${k} ${v}`)
    .join("\n")}
`;
}

/**
 * The lines `sshd -T` prints for the deploy user once the drop-in is in force, one per
 * keyword ("allowusers pi"). A keyword that shows any other line was set by a file sshd
 * read first. The key exchanges are checked against SSHD_KEX_ALLOWED instead.
 */
export function sshdExpected(a: SshdArgs): string[] {
    // sshd -T prints one "allowusers" line per user: the expected text is those lines.
    return settings(a)
        .filter(([k]) => k !== "KexAlgorithms")
        .map(([k, v]) => (k === "AllowUsers" ? v.split(" ") : [v]).map((w) => `${k.toLowerCase()} ${w}`).join("\n"));
}

/** How known_hosts names a Pi: its address, or `[address]:port` off port 22. */
export function knownHostsName(address: string, port: number): string {
    return port === 22 ? address : `[${address}]:${port}`;
}

/** The known_hosts line that pins a Pi's key: `address key`, or `[address]:port key` off port 22. */
export function knownHostsLine(address: string, port: number, hostKey: string): string {
    return `${knownHostsName(address, port)} ${hostKey.trim()}`;
}
