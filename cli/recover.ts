// Node and full recovery (`npx pi-cluster recover`): brings replaced, wiped or drifted Pis back
// into the cluster with one command.
//
// A replaced Pi (a new SD card, a reflashed one) has a new SSH host key. The stack pins every
// Pi's host key and takes a new key for a new machine: every step on that Pi runs again from
// bare, in order, and a web server is drained from the load balancer first and admitted again
// only once it serves. So recovery is: pin the new key, then `pulumi up`. It also bumps each
// named Pi's entry in the stack config's `reapply` map, so every step on it runs again even
// when its key did not change: that repairs what `pi-cluster verify` reports (a hand-edited
// file, a stopped or disabled service, a firewall rule added by hand, extra DB grants). The
// steps are idempotent, so what did not drift stays as it is.
//
// In order, nothing changed until every check passed:
//   1. the hosts: the names given (or every Pi of the stack with --all), each in the config;
//   2. each Pi answers SSH with its pinned key (or with --host-key's, for the one Pi named);
//   3. the new key pinned, each Pi's reapply entry bumped, then `pulumi up`;
//   4. with --db-data, the archive of MariaDB's data directory (taken from the old database Pi
//      with MariaDB stopped) put in place on the database Pi by a rendered step script
//      (assets/scripts/recover-db-data.sh); what was there is kept beside it, never deleted.
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { ClusterConfig } from "../components/config";
import { piHostKeyProblem } from "../components/config/schema";
import { BACKUP_STATE_DIR, DB_DATA_DIR, DB_DATA_OWNER, STATE_DIR } from "../components/constants";
import { backupUnitName } from "../components/render/backup";
import { renderScript } from "../components/render/shell";
import { configOf, Host, NAMESPACE, Pis, privateKeyFile, rawConfigOf, why } from "./pis";
import { CliError, EXIT } from "./stack";

/** What `pi-cluster recover` takes (cli/main.ts). */
export interface RecoverOptions {
    /** The Pis to recover, by name; empty with `all`. */
    names: string[];
    /** Every Pi of the stack. */
    all: boolean;
    /** The new host key of the one Pi named ("ssh-ed25519 AAAA..."), checked on the Pi itself. */
    hostKey?: string;
    /** A tar.gz of MariaDB's data directory, put in place on the database Pi after the up. */
    dbData?: string;
}

/** A Pi of the config and where it sits there, such as webServers[1]. */
export interface ConfigHost extends Host {
    path: string;
}

/** Every Pi of the config, in the config's order: the LB, the web servers, the database, its replicas. */
export function configHosts(c: ClusterConfig): ConfigHost[] {
    return [
        { ...c.loadBalancer, path: "loadBalancer" },
        ...c.webServers.map((w, i) => ({ ...w, path: `webServers[${i}]` })),
        { ...c.database, path: "database" },
        ...c.dbReplicas.map((r, i) => ({ ...r, path: `dbReplicas[${i}]` })),
    ].map(({ name, address, sshPort, hostKey, path: at }) => ({ name, address, sshPort, hostKey, path: at }));
}

/** The arguments alone, before the stack is opened: a usage error (exit 2) names what is wrong. */
export function checkRecoverArgs(o: RecoverOptions): void {
    if (o.all && o.names.length > 0) throw new CliError("give host names or --all, not both", EXIT.usage);
    if (!o.all && o.names.length === 0) throw new CliError("which host? usage: pi-cluster recover NAME... [--host-key KEY] | --all [--db-data FILE]", EXIT.usage);
    if (o.hostKey !== undefined) {
        if (o.names.length !== 1) throw new CliError("--host-key goes with exactly one host name", EXIT.usage);
        const problem = piHostKeyProblem(o.hostKey);
        if (problem === "format") throw new CliError(`--host-key: expected a public key such as 'ssh-ed25519 AAAA...' (/etc/ssh/ssh_host_ed25519_key.pub on the Pi), got '${o.hostKey}'`, EXIT.usage);
        if (problem === "type") throw new CliError(`--host-key: expected the Pi's ed25519 or ECDSA host key, as its sshd offers no other (/etc/ssh/ssh_host_ed25519_key.pub on the Pi), got a ${o.hostKey.trim().split(" ")[0]} key`, EXIT.usage);
    }
    if (o.dbData !== undefined && !fs.statSync(o.dbData, { throwIfNoEntry: false })?.isFile()) throw new CliError(`--db-data: no such file: ${o.dbData}`, EXIT.usage);
}

