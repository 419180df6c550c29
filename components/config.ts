// The one place that reads stack config. Everything is validated here, before any
// resource exists, so a bad value fails \`pulumi preview\` without touching a host. The rules
// live in config/: each key's own check and default (schema.ts), the checks across keys
// (checks.ts), keys and certificates (keys.ts), networks (network.ts), sizes (sizes.ts), and
// how a problem is reported (messages.ts).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { alertWebhookUrlProblem, apiWriteTokenProblem, deployKeyProblem, tlsKeyProblem } from "./config/keys";
import { ConfigError, issueLines, NAMESPACE } from "./config/messages";
import { knownKeys, schema } from "./config/schema";

export { AGE_RECIPIENT, apiRateLimitOf, DEFAULT_RAM_MB, MAX_SERVER_ID, TLS_CERTIFICATE_MODES, type TlsCertificateMode } from "./config/schema";
export { alertWebhookUrlProblem, apiWriteTokenProblem, MIN_API_WRITE_TOKEN_LENGTH, parseCertificateChain, privateKeyType, tlsKeyProblem } from "./config/keys";
export { cidrContains, cidrPrefix, ipv4ToNumber, MIN_MANAGEMENT_PREFIX, tooWideForManagement } from "./config/network";
export { mariadbMemoryMb, sizeToMb, WEB_MEMORY_MB } from "./config/sizes";
export { ConfigError };

type Parsed = ReturnType<typeof schema.parse>;

export interface ClusterConfig extends Omit<Parsed, "sshPrivateKey" | "sshPrivateKeyPath" | "apiWriteToken" | "tlsPrivateKey" | "alertWebhookUrl"> {
    /** The SSH private key's text, always a secret. */
    sshPrivateKey: pulumi.Output<string>;
    /** The bearer token API writes need, a secret; unset, the stack generates one. */
    apiWriteToken?: pulumi.Output<string>;
    /** The supplied TLS certificate's key, always a secret; set only with tlsCertificateMode "supplied". */
    tlsPrivateKey?: pulumi.Output<string>;
    /** Where Alertmanager posts alerts (monitoring on), a secret; unset, alerts stay in Alertmanager. */
    alertWebhookUrl?: pulumi.Output<string>;
}

// The secret is known at preview, so a key that does not match fails there.
function checkedTlsKey(key: pulumi.Output<string>, certificate: string): pulumi.Output<string> {
    return pulumi.secret(
        key.apply((k) => {
            const problem = tlsKeyProblem(certificate, k);
            if (problem) throw new ConfigError(`invalid stack config:\n  pi-cluster:tlsPrivateKey: ${problem}`);
            return k;
        }),
    );
}

function expandHome(p: string): string {
    return p.startsWith("~/") ? path.join(os.homedir(), p.slice(2)) : p;
}

/** The settings as the schema leaves them: defaults filled in, no secret read. */
export type Settings = Parsed;

/**
 * Validates raw config values against the schema alone: no file is read and no secret is
 * needed, only whether the secret keys are set. The policy pack (policy/) reads the stack
 * through this, so its rules see the values, defaults included, that the program builds from.
 */
export function parseSettings(raw: Record<string, unknown>, secretsSet: { sshPrivateKey?: boolean; tlsPrivateKey?: boolean } = {}): Settings {
    const result = schema.safeParse({
        ...raw,
        ...(secretsSet.sshPrivateKey ? { sshPrivateKey: "(secret)" } : {}),
        ...(secretsSet.tlsPrivateKey ? { tlsPrivateKey: "(secret)" } : {}),
    });
    if (!result.success) throw new ConfigError(`invalid stack config:\n${issueLines(result.error.issues, raw, knownKeys).join("\n")}`);
    return result.data;
}

/**
 * Validates raw config values (as read from the stack) and returns the typed config.
 * Pure apart from reading the SSH key file, so it is tested without Pulumi.
 * `secretKey` is the key from the secret config value `sshPrivateKey`, when set.
 */
