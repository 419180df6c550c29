// The promotion's other decisions, pure: whether the lost database can be fenced off from
// every web server, the stack config that names the replica the database, and what the
// Pis get before the next `pulumi up` (the same text that up renders, so it changes none of
// it again: no second restart).
import { appMetricsPortOf, topologyOf } from "../../components/cluster";
import { ClusterConfig } from "../../components/config";
import { serverCnf } from "../../components/database";
import { renderAppEnv } from "../../components/render/app";
import { renderDbClients, renderFirewall, roleFirewall } from "../../components/render/firewall";
import { replicaServerId } from "../../components/render/mariadb";
import { fileText, renderScript } from "../../components/render/shell";
import { drainLeaseSeconds, renderLbMember } from "../../components/webServer";
import {
    APP_ENV_FILE, APP_SERVICE, APP_USER, DB_CA_FILE, DB_CLIENTS_FILE, DB_NAME, DB_USER, FIREWALL_RULESET, REPL_USER, SERVER_CNF,
} from "../../components/constants";

/** What a web server saw when it tried the lost database's MariaDB port. */
export interface Probe {
    name: string;
    /** A cordoned server is out of the load balancer: it serves no writes. */
    cordoned: boolean;
    result: "answers" | "silent" | "unreachable";
    detail: string;
}

export type FencePlan = { fence: string[]; notes: string[] } | { refuse: string };

/**
 * The web servers to fence. The lost database must be silent from every one of them (they
 * are the only hosts its firewall lets in on that port), and every one that serves must
 * be reachable to be fenced, unless allowUnfenced (the operator knows it is powered off).
 */
export function fencePlan(probes: Probe[], lost: { name: string; address: string; port: number }, allowUnfenced: boolean): FencePlan {
    const alive = probes.filter((p) => p.result === "answers");
    if (alive.length > 0) {
        return {
            refuse: `${lost.name} (${lost.address}) answers on port ${lost.port} from ${alive.map((p) => p.name).join(", ")}: it is alive, and promoting now would leave two writable databases. Power it off or stop its MariaDB, then run promote again`,
        };
    }
    const notes: string[] = [];
    const unreachable = probes.filter((p) => p.result === "unreachable");
    const serving = unreachable.filter((p) => !p.cordoned);
    if (serving.length > 0) {
        const list = serving.map((p) => `${p.name} (${p.detail})`).join(", ");
        if (!allowUnfenced) {
            return { refuse: `cannot reach ${list} to fence ${lost.name} off there: it could still take writes from it if it came back. Bring it back, or pass --allow-unfenced if it is powered off` };
        }
        notes.push(`not fenced (--allow-unfenced): ${list}`);
    }
    for (const p of unreachable.filter((x) => x.cordoned)) notes.push(`not fenced: ${p.name} is cordoned (out of the load balancer) and cannot be reached (${p.detail})`);
    return { fence: probes.filter((p) => p.result !== "unreachable").map((p) => p.name), notes };
}

type Raw = Record<string, unknown>;
type HostEntry = { name: string; address: string; [k: string]: unknown };

const isHost = (v: unknown): v is HostEntry => typeof v === "object" && v !== null && typeof (v as HostEntry).name === "string" && typeof (v as HostEntry).address === "string";

/** `m` without the given keys, or undefined when nothing is left and `m` was absent. */
function without(m: unknown, names: string[]): Record<string, unknown> | undefined {
    if (m === undefined) return undefined;
    return Object.fromEntries(Object.entries(m as Record<string, unknown>).filter(([k]) => !names.includes(k)));
}

/**
 * The stack config (the `pi-cluster:` keys, namespace left off) with `promoted` as the
 * database: its entry moves from dbReplicas to database, with its own server id (its
 * replica id, so it keeps its GTID domain); the lost database leaves the config, and its
 * reapply entry with it; the promoted one's reseed entry goes (it is no replica now).
 * Returns every key, changed or not; `lost` names the database it replaces.
 */
export function promotedConfig(raw: Raw, promoted: string): { config: Raw; lost: string } {
    if (!isHost(raw.database)) throw new Error("the stack config has no database");
    const replicas = Array.isArray(raw.dbReplicas) ? raw.dbReplicas.filter(isHost) : [];
    const entry = replicas.find((r) => r.name === promoted);
    if (!entry) throw new Error(`${promoted} is not a replica of the stack (dbReplicas: ${replicas.map((r) => r.name).join(", ") || "none"})`);
    const lost = raw.database.name;
    const config: Raw = { ...raw, database: { ...entry, serverId: replicaServerId(entry.address) } };
    const rest = replicas.filter((r) => r.name !== promoted);
    if (rest.length > 0) config.dbReplicas = rest;
    else delete config.dbReplicas;
    for (const [key, gone] of [["reapply", [lost]], ["reseed", [lost, promoted]]] as const) {
        const m = without(raw[key], [...gone]);
        if (m === undefined) delete config[key];
        else config[key] = m;
    }
    return { config, lost };
}

/** The config keys promote rewrites: set these values, remove the keys set to undefined. */
export const REWRITTEN_KEYS = ["database", "dbReplicas", "reapply", "reseed"] as const;

const PEM = /-----BEGIN CERTIFICATE-----\n[\s\S]*?\n-----END CERTIFICATE-----\n?/g;

/**
 * The web servers' bundle of database CAs after the promotion, from the one they have: that
 * one is the database's CA, then each replica's in dbReplicas order (PiCluster's
 * dbCaBundle), and the new one is the promoted replica's, then the remaining replicas'.
 */
