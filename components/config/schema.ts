// Every config key's own check and default, as a zod schema whose messages say what was
// expected; \`schema\` adds the checks across keys (checks.ts).
import { z } from "zod";
import { ApiRateLimit } from "../render/nginx";
import { SSH_HOST_KEY_TYPES } from "../render/sshd";
import { crossFieldProblems } from "./checks";
import { ipv4ToNumber } from "./network";
import { byteSize } from "./sizes";

const NAME = /^[a-z][a-z0-9-]{0,62}$/;
const HOST_KEY = /^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) [A-Za-z0-9+/]+={0,3}$/;

/**
 * What is wrong with a Pi's host key given as "TYPE BASE64" (undefined when nothing is): not a
 * public key at all, or a type the Pis' sshd does not offer. The CLI's --host-key uses it too.
 */
export function piHostKeyProblem(key: string): "format" | "type" | undefined {
    if (!HOST_KEY.test(key.trim())) return "format";
    return SSH_HOST_KEY_TYPES.includes(key.trim().split(" ")[0]) ? undefined : "type";
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

/** Where the load balancer's certificate comes from (README, "HTTPS"). */
export const TLS_CERTIFICATE_MODES = ["generated", "supplied"] as const;
export type TlsCertificateMode = (typeof TLS_CERTIFICATE_MODES)[number];

/** The seed sized the database for a 2 GB Pi; without a ramMb, every Pi is taken to be one. */
export const DEFAULT_RAM_MB = 2048;

// Strict: an unknown field (a typo such as "sshport") fails instead of being ignored.
const hostObject = z.strictObject(
    {
        name: z.string().regex(NAME, { message: "expected a lower-case host name such as pi-web1" }),
        address: ipv4,
        hostKey: z
            .string()
            .trim()
            .regex(HOST_KEY, { message: "expected an SSH public host key such as 'ssh-ed25519 AAAA...'" })
            .optional(),
        sshPort: port.default(22),
        // From 256 MB (the first Pi) to 16 GB (the largest Pi 5).
        ramMb: z
            .number({ message: "expected the Pi's RAM in MB, such as 2048 for a 2 GB Pi" })
            .int({ message: "expected the Pi's RAM in whole MB, such as 2048" })
            .min(256, { message: "expected the Pi's RAM in MB, at least 256" })
            .max(16384, { message: "expected the Pi's RAM in MB, at most 16384" })
            .default(DEFAULT_RAM_MB),
    },
    { message: "expected an object with name and address" },
);

/** A host must name its SSH host key; the check is shared by every kind of host. */
function requireHostKey<T extends z.ZodType<{ address: string; sshPort: number; hostKey?: string }>>(object: T) {
    return object
    .superRefine((h, ctx) => {
        // Required everywhere, the lab included (lab/lab writes each host's key): without
        // it, any machine that answers at the address would be sent the DB password.
        const port = h.sshPort === 22 ? "" : `-p ${h.sshPort} `;
        const keyscan = `\`ssh-keyscan ${port}-t ed25519 ${h.address} | cut -d' ' -f2-\``;
        if (h.hostKey === undefined) {
            ctx.addIssue({
                code: "custom",
                params: { whole: true },
                path: ["hostKey"],
                message: `expected the Pi's SSH host key, so the stack talks to this Pi and no other; get it from a network you trust with ${keyscan}`,
            });
        } else if (piHostKeyProblem(h.hostKey) === "type") {
            // pulumi-command asks the Pi for exactly the pinned key's type, and the Pis' sshd
            // offers no RSA host key (components/render/sshd.ts).
            ctx.addIssue({
                code: "custom",
                path: ["hostKey"],
                message: `expected the Pi's ed25519 or ECDSA host key, as its sshd offers no other; get the ed25519 one from a network you trust with ${keyscan}`,
            });
        }
    })
    // Only reached when the check above passed.
    .transform((h) => ({ ...h, hostKey: h.hostKey as string }));
}

const host = requireHostKey(hostObject);

/** The largest server_id (and gtid_domain_id) MariaDB takes. */
export const MAX_SERVER_ID = 4294967295;

/**
 * The database may carry the server id (and GTID domain) it keeps after a promotion:
 * `pi-cluster promote` sets the promoted replica's own, so it never continues the lost
 * database's sequence. Unset: 1, the first database of a cluster (GTID domain 0).
 */
const databaseObject = hostObject.extend({
    serverId: z
        .number({ message: "expected a MariaDB server id, a whole number from 1 (`pi-cluster promote` sets a promoted replica's)" })
        .int({ message: "expected a whole number" })
        .min(1, { message: "expected 1 or more" })
        .max(MAX_SERVER_ID, { message: `expected at most ${MAX_SERVER_ID}` })
        .default(1),
});
const databaseHost = requireHostKey(databaseObject);

/** A web server may also be cordoned: kept installed, but out of the load balancer. */
const webHost = requireHostKey(
    hostObject.extend({
        cordon: z.boolean({ message: "expected true (keep this server out of the load balancer, in maintenance) or false" }).default(false),
    }),
);

/** The longest any rollout step waits for an app to become healthy; the drain lease is derived from it. */
const healthTimeout = z
    .number({ message: "expected seconds, such as 60" })
    .int({ message: "expected whole seconds, such as 60" })
    .min(10, { message: "expected at least 10 seconds (Node.js, the app and its pool need a few to start)" })
    .max(600, { message: "expected at most 600 seconds" });

/** A map of name to a generation that is bumped to do something again (reapply, reseed). */
function generations(bump: string, key: string, example: string) {
    return z
        .record(
            z.string(),
            z
                .number({ message: `expected a whole number; ${bump}` })
                .int({ message: "expected a whole number, such as 1" })
                .min(0, { message: "expected 0 or more" }),
            { message: `expected a map of ${key} to a whole number, such as {${example}: 1}` },
        )
        .default({});
}

/** A whole count from min to max, with messages that say what it counts. */
function count(what: string, example: number, min: number, max: number) {
    return z
        .number({ message: `expected ${what}, such as ${example}` })
        .int({ message: `expected a whole number of ${what}, such as ${example}` })
        .min(min, { message: `expected at least ${min} ${what}` })
        .max(max, { message: `expected at most ${max} ${what}` });
}

// The /api/ limits per client address. The defaults keep the dashboard's polling under
// them with a margin of 2: 10 tabs with 4 web servers at the shortest refresh (2 s) send
// 10 x (1 + 4) = 50 requests at once, 25 per second; 101 at once (burst 100), 100 in
// flight and 50 per second hold twice that (README, "Rate limiting"). limit_conn takes
// at most 65535; 100000r/s is far past what a Pi serves, and past the lab's load tests.
const apiRateLimitPerSecond = count("requests per second per client address", 50, 1, 100000).default(50);
const apiRateLimitBurst = count("requests beyond the rate", 100, 0, 100000).default(100);
const apiConnectionsPerClient = count("requests in flight per client address", 100, 1, 65535).default(100);

/** The three /api/ limit keys as the nginx renderer takes them. */
export function apiRateLimitOf(c: { apiRateLimitPerSecond: number; apiRateLimitBurst: number; apiConnectionsPerClient: number }): ApiRateLimit {
    return { ratePerSecond: c.apiRateLimitPerSecond, burst: c.apiRateLimitBurst, connectionsPerClient: c.apiConnectionsPerClient };
}

/** An age X25519 recipient, as `age-keygen -y` prints it: "age1" and 58 bech32 characters. */
export const AGE_RECIPIENT = /^age1[02-9ac-hj-np-z]{58}$/;

// systemd's OnCalendar= syntax is checked on the Pi by systemd-analyze; this only keeps
// the value to the characters that syntax uses, so it is safe in a unit file.
const onCalendar = z.string().regex(/^[A-Za-z0-9 *:,./~-]{1,100}$/, { message: "expected a systemd OnCalendar= expression such as daily, hourly or *:0/15" });

const backupTarget = z.strictObject(
    {
        // Default the load balancer: the seed's topology has no other host that is not the
        // database, and a lost DB disk must not lose the backups. A dedicated host is better.
        host: ipv4.optional(),
        sshPort: port.optional(),
        hostKey: z.string().trim().regex(HOST_KEY, { message: "expected the target's SSH public host key such as 'ssh-ed25519 AAAA...'" }).optional(),
        path: z
            .string()
            .regex(/^\/(?!.*\/\.\.?(\/|$))[A-Za-z0-9._/-]+[^/]$/, { message: "expected an absolute directory path such as /srv/pi-cluster-backups" })
            .default("/srv/pi-cluster-backups"),
        user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, { message: "expected a user name such as pi-backup" }).default("pi-backup"),
        // The target refuses a put that would leave less: a full must not fill the load
        // balancer's disk (its logs, its nginx temp files).
        minFreeMb: count("MB the target keeps free", 1024, 0, 1048576).default(1024),
    },
    { message: "expected an object {host?, sshPort?, hostKey?, path?, user?, minFreeMb?}" },
);

