// Promotes a read replica when the database Pi is lost. It gathers facts over SSH, calls the
// pure decisions (scripts/promote/: replicas.ts, plan.ts, state.ts) and acts, in an order that never drops
// an acknowledged write:
//   1. every web server tries the lost database's MariaDB port (alive: refuse);
//   2. every web server is fenced: the lost database cut off both ways in its firewall,
//      held until the next `pulumi up` (a web server that cannot be fenced: refuse), so
//      nothing written from now on can reach it, even if it comes back;
//   3. every replica says how much it received and applied (nothing is stopped: with GTID,
//      MariaDB discards a relay log when replication restarts after both threads stopped);
//      the most advanced is chosen (a named one that received less is refused);
//   4. it must apply its whole relay log with a running SQL thread (else: refuse, the
//      replicas left as they were, the fence in place); the promote action stops its IO
//      thread and checks again that it received what was compared and applied it all;
//   5. the replica becomes the database (writable, its own server id and GTID domain);
//   6. the web servers switch to it, half of them at a time, drained by the load balancer,
//      so requests never fail for want of a server (the first half is drained and switched
//      while the replica turns writable, and admitted once it is);
//   7. the lost database's steps leave the state, and the config names the replica the
//      database. The next `pulumi up` finds the Pis as it renders them.
// `npx pi-cluster promote [REPLICA] [options]` runs it (cli/main.ts has the options); a
// refusal is exit 1 with what to do next, changing nothing the message does not name.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack } from "@pulumi/pulumi/automation";
import { fileVar } from "../components/render/shell";
import { fencePlan, Probe, promotedConfig, renderPromotion, restartWaves, REWRITTEN_KEYS } from "../scripts/promote/plan";
import { catchUpState, chooseReplica, parseStatusOutput, ReplicaFacts } from "../scripts/promote/replicas";
import { Deployment, withoutLostDatabase } from "../scripts/promote/state";
import { configOf, Host, NAMESPACE, Pis, privateKeyFile, rawConfigOf, why } from "./pis";
import { CliError, EXIT } from "./stack";

/** A refusal: nothing the message does not name was changed (exit 1, "refused: ..."). */
class Refused extends CliError {
    constructor(message: string) {
        super(`refused: ${message}`, EXIT.failed);
    }
}

/** What `pi-cluster promote` takes (cli/main.ts). */
export interface PromoteOptions {
    /** The replica to promote; default: the one that received the most. */
    replica?: string;
    /** Promote `replica` even when another received more (those writes are lost). */
    allowBehind: boolean;
    /** Choose among the replicas that answer when another cannot be asked. */
    allowUnreachableReplicas: boolean;
    /** Go on when a web server cannot be reached to fence it (it is powered off). */
    allowUnfenced: boolean;
    /** How long the chosen replica may take to apply its relay log. */
    catchUpSeconds: number;
}

/** The web servers' CA bundle as the last up rendered it: the app step's script in the state. */
function caBundleOf(d: Deployment, webs: string[]): string {
    for (const w of webs) {
        const r = (d.deployment.resources ?? []).find((x) => x.type === "command:remote:Command" && x.urn.endsWith(`::${w}-app`));
        const stdin = (r?.inputs as { stdin?: unknown } | undefined)?.stdin;
        const text = typeof stdin === "string" ? fileVar(stdin, "DB_CA_TEXT") : undefined;
        if (text !== undefined) return text;
    }
    throw new Refused(`no web server's app step in the state carries DB_CA_TEXT; run pulumi up once before promoting`);
}

async function writeConfig(stack: Stack, config: Record<string, unknown>): Promise<void> {
    const remove = REWRITTEN_KEYS.filter((k) => config[k] === undefined).map((k) => `${NAMESPACE}:${k}`);
    const set = Object.fromEntries(
        REWRITTEN_KEYS.filter((k) => config[k] !== undefined).map((k) => [`${NAMESPACE}:${k}`, { value: JSON.stringify(config[k]), objectValue: config[k], secret: false }]),
    );
    // One call for the structured values ("pulumi config --json" shape), one for the removals.
    await stack.setAllConfigJson(JSON.stringify(set));
    if (remove.length > 0) await stack.removeAllConfig(remove);
}

/** What a promotion did, with its phase times. */
export interface Summary {
    stack: string;
    lost: string;
    promoted: string;
    notes: string[];
    /** Seconds from the start of the command. */
    writableAfterSeconds: number;
    firstWaveServingAfterSeconds: number;
    allServingAfterSeconds: number;
    seconds: number;
}