export function caBundleAfter(bundle: string, oldReplicas: string[], newOrder: string[]): string {
    const pems = (bundle.match(PEM) ?? []).map((p) => p.trimEnd() + "\n");
    if (pems.length !== 1 + oldReplicas.length) {
        throw new Error(`the web servers' database CA bundle holds ${pems.length} certificate(s), expected ${1 + oldReplicas.length} (the database's and ${oldReplicas.length} replica(s)'); run pulumi up once before promoting`);
    }
    return newOrder
        .map((name) => {
            const i = oldReplicas.indexOf(name);
            if (i < 0) throw new Error(`${name} was no replica, so its CA is not in the bundle`);
            return pems[1 + i];
        })
        .join("");
}

/** Where the scripts go and what they carry. */
export interface PromotionScripts {
    /** The promoted Pi's promote-db.sh. */
    db: string;
    /** Each web server's promote-web.sh (cordoned ones too: they are fenced, not switched). */
    webs: { name: string; cordoned: boolean; script: string }[];
    /** The load balancer's drain and admit of each serving web server (lb-member.sh). */
    lb: { name: string; drain: string; admit: string }[];
}

/**
 * The scripts of a promotion, rendered from the config after it (`c`, as `pulumi up` will
 * read it), the lost database's address, and the web servers' CA bundle before it.
 */
export function renderPromotion(c: ClusterConfig, lostAddress: string, oldBundle: string, oldReplicas: string[]): PromotionScripts {
    const t = topologyOf(c);
    const db = c.database;
    const bundle = caBundleAfter(oldBundle, oldReplicas, [db.name, ...c.dbReplicas.map((r) => r.name)]);
    const dbScript = renderScript("promote-db", {
        STEP: `${db.name}-promote`,
        OWN_ADDRESS: db.address,
        REPL_USER,
        SERVER_CNF,
        SERVER_CNF_TEXT: fileText(
            serverCnf({
                address: db.address,
                port: c.dbPort,
                innodbBufferPoolSize: c.innodbBufferPoolSize,
                innodbLogFileSize: c.innodbLogFileSize,
                binlog: c.backup !== undefined || c.dbReplicas.length > 0,
                replica: false,
                serverId: db.serverId,
            }),
        ),
        RULESET: FIREWALL_RULESET,
        RULESET_TEXT: fileText(renderFirewall(roleFirewall("db", t, db.sshPort))),
        CLIENTS_FILE: DB_CLIENTS_FILE,
        CLIENTS_TEXT: fileText(renderDbClients(t.webAddresses, c.dbPort)),
    });
    const webs = c.webServers.map((w) => ({
        name: w.name,
        cordoned: w.cordon,
        script: renderScript("promote-web", {
            STEP: `${w.name}-promote`,
            LOST_ADDRESS: lostAddress,
            DB_PORT: c.dbPort,
            RULESET: FIREWALL_RULESET,
            RULESET_TEXT: fileText(renderFirewall({ ...roleFirewall("web", t, w.sshPort), fence: [lostAddress] })),
            ENV_FILE: APP_ENV_FILE,
            // As WebServer renders it.
            ENV_TEXT: fileText(
                renderAppEnv({
                    nodeName: w.name,
                    dbHost: db.address,
                    dbPort: c.dbPort,
                    dbName: DB_NAME,
                    dbUser: DB_USER,
                    dbPoolSize: c.dbPoolSize,
                    corsOrigins: c.corsOrigins,
                    dbTls: { caFile: DB_CA_FILE, serverName: db.name },
                    dbReplicas: c.dbReplicas.map((r) => ({ name: r.name, address: r.address, port: c.dbPort })),
                    dbReplicaMaxLagSeconds: c.dbReplicaMaxLagSeconds,
                    metricsPort: appMetricsPortOf(c),
                }),
            ),
            DB_CA_FILE,
            DB_CA_TEXT: fileText(bundle),
            APP_USER,
            APP_SERVICE,
            PORT: c.appPort,
            HEALTH_TIMEOUT: c.rolloutHealthTimeoutSeconds,
        }),
    }));
    const member = (w: ClusterConfig["webServers"][number], mode: "drain" | "admit") =>
        renderLbMember({
            STEP: `${w.name}-${mode}`,
            MODE: mode,
            NODE: w.name,
            SERVER: `${w.address}:${c.appPort}`,
            HTTP_PORT: c.httpPort,
            CORDONED: false,
            LEASE_SECONDS: drainLeaseSeconds(c.rolloutHealthTimeoutSeconds),
            // Not the rollout the next up admits, so that up drains and admits it once more
            // (its app step changes nothing, so nothing restarts).
            ROLLOUT: `promotion-of-${db.name}`,
        });
    const lb = c.webServers.filter((w) => !w.cordon).map((w) => ({ name: w.name, drain: member(w, "drain"), admit: member(w, "admit") }));
    return { db: dbScript, webs, lb };
}

/**
 * The web servers in the order their apps restart: in two halves, so that while one half is
 * drained and restarting, the other serves (reads from the replicas, and the load balancer
 * never runs out of servers). One server alone is one wave.
 */
export function restartWaves(names: string[]): string[][] {
    if (names.length <= 1) return [names];
    const half = Math.ceil(names.length / 2);
    return [names.slice(0, half), names.slice(half)];
}