export function parseConfig(
    raw: Record<string, unknown>,
    secretKey?: pulumi.Output<string>,
    writeToken?: pulumi.Output<string>,
    tlsKey?: pulumi.Output<string>,
    webhookUrl?: pulumi.Output<string>,
): ClusterConfig {
    const { sshPrivateKey: _secret, sshPrivateKeyPath, apiWriteToken: _token, tlsPrivateKey: _tls, alertWebhookUrl: _hook, ...parsed } = parseSettings(raw, {
        sshPrivateKey: !!secretKey,
        tlsPrivateKey: !!tlsKey,
    });
    const rest = {
        ...parsed,
        adminCidrs: parsed.adminCidrs.length > 0 ? parsed.adminCidrs : [parsed.managementCidr],
        ...(tlsKey ? { tlsPrivateKey: checkedTlsKey(tlsKey, parsed.tlsCertificate!) } : {}),
        ...(webhookUrl ? { alertWebhookUrl: checkedWebhookUrl(webhookUrl) } : {}),
    };
    const withToken = (c: ClusterConfig): ClusterConfig => (writeToken ? { ...c, apiWriteToken: checkedWriteToken(writeToken) } : c);
    if (secretKey) {
        // The secret is known at preview, so a key sshd would refuse fails there too.
        const checked = secretKey.apply((key) => {
            const problem = deployKeyProblem(key, rest.sshUser);
            if (problem) throw new ConfigError(`invalid stack config:\n  pi-cluster:sshPrivateKey: ${problem}`);
            return key;
        });
        return withToken({ ...rest, sshPrivateKey: checked });
    }
    const file = expandHome(sshPrivateKeyPath!);
    let key: string;
    try {
        key = fs.readFileSync(file, "utf8");
    } catch (e) {
        throw new ConfigError(
            `invalid stack config:\n  pi-cluster:sshPrivateKeyPath: expected a readable SSH private key file, got ${JSON.stringify(file)} (${(e as NodeJS.ErrnoException).code})`,
        );
    }
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) {
        throw new ConfigError(
            `invalid stack config:\n  pi-cluster:sshPrivateKeyPath: expected an SSH private key in OpenSSH/PEM format, got the file ${JSON.stringify(file)}`,
        );
    }
    const problem = deployKeyProblem(key, rest.sshUser);
    if (problem) throw new ConfigError(`invalid stack config:\n  pi-cluster:sshPrivateKeyPath: ${problem} (the file ${JSON.stringify(file)})`);
    return withToken({ ...rest, sshPrivateKey: pulumi.secret(key) });
}

/** The secret is known at preview, so a token the app would refuse fails there, before any Pi is touched. */
function checkedWriteToken(token: pulumi.Output<string>): pulumi.Output<string> {
    return pulumi.secret(
        token.apply((t) => {
            const problem = apiWriteTokenProblem(t);
            if (problem) throw new ConfigError(`invalid stack config:\n  pi-cluster:apiWriteToken: ${problem}`);
            return t;
        }),
    );
}

/** The secret is known at preview, so a URL Alertmanager could not post to fails there. */
function checkedWebhookUrl(url: pulumi.Output<string>): pulumi.Output<string> {
    return pulumi.secret(
        url.apply((u) => {
            const problem = alertWebhookUrlProblem(u);
            if (problem) throw new ConfigError(`invalid stack config:\n  pi-cluster:alertWebhookUrl: ${problem}`);
            return u;
        }),
    );
}

/** Keys read only with getSecret, so their values are secret from the start. */
const SECRET_KEYS = ["sshPrivateKey", "apiWriteToken", "tlsPrivateKey", "alertWebhookUrl"];

export function loadConfig(): ClusterConfig {
    const cfg = new pulumi.Config(NAMESPACE);
    return parseConfig(rawStackConfig(), cfg.getSecret("sshPrivateKey"), cfg.getSecret("apiWriteToken"), cfg.getSecret("tlsPrivateKey"), cfg.getSecret("alertWebhookUrl"));
}

function stackKeys(): string[] {
    return Object.keys(pulumi.runtime.allConfig())
        .filter((k) => k.startsWith(`${NAMESPACE}:`))
        .map((k) => k.slice(NAMESPACE.length + 1));
}

/**
 * Every `pi-cluster:*` key the stack sets, not only the known ones, so that a mistyped key
 * fails validation instead of being silently ignored; the secret ones (SECRET_KEYS) left
 * out. Other namespaces belong to Pulumi and providers and are left alone.
 */
export function rawStackConfig(): Record<string, unknown> {
    const cfg = new pulumi.Config(NAMESPACE);
    const raw: Record<string, unknown> = {};
    for (const key of stackKeys()) {
        if (SECRET_KEYS.includes(key)) continue;
        const text = cfg.get(key);
        if (text === undefined) continue;
        // Structured values (numbers, lists, objects) arrive as JSON text; plain strings do not.
        try {
            raw[key] = JSON.parse(text);
        } catch {
            raw[key] = text;
        }
    }
    return raw;
}

/** Whether the stack sets each secret key (their values are not read). */
export function secretsSet(): { sshPrivateKey: boolean; tlsPrivateKey: boolean } {
    const keys = stackKeys();
    return { sshPrivateKey: keys.includes("sshPrivateKey"), tlsPrivateKey: keys.includes("tlsPrivateKey") };
}