/** Promotes a replica of `stack` (opened by the caller); progress goes to stderr. */
export async function promote(stack: Stack, o: PromoteOptions): Promise<Summary> {
    const catchUpSeconds = o.catchUpSeconds;
    const t0 = Date.now();
    const at = () => Math.round((Date.now() - t0) / 100) / 10;
    const info = (m: string) => process.stderr.write(`promote: [${at().toFixed(1)} s] ${m}\n`);
    const stackName = stack.name;

    const statePromise = stack.exportStack();
    const { raw, secretKey } = rawConfigOf(await stack.getAllConfig());
    const c = configOf(raw, secretKey);
    const lost = c.database;
    if (c.dbReplicas.length === 0) throw new Refused(`stack ${stackName} has no read replica to promote`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pi-promote-"));
    const pis = new Pis(dir, privateKeyFile(dir, raw, secretKey), c.sshUser);
    const all: Host[] = [c.loadBalancer, ...c.webServers, ...c.dbReplicas];
    const replicaHost = new Map(c.dbReplicas.map((r) => [r.name, r]));
    const notes: string[] = [];
    try {
        // The scripts are rendered first for a promotion of the first replica: the probe,
        // fence and status actions carry nothing that depends on the choice.
        const state = await statePromise;
        const bundle = caBundleOf(state, c.webServers.filter((w) => !w.cordon).map((w) => w.name));
        const render = (name: string) => {
            const next = promotedConfig(raw, name);
            return { next, scripts: renderPromotion(configOf(next.config, secretKey), lost.address, bundle, c.dbReplicas.map((r) => r.name)) };
        };
        const first = render(c.dbReplicas[0].name);
        info(`${lost.name} (${lost.address}) is the database; asking ${c.webServers.length} web server(s) whether it answers`);
        const probes = await Promise.all(
            c.webServers.map(async (w): Promise<Probe> => {
                const r = await pis.run(w, first.scripts.webs.find((x) => x.name === w.name)!.script, ["probe"], 15_000);
                if (r.code !== 0) return { name: w.name, cordoned: w.cordon, result: "unreachable", detail: why(r) };
                const { vars } = parseStatusOutput(r.out);
                return { name: w.name, cordoned: w.cordon, result: vars.probe === "answers" ? "answers" : "silent", detail: vars.why ?? "" };
            }),
        );
        for (const p of probes) info(`${p.name}: ${lost.name} ${p.result === "answers" ? "answers" : p.result === "silent" ? `is silent (${p.detail})` : `? (${p.name} unreachable: ${p.detail})`}`);
        const fence = fencePlan(probes, { name: lost.name, address: lost.address, port: c.dbPort }, o.allowUnfenced);
        if ("refuse" in fence) throw new Refused(fence.refuse);
        notes.push(...fence.notes);

        // The fence first: from here on no web server can write to the lost database, even if
        // it comes back, so nothing it acknowledges can be missing from the replicas below.
        // The fenced ruleset is each web server's for the new topology, whichever replica is
        // promoted (the lost database is in none).
        const fenced = await Promise.all(
            fence.fence.map(async (name) => ({ name, r: await pis.run(c.webServers.find((w) => w.name === name)!, first.scripts.webs.find((w) => w.name === name)!.script, ["fence"], 15_000) })),
        );
        const unfenced = fenced.filter((f) => f.r.code !== 0);
        const fencedNames = fenced.filter((f) => f.r.code === 0).map((f) => f.name);
        const stayFenced = `${fencedNames.join(", ") || "no web server"} stay${fencedNames.length === 1 ? "s" : ""} fenced off from ${lost.name} until the next pulumi up`;
        if (unfenced.length > 0) throw new Refused(`could not fence ${lost.name} off on ${unfenced.map((f) => `${f.name} (${why(f.r)})`).join(", ")}. Nothing was promoted; ${stayFenced}`);
        info(`fenced ${lost.name} off on ${fence.fence.join(", ") || "no web server"}`);

        // Every replica says what it received and applied. Nothing is stopped: with GTID,
        // MariaDB discards a relay log when replication starts after both threads stopped.
        const facts = await Promise.all(
            c.dbReplicas.map(async (h): Promise<ReplicaFacts> => {
                const r = await pis.run(h, first.scripts.db, ["status"], 15_000);
                if (r.code !== 0) return { name: h.name, unreachable: why(r) };
                const { status, vars } = parseStatusOutput(r.out);
                return { name: h.name, status, gtidSlavePos: vars.gtid_slave_pos };
            }),
        );
        for (const f of facts) info(`${f.name}: ${f.unreachable ? `unreachable (${f.unreachable})` : `received ${f.status?.Master_Log_File}:${f.status?.Read_Master_Log_Pos} (GTID ${f.status?.Gtid_IO_Pos || "-"}), applied ${f.gtidSlavePos}`}`);
        const choice = chooseReplica(facts, lost.address, { requested: o.replica, allowBehind: o.allowBehind, allowUnreachable: o.allowUnreachableReplicas });
        if ("refuse" in choice) throw new Refused(`${choice.refuse}. Nothing was promoted; ${stayFenced}`);
        notes.push(...choice.notes);
        for (const n of notes) info(n);
        const promoted = choice.chosen;
        const target = replicaHost.get(promoted)!;
        const { next, scripts } = promoted === c.dbReplicas[0].name ? first : render(promoted);
        info(`promoting ${promoted}${o.replica ? "" : " (it received the most)"}`);

        // Everything it received is applied, or nothing is promoted.
        let applied = "";
        let received = "";
        const deadline = Date.now() + catchUpSeconds * 1000;
        for (;;) {
            const r = await pis.run(target, scripts.db, ["status"], 15_000);
            if (r.code !== 0) throw new Refused(`${promoted}: cannot read its replication status (${why(r)})`);
            const { status, vars } = parseStatusOutput(r.out);
            const s = catchUpState(status);
            if (s.state === "failed") throw new Refused(`${promoted} has not applied its whole relay log: ${s.reason}. Nothing was promoted; ${stayFenced}`);
            if (s.state === "caught-up") {
                applied = vars.gtid_slave_pos;
                received = `${status.Master_Log_File}:${status.Read_Master_Log_Pos}`;
                if (s.note) {
                    notes.push(s.note);
                    info(s.note);
                }
                break;
            }
            if (Date.now() > deadline) {
                throw new Refused(`${promoted} has not applied its relay log within ${catchUpSeconds} s (${s.detail}). Nothing was promoted; ${stayFenced}; run promote again (--catch-up-seconds N waits longer)`);
            }
            await new Promise((r) => setTimeout(r, 200));
        }
        info(`${promoted} applied everything it received (GTID ${applied})`);

        // The web servers follow, half at a time: drained, switched, admitted. The first half is
        // drained and switched while the replica turns writable: drained, it takes no request
        // until it is admitted, and it is admitted only once the database is writable.
        let firstWaveServingAfterSeconds = 0;
        const serving = c.webServers.filter((w) => !w.cordon).map((w) => w.name);
        const waves = restartWaves(serving);
        const lb = (name: string, mode: "drain" | "admit") => pis.run(c.loadBalancer, scripts.lb.find((x) => x.name === name)![mode], ["apply"], 120_000);
        const drainAndSwitch = async (wave: string[]) => {
            for (const name of wave) {
                const r = await lb(name, "drain");
                if (r.code !== 0) throw new Error(`the load balancer could not drain ${name}: ${why(r)}; run pulumi up to finish`);
            }
            const switched = await Promise.all(wave.map(async (name) => ({ name, r: await pis.run(c.webServers.find((w) => w.name === name)!, scripts.webs.find((w) => w.name === name)!.script, ["switch"], 120_000) })));
            for (const s of switched) if (s.r.code !== 0) throw new Error(`${s.name} did not switch to ${promoted}: ${why(s.r)}; it stays drained (its lease puts it back once healthy); run pulumi up to finish`);
        };
        const firstWave = drainAndSwitch(waves[0]);
        // Settled either way before the promotion's own outcome is looked at (no unhandled rejection).
        const firstWaveDone = firstWave.then(
            () => undefined,
            (e: Error) => e,
        );
        const p = await pis.run(target, scripts.db, ["promote", received], 30_000);
        if (p.code !== 0) {
            const e = await firstWaveDone;
            throw new Error(`${promoted}: the promotion failed: ${why(p)}. The web servers stay fenced from ${lost.name}${waves[0].length ? `, and ${waves[0].join(", ")} drained${e ? "" : ` (switched to ${promoted})`}` : ""}; run promote again`);
        }
        const writableAfterSeconds = at();
        // What the replica's side did, with its own times.
        for (const line of p.out.split("\n")) if (/^\[[^\]]+\] /.test(line)) info(`${promoted}: ${line.replace(/^\[[^\]]+\] /, "")}`);
        info(`${promoted} is writable (GTID ${parseStatusOutput(p.out).vars.gtid_binlog_pos})`);
        for (const [i, wave] of waves.entries()) {
            if (i === 0) {
                const e = await firstWaveDone;
                if (e) throw e;
            } else {
                await drainAndSwitch(wave);
            }
            for (const name of wave) {
                const r = await lb(name, "admit");
                if (r.code !== 0) throw new Error(`the load balancer could not admit ${name}: ${why(r)}; run pulumi up to finish`);
            }
            if (!firstWaveServingAfterSeconds) firstWaveServingAfterSeconds = at();
            info(`${wave.join(", ")} write${wave.length === 1 ? "s" : ""} to ${promoted}`);
        }
        const allServingAfterSeconds = at();

        // The state without the lost database's steps, then the config that names the new one.
        const { deployment, removed } = withoutLostDatabase(state, lost.name, c.dbReplicas.map((r) => r.name));
        await stack.importStack(deployment as unknown as Parameters<Stack["importStack"]>[0]);
        info(`took ${removed.length} resource(s) of ${lost.name} out of the state (their delete would run on the lost Pi)`);
        await writeConfig(stack, next.config);
        info(`the stack config names ${promoted} (${target.address}) the database, with ${c.dbReplicas.length - 1} replica(s)`);
        info(`next: npx pi-cluster deploy --stack ${stackName} (the other replicas follow ${promoted}, its backups start; the web servers' fence goes)`);
        return { stack: stackName, lost: lost.name, promoted, notes, writableAfterSeconds, firstWaveServingAfterSeconds, allServingAfterSeconds, seconds: at() };
    } finally {
        pis.close(all);
        fs.rmSync(dir, { recursive: true, force: true });
    }
}
