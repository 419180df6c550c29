// Keys and certificates in the config: a supplied TLS chain and its key, the deploy key's
// SSH type, the API write token. Each check returns a message that never quotes a secret.
import * as crypto from "crypto";
import { SSH_USER_KEY_TYPES } from "../render/sshd";

/**
 * The certificates of a supplied chain, server certificate first, or a message saying why
 * the text is not one.
 */
export function parseCertificateChain(pem: string): crypto.X509Certificate[] | string {
    const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
    if (blocks.length === 0) return "expected the load balancer's certificate chain in PEM (-----BEGIN CERTIFICATE-----), server certificate first";
    try {
        return blocks.map((b) => new crypto.X509Certificate(b));
    } catch (e) {
        return `expected certificates in PEM that can be read, but one fails: ${(e as Error).message}`;
    }
}

/** Why a supplied key cannot serve the certificate, or undefined. Never quotes the key. */
export function tlsKeyProblem(certificate: string, key: string): string | undefined {
    const chain = parseCertificateChain(certificate);
    if (typeof chain === "string") return undefined; // reported at tlsCertificate
    let privateKey: crypto.KeyObject;
    try {
        privateKey = crypto.createPrivateKey(key);
    } catch {
        return "expected an unencrypted private key in PEM (nginx reads it at every start, with no one to type a passphrase)";
    }
    if (!chain[0].checkPrivateKey(privateKey)) return "expected the private key of the first certificate in tlsCertificate, but it is another key";
    return undefined;
}

/** The app refuses a shorter token at start (API_WRITE_TOKEN in assets/app/src/config.ts). */
export const MIN_API_WRITE_TOKEN_LENGTH = 16;

/**
 * Why the app would refuse this write token, or undefined. The same rules as the app's
 * config.ts: RFC 6750's token68 characters, at least 16. Never shows the value.
 */
export function apiWriteTokenProblem(token: string): string | undefined {
    const set = "set it with `pulumi config set --secret pi-cluster:apiWriteToken <token>`, or remove it and the stack generates one";
    if (token.length < MIN_API_WRITE_TOKEN_LENGTH) return `expected at least ${MIN_API_WRITE_TOKEN_LENGTH} characters (got ${token.length}); ${set}`;
    if (!/^[A-Za-z0-9\-._~+/]+=*$/.test(token)) return `expected letters, digits and -._~+/ only (a bearer token), with no spaces; ${set}`;
    return undefined;
}

/**
 * Why Alertmanager could not post alerts to this webhook URL, or undefined. Never shows the
 * value: such URLs carry their token in the path (Slack, Discord, ntfy, healthchecks).
 */
export function alertWebhookUrlProblem(url: string): string | undefined {
    const set = "set it with `pulumi config set --secret pi-cluster:alertWebhookUrl https://...`";
    let parsed: URL;
    try {
        parsed = new URL(url);
    } catch {
        return `expected an http:// or https:// URL that Alertmanager posts alerts to; ${set}`;
    }
    if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return `expected an http:// or https:// URL, got a ${parsed.protocol} one; ${set}`;
    if (/\s/.test(url)) return `expected a URL without spaces; ${set}`;
    return undefined;
}

/** The first `count` length-prefixed fields of SSH wire data from `at`; undefined when it is too short. */
function sshFields(buf: Buffer, at: number, count: number): Buffer[] | undefined {
    const fields: Buffer[] = [];
    for (let i = 0; i < count; i++) {
        if (at + 4 > buf.length) return undefined;
        const end = at + 4 + buf.readUInt32BE(at);
        if (end > buf.length) return undefined;
        fields.push(buf.subarray(at + 4, end));
        at = end;
    }
    return fields;
}

/**
 * The SSH type ("ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"...) of a private key in
 * OpenSSH format, read from its public half (never encrypted), or in unencrypted PEM;
 * undefined when it cannot be told.
 */
export function privateKeyType(text: string): string | undefined {
    const openssh = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(text);
    if (openssh) {
        // OpenSSH's PROTOCOL.key: a magic; the cipher, the KDF and its options; the key count;
        // then the first public key, whose first field is its type.
        const buf = Buffer.from(openssh[1].replace(/\s+/g, ""), "base64");
        const magic = Buffer.from("openssh-key-v1\0", "latin1");
        if (!buf.subarray(0, magic.length).equals(magic)) return undefined;
        const head = sshFields(buf, magic.length, 3);
        if (!head) return undefined;
        const pub = sshFields(buf, magic.length + head.reduce((n, f) => n + 4 + f.length, 0) + 4, 1);
        return pub && sshFields(pub[0], 0, 1)?.[0].toString("latin1");
    }
    try {
        const key = crypto.createPrivateKey(text);
        switch (key.asymmetricKeyType) {
            case "ed25519":
                return "ssh-ed25519";
            case "rsa":
                return "ssh-rsa";
            case "dsa":
                return "ssh-dss";
            case "ec": {
                const curve = ({ prime256v1: "nistp256", secp384r1: "nistp384", secp521r1: "nistp521" } as Record<string, string>)[key.asymmetricKeyDetails?.namedCurve ?? ""];
                return curve && `ecdsa-sha2-${curve}`;
            }
        }
    } catch {
        // Encrypted, or not a key Node.js reads: the type cannot be told.
    }
    return undefined;
}

/**
 * Why the Pis' sshd would refuse the deploy key, or undefined. It accepts only the key
 * types in SSH_USER_KEY_TYPES: a deploy key of another type would lock the stack out of
 * every Pi from the first run on.
 */
export function deployKeyProblem(key: string, user: string): string | undefined {
    const type = privateKeyType(key);
    const make = `make one with \`ssh-keygen -t ed25519\` and add its .pub to ~${user}/.ssh/authorized_keys on every Pi first`;
    if (type === undefined) return `expected an SSH private key whose type can be read (OpenSSH format, or unencrypted PEM); ${make}`;
    if (!SSH_USER_KEY_TYPES.includes(type)) return `expected an ed25519 or ECDSA key, as the Pis' sshd accepts no other, got an ${type} key; ${make}`;
    return undefined;
}