/** Backups: the seed's policy (full daily, incremental hourly, logs every 15 min or sooner, 30 days). */
const backup = z.strictObject(
    {
        agePublicKey: z
            .string({ message: "expected an age public key such as age1... (age-keygen -y KEYFILE prints it)" })
            .trim()
            .regex(AGE_RECIPIENT, { message: "expected an age public key such as age1... (age-keygen -y KEYFILE prints it)" }),
        target: backupTarget.default({ path: "/srv/pi-cluster-backups", user: "pi-backup", minFreeMb: 1024 }),
        fullOnCalendar: onCalendar.default("daily"),
        incrementalOnCalendar: onCalendar.default("hourly"),
        // At most 900: the seed's RPO is 15 min.
        binlogShipSeconds: count("seconds between binlog shipments", 60, 10, 900).default(60),
        retentionDays: count("days of backups to keep", 30, 1, 3650).default(30),
        // The target streams the binlog as it is written (RPO about a second, not binlogShipSeconds).
        stream: z.boolean({ message: "expected true (the target streams the binlog continuously) or false (only the shipper sends it)" }).default(true),
        staleAfterSeconds: z
            .strictObject({
                full: count("seconds", 93600, 60, 31 * 86400).default(93600),
                incremental: count("seconds", 7200, 60, 31 * 86400).default(7200),
                binlog: count("seconds", 900, 30, 86400).default(900),
            })
            .default({ full: 93600, incremental: 7200, binlog: 900 }),
    },
    { message: "expected an object with agePublicKey" },
);

