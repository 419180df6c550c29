// The one place that reads stack config. Everything is validated here, before any
// resource exists, so a bad value fails `pulumi preview` without touching a host.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";

const NAME = /^[a-z][a-z0-9-]{0,62}$/;
const HOST_KEY = /^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) [A-Za-z0-9+/]+={0,3}$/;

/** Parses a dotted-quad IPv4 address into a 32-bit unsigned number, or undefined. */
export function ipv4ToNumber(address: string): number | undefined {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
    if (!m) return undefined;
    const octets = m.slice(1).map(Number);
    if (octets.some((o, i) => o > 255 || (m[i + 1].length > 1 && m[i + 1].startsWith("0")))) return undefined;
    return ((octets[0] << 24) >>> 0) + (octets[1] << 16) + (octets[2] << 8) + octets[3];
}

/** True when `address` lies inside `cidr` (both already validated). */
export function cidrContains(cidr: string, address: string): boolean {
    const [base, bits] = cidr.split("/");
    const prefix = Number(bits);
    const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
    return ((ipv4ToNumber(base)! & mask) >>> 0) === ((ipv4ToNumber(address)! & mask) >>> 0);
}

const ipv4 = z.string().refine((s) => ipv4ToNumber(s) !== undefined, {
    message: "expected an IPv4 address such as 192.168.254.122",
});

const cidr = z.string().refine(
    (s) => {
        const m = /^([^/]+)\/(\d{1,2})$/.exec(s);
        return !!m && ipv4ToNumber(m[1]) !== undefined && Number(m[2]) <= 32;
    },
    { message: "expected an IPv4 CIDR such as 192.168.254.0/24" },
);

const port = z
    .number({ message: "expected a port number" })
    .int({ message: "expected a whole port number" })
    .min(1, { message: "expected a port between 1 and 65535" })
    .max(65535, { message: "expected a port between 1 and 65535" });

const host = z
    .object(
        {
            name: z.string().regex(NAME, { message: "expected a lower-case host name such as pi-web1" }),
            address: ipv4,
            hostKey: z
                .string()
                .trim()
                .regex(HOST_KEY, { message: "expected an SSH public host key such as 'ssh-ed25519 AAAA...'" })
                .optional(),
            sshPort: port.default(22),
        },
        { message: "expected an object with name and address" },
    )
    .superRefine((h, ctx) => {
        // Required everywhere, the lab included (lab/lab writes each host's key): without
        // it, any machine that answers at the address would be sent the DB password.
        if (h.hostKey === undefined) {
            const port = h.sshPort === 22 ? "" : `-p ${h.sshPort} `;
            ctx.addIssue({
                code: "custom",
                params: { whole: true },
                path: ["hostKey"],
                message: `expected the Pi's SSH host key, so the stack talks to this Pi and no other; get it from a network you trust with \`ssh-keyscan ${port}-t ed25519 ${h.address} | cut -d' ' -f2-\``,
            });
        }
        })
    // Only reached when the check above passed.
    .transform((h) => ({ ...h, hostKey: h.hostKey as string }));

const byteSize = z.string().regex(/^\d+[KMG]?$/, { message: "expected a size such as 512M" });

