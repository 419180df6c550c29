// The one place that reads stack config. Everything is validated here, before any
// resource exists, so a bad value fails `pulumi preview` without touching a host.
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { APP_MAX_MEMORY_MB } from "./render/app";
import { HTTPS_PORT } from "./render/firewall";
import { maxConnections } from "./render/mariadb";
import { ApiRateLimit, dashboardApiRequestsPerRefresh } from "./render/nginx";
import { SSH_HOST_KEY_TYPES, SSH_USER_KEY_TYPES } from "./render/sshd";

const NAMESPACE = "pi-cluster";

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
    const base = cidr.split("/")[0];
    const prefix = cidrPrefix(cidr);
    const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
    return ((ipv4ToNumber(base)! & mask) >>> 0) === ((ipv4ToNumber(address)! & mask) >>> 0);
}

/** The widest management or admin network taken without allowPublicManagement. */
export const MIN_MANAGEMENT_PREFIX = 8;

/** The prefix length of a validated CIDR ("10.0.0.0/8" -> 8). */
export function cidrPrefix(cidr: string): number {
    return Number(cidr.split("/")[1]);
}

/** True when a validated CIDR is wider than a management network may be (MIN_MANAGEMENT_PREFIX). */
export function tooWideForManagement(cidr: string): boolean {
    return cidrPrefix(cidr) < MIN_MANAGEMENT_PREFIX;
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
        } else if (!SSH_HOST_KEY_TYPES.includes(h.hostKey.split(" ")[0])) {
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

const byteSize = z.string().regex(/^\d+[KMG]?$/, { message: "expected a size such as 512M" });

/** Mebibytes in a size such as "512M" (a bare number is bytes, as MariaDB reads it). */
export function sizeToMb(size: string): number {
    const m = /^(\d+)([KMG]?)$/.exec(size);
    if (!m) throw new Error(`sizeToMb: not a size: ${size}`);
    const scale = { "": 1 / (1024 * 1024), K: 1 / 1024, M: 1, G: 1024 }[m[2] as "" | "K" | "M" | "G"];
    return Math.ceil(Number(m[1]) * scale);
}

/**
 * What MariaDB may take on the DB Pi, in MB, with the OS beside it. Estimates, not
 * measurements:
 * - the buffer pool takes about 10% more than its size for its control structures
 *   (MariaDB's knowledge base, "InnoDB Buffer Pool");
 * - each connection can hold about 3 MB of per-thread buffers at MariaDB's defaults
 *   (sort 2M, join 256K, read_rnd 256K, read 128K, thread stack 292K);
 * - 512 MB is kept for the rest: MariaDB's default key and Aria page caches are 128 MB
 *   each, which leaves about 256 MB for Raspberry Pi OS Lite, sshd and mariadbd itself.
 */
export function mariadbMemoryMb(bufferPoolSize: string, connections: number): { pool: number; connections: number; reserve: number; total: number } {
    const pool = Math.ceil(sizeToMb(bufferPoolSize) * 1.1);
    const conn = connections * 3;
    const reserve = 512;
    return { pool, connections: conn, reserve, total: pool + conn + reserve };
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

/** What a web server needs, in MB: the app up to PM2's restart limit, and about 256 MB for the OS, Node.js and PM2's daemon. */
export const WEB_MEMORY_MB = APP_MAX_MEMORY_MB + 256;

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

const schema = z
    .strictObject({
        sshUser: z.string().regex(/^[a-z_][a-z0-9_-]*$/, { message: "expected a user name such as pi" }).default("pi"),
        sshPrivateKeyPath: z.string().min(1).optional(),
        sshPrivateKey: z.string().min(1).optional(),
        // Read as a secret (loadConfig) and checked by apiWriteTokenProblem; here only its presence.
        apiWriteToken: z.string().optional(),
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
    })
    .superRefine((c, ctx) => {
        const all = [
            { h: c.loadBalancer, at: ["loadBalancer"] },
            ...c.webServers.map((h, i) => ({ h, at: ["webServers", i] })),
            { h: c.database, at: ["database"] },
            ...c.dbReplicas.map((h, i) => ({ h, at: ["dbReplicas", i] })),
        ];
        if (!c.allowPublicManagement) {
            for (const [value, at] of [[c.managementCidr, ["managementCidr"]], ...c.adminCidrs.map((a, i) => [a, ["adminCidrs", i]] as const)] as const) {
                if (tooWideForManagement(value)) {
                    const prefix = cidrPrefix(value);
                    ctx.addIssue({
                        code: "custom",
                        path: [...at],
                        message:
                            `expected a network no wider than /${MIN_MANAGEMENT_PREFIX}: it may reach SSH and every internal route, so /${prefix} opens them to ` +
                            `${prefix === 0 ? "the whole internet" : "a large part of the internet"}; narrow it, or set pi-cluster:allowPublicManagement to true`,
                    });
                }
            }
        }
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
        const hostNames = [c.loadBalancer.name, ...c.webServers.map((w) => w.name), c.database.name, ...c.dbReplicas.map((r) => r.name)];
        for (const name of Object.keys(c.reapply)) {
            if (!hostNames.includes(name)) {
                ctx.addIssue({
                    code: "custom",
                    path: ["reapply", name],
                    message: `expected the name of a host of the stack (${hostNames.join(", ")}); move a renamed host's entry to its new name, and remove the entry of a host that is gone`,
                });
            }
        }
        const replicaNames = c.dbReplicas.map((r) => r.name);
        for (const name of Object.keys(c.reseed)) {
            if (!replicaNames.includes(name)) {
                ctx.addIssue({
                    code: "custom",
                    path: ["reseed", name],
                    message: `expected the name of a read replica of the stack (${replicaNames.join(", ") || "dbReplicas is empty"}); remove the entry of a replica that is gone or was promoted`,
                });
            }
        }
        // A replica's server id is its address as a number (replicaServerId in render/mariadb.ts).
        const replicaIds = new Map(c.dbReplicas.map((r) => [ipv4ToNumber(r.address), r.name]));
        if (replicaIds.has(c.database.serverId)) {
            ctx.addIssue({
                code: "custom",
                path: ["database", "serverId"],
                message: `expected a server id no replica uses, but ${replicaIds.get(c.database.serverId)} has ${c.database.serverId} (the number of its address)`,
            });
        }
        if (c.webServers.length > 0 && c.webServers.every((w) => w.cordon)) {
            ctx.addIssue({
                code: "custom",
                path: ["webServers"],
                message: "expected at least one web server without cordon: true, or nothing would serve",
            });
        }
        tlsProblems(c, ctx);
        if (c.appPort === c.httpPort) {
            ctx.addIssue({ code: "custom", path: ["appPort"], message: `expected a port other than httpPort (${c.httpPort})` });
        }

        // Two services on one port of one Pi cannot both listen. Each entry is a port the
        // stack gives a service on that Pi; a clash is reported at the later entry, so a
        // host's own sshPort is named rather than the cluster-wide port it collides with.
        const lb = c.loadBalancer;
        clashes(ctx, lb.name, [
            // The LB's firewall accepts 443 from anywhere: SSH there would face the internet.
            { path: ["httpPort"], port: HTTPS_PORT, what: `${HTTPS_PORT}, which the load balancer keeps for HTTPS (open to anyone)` },
            { path: ["httpPort"], port: c.httpPort, what: `pi-cluster:httpPort (${c.httpPort}), where nginx listens` },
            { path: ["loadBalancer", "sshPort"], port: lb.sshPort, what: "" },
        ]);
        c.webServers.forEach((w, i) =>
            clashes(ctx, w.name, [
                { path: ["appPort"], port: c.appPort, what: `pi-cluster:appPort (${c.appPort}), where the app listens` },
                { path: ["webServers", i, "sshPort"], port: w.sshPort, what: "" },
            ]),
        );
        clashes(ctx, c.database.name, [
            { path: ["dbPort"], port: c.dbPort, what: `pi-cluster:dbPort (${c.dbPort}), where MariaDB listens` },
            { path: ["database", "sshPort"], port: c.database.sshPort, what: "" },
        ]);
        c.dbReplicas.forEach((r, i) =>
            clashes(ctx, r.name, [
                { path: ["dbPort"], port: c.dbPort, what: `pi-cluster:dbPort (${c.dbPort}), where MariaDB listens` },
                { path: ["dbReplicas", i, "sshPort"], port: r.sshPort, what: "" },
            ]),
        );

        const connections = maxConnections(c.webServers.length, c.dbPoolSize, c.dbConnectionHeadroom);
        // Checks across fields run on values that failed their own check too (that issue is
        // reported already): a size that is no size has no memory to check.
        const db = byteSize.safeParse(c.innodbBufferPoolSize).success ? mariadbMemoryMb(c.innodbBufferPoolSize, connections) : undefined;
        // A replica serves the same pools and may become the primary: each gets the same check.
        for (const [h, at] of [[c.database, "database"], ...c.dbReplicas.map((r, i) => [r, `dbReplicas[${i}]`] as const)] as const) {
            if (db && db.total > h.ramMb) {
                ctx.addIssue({
                    code: "custom",
                    params: { whole: true },
                    path: ["innodbBufferPoolSize"],
                    message:
                        `expected MariaDB to fit in ${h.name}'s ${h.ramMb} MB (pi-cluster:${at}.ramMb), but it needs ${db.total} MB: ` +
                        `${db.pool} for the ${c.innodbBufferPoolSize} buffer pool and its structures, ${db.connections} for ${connections} connections at 3 MB, ` +
                        `${db.reserve} for the OS and MariaDB's other caches; lower innodbBufferPoolSize or set the Pi's real ramMb`,
                });
            }
        }
        // A limit one dashboard tab trips would show the cluster as failing every refresh.
        const perRefresh = dashboardApiRequestsPerRefresh(c.webServers.length);
        const webs = c.webServers.length === 1 ? "1 web server's" : `${c.webServers.length} web servers'`;
        const tab = `one dashboard tab sends ${perRefresh} /api/ requests at once (stub_status and ${webs} status)`;
        if (c.apiRateLimitBurst + 1 < perRefresh) {
            ctx.addIssue({ code: "custom", path: ["apiRateLimitBurst"], message: `expected at least ${perRefresh - 1}: ${tab}, and nginx serves the burst + 1 at once` });
        }
        if (c.apiConnectionsPerClient < perRefresh) {
            ctx.addIssue({ code: "custom", path: ["apiConnectionsPerClient"], message: `expected at least ${perRefresh}: ${tab}` });
        }
        if (c.apiRateLimitPerSecond * c.dashboardRefreshSeconds < perRefresh) {
            ctx.addIssue({
                code: "custom",
                path: ["apiRateLimitPerSecond"],
                message: `expected at least ${Math.ceil(perRefresh / c.dashboardRefreshSeconds)}: ${tab} every ${c.dashboardRefreshSeconds} s (pi-cluster:dashboardRefreshSeconds)`,
            });
        }
        if (c.backup) backupProblems(c, ctx);
        c.webServers.forEach((w, i) => {
            if (w.ramMb < WEB_MEMORY_MB) {
                ctx.addIssue({
                    code: "custom",
                    path: ["webServers", i, "ramMb"],
                    message: `expected at least ${WEB_MEMORY_MB} MB on a web server: PM2 lets the app grow to ${APP_MAX_MEMORY_MB} MB before restarting it, and the OS, Node.js and PM2 take about 256 MB`,
                });
            }
        });
    });

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

// The certificate is public and checked here; the key is a secret, checked once known (parseConfig).
function tlsProblems(c: { tlsCertificateMode: TlsCertificateMode; tlsCertificate?: string; tlsPrivateKey?: string }, ctx: z.RefinementCtx): void {
    const set = "(pulumi config set tlsCertificate -- \"$(cat lb.crt)\"; pulumi config set --secret tlsPrivateKey -- \"$(cat lb.key)\")";
    if (c.tlsCertificateMode === "generated") {
        for (const key of ["tlsCertificate", "tlsPrivateKey"] as const) {
            if (c[key] !== undefined) {
                ctx.addIssue({ code: "custom", params: { whole: true }, path: [key], message: `expected no ${key} with tlsCertificateMode "generated" (the load balancer makes its own); set tlsCertificateMode to "supplied" to use yours` });
            }
        }
        return;
    }
    if (c.tlsCertificate === undefined) {
        ctx.addIssue({ code: "custom", params: { whole: true }, path: ["tlsCertificate"], message: `expected the certificate chain in PEM with tlsCertificateMode "supplied" ${set}` });
    } else {
        const chain = parseCertificateChain(c.tlsCertificate);
        if (typeof chain === "string") {
            ctx.addIssue({ code: "custom", params: { whole: true }, path: ["tlsCertificate"], message: chain });
        } else if (new Date(chain[0].validTo).getTime() <= Date.now()) {
            ctx.addIssue({ code: "custom", params: { whole: true }, path: ["tlsCertificate"], message: `expected a certificate that has not expired, but it expired on ${new Date(chain[0].validTo).toISOString()}` });
        }
    }
    if (c.tlsPrivateKey === undefined) {
        ctx.addIssue({ code: "custom", params: { whole: true }, path: ["tlsPrivateKey"], message: `expected the certificate's private key as a secret with tlsCertificateMode "supplied" ${set}` });
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

function backupProblems(c: { backup?: z.infer<typeof backup>; database: { address: string }; loadBalancer: { address: string }; webServers: { address: string }[] }, ctx: z.RefinementCtx): void {
    const b = c.backup!;
    const host = b.target.host;
    if (host === c.database.address) {
        ctx.addIssue({ code: "custom", path: ["backup", "target", "host"], message: "expected a host other than the database Pi: a lost DB disk must not lose its backups" });
    }
    const inCluster = host === undefined || [c.loadBalancer.address, ...c.webServers.map((w) => w.address)].includes(host);
    if (!inCluster && b.target.hostKey === undefined) {
        ctx.addIssue({
            code: "custom",
            params: { whole: true },
            path: ["backup", "target", "hostKey"],
            message: `expected the SSH host key of ${host}, which is not a Pi of the cluster; get it from a network you trust with \`ssh-keyscan -t ed25519 ${host} | cut -d' ' -f2-\``,
        });
    }
    if (b.staleAfterSeconds.binlog < b.binlogShipSeconds) {
        ctx.addIssue({
            code: "custom",
            path: ["backup", "staleAfterSeconds", "binlog"],
            message: `expected at least backup.binlogShipSeconds (${b.binlogShipSeconds}): the shipper runs only that often`,
        });
    }
}

interface Listener {
    path: (string | number)[];
    port: number;
    /** How a later clash names this port; unused for the last entry. */
    what: string;
}

function clashes(ctx: z.RefinementCtx, host: string, listeners: Listener[]): void {
    const seen = new Map<number, Listener>();
    for (const l of listeners) {
        const first = seen.get(l.port);
        if (first) {
            // The value is given here, as a defaulted sshPort has none in the raw config.
            ctx.addIssue({ code: "custom", params: { whole: true }, path: l.path, message: `expected a port other than ${first.what} on ${host}, got ${l.port}` });
        } else {
            seen.set(l.port, l);
        }
    }
}

// The keys each level knows, straight from the schema, for the unknown-key messages.
const KEYS = Object.keys(schema.shape);
const HOST_FIELDS = Object.keys(hostObject.shape);
const NESTED_FIELDS: Record<string, string[]> = {
    backup: Object.keys(backup.shape),
    "backup.target": Object.keys(backupTarget.shape),
    "backup.staleAfterSeconds": ["full", "incremental", "binlog"],
    database: Object.keys(databaseObject.shape),
};

type Parsed = z.infer<typeof schema>;

export interface ClusterConfig extends Omit<Parsed, "sshPrivateKey" | "sshPrivateKeyPath" | "apiWriteToken" | "tlsPrivateKey"> {
    /** The SSH private key's text, always a secret. */
    sshPrivateKey: pulumi.Output<string>;
    /** The bearer token API writes need, a secret; unset, the stack generates one. */
    apiWriteToken?: pulumi.Output<string>;
    /** The supplied TLS certificate's key, always a secret; set only with tlsCertificateMode "supplied". */
    tlsPrivateKey?: pulumi.Output<string>;
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
 * Thrown for bad stack config; the message names every bad key. A RunError, so Pulumi
 * prints just the message, not a stack trace. Its stack is that message too, with no
 * frames: Pulumi's runner formats every uncaught error's stack for its telemetry, and
 * source-mapping those frames took 30 s of a 37 s failed preview here (5.5 s without).
 */
export class ConfigError extends pulumi.RunError {
    constructor(message: string) {
        super(message);
        Object.defineProperty(this, "stack", { value: `${this.name}: ${message}`, configurable: true, writable: true });
    }
}

function formatPath(p: PropertyKey[]): string {
    return p.reduce<string>((acc, seg) => (typeof seg === "number" ? `${acc}[${seg}]` : `${acc}.${String(seg)}`), `${NAMESPACE}:`).replace(":.", ":");
}

function editDistance(a: string, b: string): number {
    let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
        const row = [i];
        for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
        prev = row;
    }
    return prev[b.length];
}

/** The known key a typo most likely meant, if one is close. */
function closestKey(key: string, known: string[]): string | undefined {
    const scored = known
        .map((k) => ({ k, d: editDistance(key.toLowerCase(), k.toLowerCase()) }))
        .filter(({ k, d }) => d <= Math.max(2, Math.floor(k.length / 4)))
        .sort((x, y) => x.d - y.d);
    return scored[0]?.k;
}

// The value of an unknown key is never shown: it may be a secret set under a mistyped name.
function unknownKey(path: PropertyKey[], key: string): string {
    const known = path.length === 0 ? KEYS : (NESTED_FIELDS[path.join(".")] ?? HOST_FIELDS);
    const near = closestKey(key, known);
    const expected = path.length === 0 ? "the keys are listed in Pulumi.yaml" : `expected one of ${known.join(", ")}`;
    return `  ${formatPath([...path, key])}: unknown key${near ? `, did you mean ${near}?` : `; ${expected}`}`;
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
function deployKeyProblem(key: string, user: string): string | undefined {
    const type = privateKeyType(key);
    const make = `make one with \`ssh-keygen -t ed25519\` and add its .pub to ~${user}/.ssh/authorized_keys on every Pi first`;
    if (type === undefined) return `expected an SSH private key whose type can be read (OpenSSH format, or unencrypted PEM); ${make}`;
    if (!SSH_USER_KEY_TYPES.includes(type)) return `expected an ed25519 or ECDSA key, as the Pis' sshd accepts no other, got an ${type} key; ${make}`;
    return undefined;
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
    if (!result.success) {
        const lines = result.error.issues.flatMap((i) => {
            if (i.code === "unrecognized_keys") return i.keys.map((k) => unknownKey(i.path, k));
            const own = i.code === "custom" && (i as { params?: { whole?: boolean } }).params?.whole;
            const got = own ? "" : `, got ${describe(valueAt(raw, i.path))}`;
            return `  ${formatPath(i.path)}: ${i.message}${got}`;
        });
        throw new ConfigError(`invalid stack config:\n${lines.join("\n")}`);
    }
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
): ClusterConfig {
    const { sshPrivateKey: _secret, sshPrivateKeyPath, apiWriteToken: _token, tlsPrivateKey: _tls, ...parsed } = parseSettings(raw, {
        sshPrivateKey: !!secretKey,
        tlsPrivateKey: !!tlsKey,
    });
    const rest = {
        ...parsed,
        adminCidrs: parsed.adminCidrs.length > 0 ? parsed.adminCidrs : [parsed.managementCidr],
        ...(tlsKey ? { tlsPrivateKey: checkedTlsKey(tlsKey, parsed.tlsCertificate!) } : {}),
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

/** Keys read only with getSecret, so their values are secret from the start. */
const SECRET_KEYS = ["sshPrivateKey", "apiWriteToken", "tlsPrivateKey"];

export function loadConfig(): ClusterConfig {
    const cfg = new pulumi.Config(NAMESPACE);
    return parseConfig(rawStackConfig(), cfg.getSecret("sshPrivateKey"), cfg.getSecret("apiWriteToken"), cfg.getSecret("tlsPrivateKey"));
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
