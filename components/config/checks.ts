// The checks across keys, run after each key passed its own: hosts (names, addresses, the
// management network), ports that would clash on one Pi, memory against each Pi's RAM, the
// API limits against the dashboard's polling, TLS and backups.
import { z } from "zod";
import { APP_MAX_MEMORY_MB } from "../render/app";
import { HTTPS_PORT } from "../render/firewall";
import { maxConnections } from "../render/mariadb";
import { dashboardApiRequestsPerRefresh } from "../render/nginx";
import { parseCertificateChain } from "./keys";
import { cidrContains, cidrPrefix, ipv4ToNumber, MIN_MANAGEMENT_PREFIX, tooWideForManagement } from "./network";
import type { Fields, TlsCertificateMode } from "./schema";
import { byteSize, mariadbMemoryMb, WEB_MEMORY_MB } from "./sizes";

/** Adds an issue to `ctx` for each problem across the keys of `c`. */
export function crossFieldProblems(c: Fields, ctx: z.RefinementCtx): void {
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

function backupProblems(c: { backup?: Fields["backup"]; database: { address: string }; loadBalancer: { address: string }; webServers: { address: string }[] }, ctx: z.RefinementCtx): void {
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