/** The Pis a recover acts on (the arguments checked): each name must be one of the stack's Pis. */
export function recoverTargets(hosts: ConfigHost[], o: RecoverOptions, stack: string): ConfigHost[] {
    checkRecoverArgs(o);
    const targets = o.all ? hosts : [...new Set(o.names)].map((n) => hosts.find((h) => h.name === n));
    const unknown = o.names.filter((n) => !hosts.some((h) => h.name === n));
    if (unknown.length > 0) throw new CliError(`no host named ${unknown.map((n) => `'${n}'`).join(", ")} in stack ${stack}; its hosts: ${hosts.map((h) => h.name).join(", ")}`, EXIT.usage);
    if (o.dbData !== undefined && !targets.some((h) => h?.path === "database")) {
        throw new CliError(`--db-data goes with the database Pi (${hosts.find((h) => h.path === "database")?.name}) among the hosts`, EXIT.usage);
    }
    return targets as ConfigHost[];
}

/** "TYPE KEY" of the line ssh-keyscan printed for TYPE, or undefined. */
export function presentedKey(keyscan: string, type: string): string | undefined {
    for (const line of keyscan.split("\n")) {
        const [, t, key] = line.trim().split(/\s+/);
        if (t === type && key) return `${t} ${key}`;
    }
    return undefined;
}

/** The first two words of a public key line (its comment left off). */
const keyOf = (k: string) => k.trim().split(/\s+/).slice(0, 2).join(" ");

/** The next generation of a Pi's reapply entry (absent: 0). */
export function nextReapply(current: unknown): number {
    const n = typeof current === "number" ? current : Number(current ?? 0);
    return (Number.isSafeInteger(n) && n >= 0 ? n : 0) + 1;
}

/** Where the archive goes on the database Pi before the data step moves it into place. */
export const DB_DATA_ARCHIVE = `${STATE_DIR}/recover-db-data.tgz`;

/** The database Pi's data step (assets/scripts/recover-db-data.sh), rendered. */
export function renderDbDataStep(dbName: string): string {
    return renderScript("recover-db-data", {
        STEP: `${dbName}-db-data`,
        ARCHIVE: DB_DATA_ARCHIVE,
        DATADIR: DB_DATA_DIR,
        DB_OWNER: DB_DATA_OWNER,
        BACKUP_STATE: BACKUP_STATE_DIR,
        FULL_UNIT: `${backupUnitName("full")}.service`,
    });
}

function keyscan(h: Host): Promise<string> {
    return new Promise((resolve) => {
        execFile("ssh-keyscan", ["-p", String(h.sshPort), "-t", h.hostKey.split(" ")[0], "-T", "5", h.address], { timeout: 15_000 }, (_e, stdout) => resolve(stdout ?? ""));
    });
}

/** What a recover did. */
export interface RecoverSummary {
    stack: string;
    hosts: string[];
    /** Each Pi's reapply generation now. */
    reapply: Record<string, number>;
    /** The Pi whose new host key was pinned. */
    pinned?: string;
    changes: Record<string, number>;
    dbDataRestored: boolean;
    seconds: number;
}

/**
 * Recovers Pis of `stack` (opened by the caller). `up` runs `pulumi up` with the CLI's
 * progress and resolves to its change counts. Progress goes to stderr.
 */