const schema = z
    .object({
        sshUser: z.string().regex(/^[a-z_][a-z0-9_-]*$/, { message: "expected a user name such as pi" }).default("pi"),
        sshPrivateKeyPath: z.string().min(1).optional(),
        sshPrivateKey: z.string().min(1).optional(),
        managementCidr: cidr,
        loadBalancer: host,
        webServers: z.array(host, { message: "expected a list of web servers" }).min(1, {
            message: "expected at least one web server",
        }),
        database: host,
        appPort: port.default(3000),
        dbPort: port.default(3306),
        httpPort: port.default(80),
        dbPoolSize: z.number().int().min(1).max(100).default(10),
        dbConnectionHeadroom: z.number().int().min(5).max(500).default(20),
        innodbBufferPoolSize: byteSize.default("512M"),
        innodbLogFileSize: byteSize.default("128M"),
        corsOrigins: z.array(z.string().url({ message: "expected an origin URL such as http://pi-lb" })).default([]),
        dashboardRefreshSeconds: z.number().int().min(2).max(3600).default(10),
        dashboardRequestTimeoutMs: z.number().int().min(500).max(60000).default(4000),
        unattendedUpgrades: z.boolean().default(true),
        purgeDataOnDestroy: z.boolean().default(false),
    })
    .superRefine((c, ctx) => {
        const all = [
            { h: c.loadBalancer, at: ["loadBalancer"] },
            ...c.webServers.map((h, i) => ({ h, at: ["webServers", i] })),
            { h: c.database, at: ["database"] },
        ];
        const seenNames = new Map<string, string>();
        const seenAddresses = new Map<string, string>();
        for (const { h, at } of all) {
            const where = at.join(".");
            const dupName = seenNames.get(h.name);
            if (dupName) {
                ctx.addIssue({ code: "custom", params: { whole: true }, path: [...at, "name"], message: `duplicate host name "${h.name}" (also used by ${dupName})` });
            }
            seenNames.set(h.name, where);
            const dupAddr = seenAddresses.get(h.address);
            if (dupAddr) {
                ctx.addIssue({ code: "custom", params: { whole: true }, path: [...at, "address"], message: `duplicate address ${h.address} (also used by ${dupAddr})` });
            }
            seenAddresses.set(h.address, where);
            if (ipv4ToNumber(h.address) !== undefined && !cidrContains(c.managementCidr, h.address)) {
                ctx.addIssue({
                    code: "custom",
                    params: { whole: true },
                    path: ["managementCidr"],
                    message: `expected a network that contains every host, but ${h.address} (${where}) is outside ${c.managementCidr}`,
                });
            }
        }
        if (!c.sshPrivateKey && !c.sshPrivateKeyPath) {
            ctx.addIssue({
                code: "custom",
                params: { whole: true },
                path: ["sshPrivateKeyPath"],
                message: "expected the path of an SSH private key (or the secret sshPrivateKey)",
            });
        }
        if (c.appPort === c.httpPort) {
            ctx.addIssue({ code: "custom", path: ["appPort"], message: `expected a port other than httpPort (${c.httpPort})` });
        }
    });

type Parsed = z.infer<typeof schema>;

export interface ClusterConfig extends Omit<Parsed, "sshPrivateKey" | "sshPrivateKeyPath"> {
    /** The SSH private key's text, always a secret. */
    sshPrivateKey: pulumi.Output<string>;
}

/**
 * Thrown for bad stack config; the message names every bad key. A RunError, so Pulumi
 * prints just the message, not a stack trace.
 */
export class ConfigError extends pulumi.RunError {}

function formatPath(p: PropertyKey[]): string {
    return p.reduce<string>((acc, seg) => (typeof seg === "number" ? `${acc}[${seg}]` : `${acc}.${String(seg)}`), "pi-cluster:").replace(":.", ":");
}

function describe(value: unknown): string {
    if (value === undefined) return "nothing";
    const s = JSON.stringify(value);
    return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function valueAt(raw: unknown, p: PropertyKey[]): unknown {
    let v: unknown = raw;
    for (const seg of p) {
        if (v === null || typeof v !== "object") return undefined;
        v = (v as Record<PropertyKey, unknown>)[seg];
    }
    return v;
}

function expandHome(p: string): string {
    return p.startsWith("~/") ? path.join(os.homedir(), p.slice(2)) : p;
}

/**
 * Validates raw config values (as read from the stack) and returns the typed config.
 * Pure apart from reading the SSH key file, so it is tested without Pulumi.
 * `secretKey` is the key from the secret config value `sshPrivateKey`, when set.
 */
export function parseConfig(raw: Record<string, unknown>, secretKey?: pulumi.Output<string>): ClusterConfig {
    const result = schema.safeParse(secretKey ? { ...raw, sshPrivateKey: "(secret)" } : raw);
    if (!result.success) {
        const lines = result.error.issues.map((i) => {
            const own = i.code === "custom" && (i as { params?: { whole?: boolean } }).params?.whole;
            const got = own ? "" : `, got ${describe(valueAt(raw, i.path))}`;
            return `  ${formatPath(i.path)}: ${i.message}${got}`;
        });
        throw new ConfigError(`invalid stack config:\n${lines.join("\n")}`);
    }
    const { sshPrivateKey: _secret, sshPrivateKeyPath, ...rest } = result.data;
    if (secretKey) return { ...rest, sshPrivateKey: secretKey };
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
    return { ...rest, sshPrivateKey: pulumi.secret(key) };
}

// Every key the schema knows, so a new key is read as soon as it is declared there.
const KEYS = Object.keys(schema.shape);

/** Reads the stack's `pi-cluster:*` config and validates it. */
export function loadConfig(): ClusterConfig {
    const cfg = new pulumi.Config("pi-cluster");
    const raw: Record<string, unknown> = {};
    for (const key of KEYS) {
        if (key === "sshPrivateKey") continue;
        const text = cfg.get(key);
        if (text === undefined) continue;
        // Structured values (numbers, lists, objects) arrive as JSON text; plain strings do not.
        try {
            raw[key] = JSON.parse(text);
        } catch {
            raw[key] = text;
        }
    }
    return parseConfig(raw, cfg.getSecret("sshPrivateKey"));
}