/**
 * Monitoring: Prometheus on the load balancer, a node exporter on every Pi, the stack's
 * alerting rules. Off by default for now; `enabled: false` after it was on removes it all.
 */
export const MONITORING_DEFAULTS = { enabled: false, scrapeIntervalSeconds: 15, retentionDays: 15, retentionSizeMb: 1024 };
const monitoring = z.strictObject(
    {
        enabled: z.boolean({ message: "expected true (Prometheus on the load balancer, a node exporter on every Pi) or false" }).default(MONITORING_DEFAULTS.enabled),
        scrapeIntervalSeconds: count("seconds between scrapes", 15, 5, 300).default(MONITORING_DEFAULTS.scrapeIntervalSeconds),
        retentionDays: count("days of metrics to keep", 15, 1, 3650).default(MONITORING_DEFAULTS.retentionDays),
        // Past it the oldest samples go, whatever their age: the load balancer's SD card must not fill.
        retentionSizeMb: count("MB of metrics to keep at most", 1024, 64, 1048576).default(MONITORING_DEFAULTS.retentionSizeMb),
    },
    { message: "expected an object {enabled?, scrapeIntervalSeconds?, retentionDays?, retentionSizeMb?}" },
);

/** Every key with its own check and default; crossFieldProblems checks them together (`schema`). */
export const fields = z
    .strictObject({
        sshUser: z.string().regex(/^[a-z_][a-z0-9_-]*$/, { message: "expected a user name such as pi" }).default("pi"),
        sshPrivateKeyPath: z.string().min(1).optional(),
        sshPrivateKey: z.string().min(1).optional(),
        // Read as a secret (loadConfig) and checked by apiWriteTokenProblem; here only its presence.
        apiWriteToken: z.string().optional(),
        // Read as a secret (loadConfig) and checked by alertWebhookUrlProblem: where Alertmanager
        // posts alerts when monitoring is on.
        alertWebhookUrl: z.string().optional(),
        managementCidr: cidr,
        // Empty (the default) stands for [managementCidr]: an empty list of who may reach SSH
        // would lock the stack itself out of every Pi.
        adminCidrs: z.array(cidr, { message: "expected a list of IPv4 CIDRs such as [\"192.168.254.10/32\"]" }).default([]),
        // A management or admin network wider than /8 (0.0.0.0/0 above all) opens SSH and every
        // internal route to most of the internet: refused unless this says so.
        allowPublicManagement: z.boolean({ message: "expected true or false" }).default(false),
        loadBalancer: host,
        webServers: z.array(webHost, { message: "expected a list of web servers" }).min(1, {
            message: "expected at least one web server",
        }),
        rolloutHealthTimeoutSeconds: healthTimeout.default(60),
        database: databaseHost,
        // Read replicas of the database (GTID replication, seeded from a mariadb-backup
        // stream of the primary). Empty: the database alone, as before.
        dbReplicas: z.array(host, { message: "expected a list of replica Pis [{name, address, hostKey, sshPort?, ramMb?}]" }).default([]),
        // A replica whose lag passes this leaves the app's read set until it is back under it.
        dbReplicaMaxLagSeconds: count("seconds of replication lag", 5, 0, 3600).default(5),
        // With replicas, a write's commit waits this long for a replica's ack (semi-sync), then
        // the database goes on without one (async) until a replica acks again. 0: never waits.
        dbSemiSyncTimeoutMs: count("milliseconds", 1000, 0, 60000).default(1000),
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
        apiRateLimitPerSecond,
        apiRateLimitBurst,
        apiConnectionsPerClient,
        unattendedUpgrades: z.boolean().default(true),
        httpsRedirect: z.boolean({ message: "expected true (port 80 answers 301 to https) or false (port 80 serves the site too)" }).default(true),
        hsts: z.boolean({ message: "expected true (send Strict-Transport-Security on https) or false" }).default(false),
        tlsCertificateMode: z
            .enum(TLS_CERTIFICATE_MODES, { message: `expected ${TLS_CERTIFICATE_MODES.map((m) => JSON.stringify(m)).join(" or ")}` })
            .default("generated"),
        tlsCertificate: z.string({ message: "expected the load balancer's certificate chain in PEM, server certificate first" }).optional(),
        tlsPrivateKey: z.string().min(1).optional(),
        purgeDataOnDestroy: z.boolean().default(false),
        // Per host name; `pi-cluster recover` bumps a host's: every step on it runs again,
        // repairing drift. Apart from the host entries, which lab/lab rewrites.
        reapply: generations("bump it to run every step on this Pi again (`pi-cluster recover` does)", "host name", "pi-web1"),
        // Per replica name, like reapply: bumping a replica's number lets its step seed it
        // again over the data it holds (the restore does, after replacing the database's
        // data). Without it a replica step never replaces a data directory with the app's data.
        reseed: generations("bump it to seed this replica again over its data (scripts/restore.sh does)", "replica name", "pi-db-read1"),
        backup: backup.optional(),
        monitoring: monitoring.default(MONITORING_DEFAULTS),
    });

export type Fields = z.infer<typeof fields>;

export const schema = fields.superRefine(crossFieldProblems);

// The keys each level knows, straight from the schema, for the unknown-key messages.
const KEYS = Object.keys(fields.shape);
const HOST_FIELDS = Object.keys(hostObject.shape);
const NESTED_FIELDS: Record<string, string[]> = {
    backup: Object.keys(backup.shape),
    "backup.target": Object.keys(backupTarget.shape),
    "backup.staleAfterSeconds": ["full", "incremental", "binlog"],
    monitoring: Object.keys(monitoring.shape),
    database: Object.keys(databaseObject.shape),
};

/** The keys the level at `path` knows (the top level, a host, backup and its parts). */
export function knownKeys(path: PropertyKey[]): string[] {
    return path.length === 0 ? KEYS : (NESTED_FIELDS[path.join(".")] ?? HOST_FIELDS);
}