export async function recover(stack: Stack, o: RecoverOptions, up: () => Promise<Record<string, number>>): Promise<RecoverSummary> {
    const t0 = Date.now();
    const info = (m: string) => process.stderr.write(`recover: ${m}\n`);
    const { raw, secretKey } = rawConfigOf(await stack.getAllConfig());
    let c: ClusterConfig;
    try {
        c = configOf(raw, secretKey);
    } catch (e) {
        throw new CliError(`stack ${stack.name}'s config: ${e instanceof Error ? e.message : String(e)}`, EXIT.usage);
    }
    const targets = recoverTargets(configHosts(c), o, stack.name);

    // Every Pi must present the key it will be pinned to: nothing changes before.
    const presented = await Promise.all(targets.map(async (h) => ({ h, want: keyOf(o.hostKey ?? h.hostKey), got: presentedKey(await keyscan(h), (o.hostKey ?? h.hostKey).split(" ")[0]) })));
    for (const { h, want, got } of presented) {
        if (!got) throw new CliError(`${h.name} (${h.address}:${h.sshPort}) does not answer SSH: power it on and try again`, EXIT.failed);
        if (got !== want) {
            throw new CliError(
                o.hostKey
                    ? `${h.name} presents another host key than --host-key; check the key on the Pi's console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) (presented: ${got})`
                    : `${h.name} presents another host key than the pinned one; check it on the Pi and pass it with --host-key (presented: ${got})`,
                EXIT.failed,
            );
        }
        info(`${h.name} presents ${o.hostKey ? "the new" : "its pinned"} host key`);
    }
    // The new key and every reapply bump in one write of the stack config.
    const set: Record<string, { value: string; secret: boolean }> = {};
    const pinned = o.hostKey !== undefined ? targets[0].name : undefined;
    if (o.hostKey !== undefined) set[`${NAMESPACE}:${targets[0].path}.hostKey`] = { value: keyOf(o.hostKey), secret: false };
    const current = (raw.reapply ?? {}) as Record<string, unknown>;
    const reapply = Object.fromEntries(targets.map((h) => [h.name, nextReapply(current[h.name])]));
    for (const h of targets) set[`${NAMESPACE}:reapply.${h.name}`] = { value: String(reapply[h.name]), secret: false };
    await stack.setAllConfig(set, true);
    if (pinned) info(`pinned the new host key of ${pinned}`);
    for (const h of targets) info(`${h.name}: reapply ${reapply[h.name]}, so every step on it runs again`);
    info(`rebuilding ${targets.map((h) => h.name).join(" ")} with pulumi up`);
    const changes = await up();

    let dbDataRestored = false;
    if (o.dbData !== undefined) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pi-recover-"));
        const pis = new Pis(dir, privateKeyFile(dir, raw, secretKey), c.sshUser);
        try {
            info(`restoring MariaDB's data on ${c.database.name} (${c.database.address}) from ${o.dbData}`);
            const put = await pis.put(c.database, o.dbData, DB_DATA_ARCHIVE);
            if (put.code !== 0) throw new CliError(`copying ${o.dbData} to ${c.database.name} failed: ${why(put)}; the cluster runs on a fresh database, run the recover again`, EXIT.failed);
            const r = await pis.run(c.database, renderDbDataStep(c.database.name), ["restore"], 600_000);
            for (const line of `${r.out}${r.err}`.split("\n").filter(Boolean)) info(line);
            if (r.code !== 0) throw new CliError(`the data step on ${c.database.name} failed: ${why(r)}`, EXIT.failed);
            dbDataRestored = true;
        } finally {
            pis.close([c.database]);
            fs.rmSync(dir, { recursive: true, force: true });
        }
    }
    return { stack: stack.name, hosts: targets.map((h) => h.name), reapply, pinned, changes, dbDataRestored, seconds: (Date.now() - t0) / 1000 };
}
