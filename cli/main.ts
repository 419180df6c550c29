// `pi-cluster`, the operator CLI (issue 20), on Pulumi's Automation API. Run it from the repo
// as `npx pi-cluster COMMAND [options]`; `npx pi-cluster help COMMAND` says more.
// commander parses the arguments: it is small, has no dependencies and ships its own types,
// and subcommands with their own options and help are what it is built for.
// Exit codes (README "CLI"): 0 done / as desired; 1 the operation failed; 2 bad usage, a bad
// config or no such stack; 3 drift (verify) or a node not serving (status).
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import { Command, CommanderError, Option } from "commander";
import { Stack } from "@pulumi/pulumi/automation";
import { renderPreview, PreviewDigest } from "../scripts/preview/markdown";
import { verifyState } from "../scripts/verify/ssh";
import { hostOk, renderReport, StackExport } from "../scripts/verify/state";
import { ConvergeProgress } from "./progress";
import { promote, PromoteOptions, Summary } from "./promote";
import { checkRecoverArgs, recover, RecoverOptions, RecoverSummary } from "./recover";
import { CliError, EXIT, openStack, plainOutputs, REPO, stackEnv } from "./stack";

interface Common {
    stack: string;
    json?: boolean;
}

/** Prints the result: JSON on stdout with --json, else the text. */
function result(opts: Common, json: unknown, text: string): void {
    process.stdout.write(opts.json ? `${JSON.stringify(json, null, 2)}\n` : text);
}

/** The Pis a stack's config names, for the progress lines. */
async function hostNames(stack: Stack): Promise<string[]> {
    const config = await stack.getAllConfig();
    const names: string[] = [];
    for (const key of ["loadBalancer", "webServers", "database", "dbReplicas"]) {
        const v = config[`pi-cluster:${key}`]?.value;
        if (!v) continue;
        const parsed = JSON.parse(v) as { name?: string } | { name?: string }[];
        for (const h of Array.isArray(parsed) ? parsed : [parsed]) if (h?.name) names.push(h.name);
    }
    return names;
}

/** The engine's error lines from a failed operation, the program's config errors first. */
function engineError(e: unknown): string {
    const said = e instanceof Error ? e.message : String(e);
    const lines = said.split("\n").filter((l) => /error:|pi-cluster:|failed/i.test(l) && !/^\s*at /.test(l));
    return (lines.length ? lines : said.split("\n").slice(-5)).map((l) => l.trim()).slice(0, 20).join("\n");
}

/** A failed `pulumi up`: what --json prints besides `{command, stack, ok: false}`. */
class UpFailed extends CliError {
    constructor(
        message: string,
        readonly detail: Record<string, unknown>,
    ) {
        super(message, EXIT.failed);
    }
}

/** Prints a failed command's `{command, stack, ok: false, ...}` with --json, and throws on. */
function failed(opts: Common, command: string, e: unknown): never {
    const detail = e instanceof UpFailed ? e.detail : { error: e instanceof Error ? e.message : String(e) };
    result(opts, { command, stack: opts.stack, ok: false, ...detail }, "");
    throw e;
}

/**
 * `pulumi up` of an open stack with the step running on each Pi and the time so far (redrawn
 * on a terminal, a line per step elsewhere), every engine event also written to `eventLog`
 * (one JSON object a line, as `pulumi up --event-log` writes them). Resolves to the change
 * counts; a failure throws UpFailed, which says what to do next.
 */
async function runUp(stack: Stack, opts: Common & { eventLog?: string }, command: string): Promise<Record<string, number>> {
    const started = Date.now();
    const progress = new ConvergeProgress(await hostNames(stack));
    const tty = !opts.json && process.stderr.isTTY;
    let drawn = 0;
    const redraw = () => {
        const lines = [`${progress.elapsed()}  pulumi up of ${opts.stack}`, ...progress.lines()];
        process.stderr.write(`${drawn ? `\x1b[${drawn}A` : ""}${lines.map((l) => `\x1b[2K${l}\n`).join("")}`);
        drawn = lines.length;
    };
    const timer = tty ? setInterval(redraw, 1000) : undefined;
    if (opts.eventLog) fs.writeFileSync(opts.eventLog, "");
    try {
        const up = await stack.up({
            onEvent: (e) => {
                if (opts.eventLog) fs.appendFileSync(opts.eventLog, `${JSON.stringify(e)}\n`);
                const line = progress.onEvent(e);
                if (line && !tty) process.stderr.write(`${line}\n`);
            },
        });
        if (tty) redraw();
        return (up.summary.resourceChanges ?? {}) as Record<string, number>;
    } catch (e) {
        if (tty) redraw();
        const seconds = (Date.now() - started) / 1000;
        const error = engineError(e);
        throw new UpFailed(`${command}: pulumi up of ${opts.stack} failed after ${seconds.toFixed(1)} s:\n${error}\nFix what it names and run the ${command} again: the steps that finished stay done.`, { seconds, error, progress: progress.summary() });
    } finally {
        if (timer) clearInterval(timer);
    }
}

async function deploy(opts: Common & { eventLog?: string }): Promise<number> {
    const started = Date.now();
    const stack = await openStack(opts.stack);
    const changes = await runUp(stack, opts, "deploy").catch((e) => failed(opts, "deploy", e));
    const outputs = await plainOutputs(stack);
    const seconds = (Date.now() - started) / 1000;
    result(
        opts,
        { command: "deploy", stack: opts.stack, ok: true, seconds, changes, outputs },
        `deploy: ${opts.stack} converged in ${seconds.toFixed(1)} s: ${Object.entries(changes).map(([k, n]) => `${n} ${k}`).join(", ")}\n` +
            `dashboard: ${outputs.httpsDashboardUrl ?? outputs.dashboardUrl ?? "(no output)"}\n`,
    );
    return EXIT.ok;
}

async function recoverCommand(names: string[], opts: Common & { eventLog?: string; all?: boolean; hostKey?: string; dbData?: string }): Promise<number> {
    const o: RecoverOptions = { names, all: !!opts.all, hostKey: opts.hostKey, dbData: opts.dbData };
    let s: RecoverSummary;
    try {
        checkRecoverArgs(o);
        const stack = await openStack(opts.stack);
        s = await recover(stack, o, () => runUp(stack, opts, "recover"));
    } catch (e) {
        failed(opts, "recover", e);
    }
    result(
        opts,
        { command: "recover", ok: true, ...s },
        `recover: ${s.hosts.join(" ")} rebuilt in ${s.seconds.toFixed(1)} s: ${Object.entries(s.changes).map(([k, n]) => `${n} ${k}`).join(", ")}${s.dbDataRestored ? "; MariaDB runs on the restored data" : ""}\n`,
    );
    return EXIT.ok;
}

async function preview(opts: Common & { maxChars?: string }): Promise<number> {
    const stack = await openStack(opts.stack);
    // `pulumi preview --json` (the digest the Markdown is made of), run as the workspace runs it.
    const r = spawnSync("pulumi", ["preview", "--json", "--diff", "--stack", stack.name, "--non-interactive"], {
        cwd: REPO,
        env: stackEnv(opts.stack),
        encoding: "utf8",
        maxBuffer: 256 * 1024 * 1024,
    });
    let digest: PreviewDigest;
    try {
        digest = JSON.parse(r.stdout) as PreviewDigest;
    } catch {
        throw new CliError(`preview: pulumi preview of ${opts.stack} printed no JSON (exit ${r.status}):\n${r.stderr.trim().split("\n").slice(-10).join("\n")}`, EXIT.failed);
    }
    const ok = r.status === 0;
    result(opts, { command: "preview", stack: opts.stack, ok, changeSummary: digest.changeSummary ?? {}, digest }, renderPreview(digest, { maxChars: opts.maxChars ? Number(opts.maxChars) : undefined }));
    // A config the program refuses fails the preview: usage, not a failed operation.
    return ok ? EXIT.ok : EXIT.usage;
}

async function verify(opts: Common): Promise<number> {
    const stack = await openStack(opts.stack);
    const exported = (await stack.exportStack()) as unknown as StackExport;
    const hosts = await verifyState(exported);
    const ok = hosts.every(hostOk);
    result(opts, { command: "verify", stack: opts.stack, ok, hosts }, renderReport(hosts, opts.stack));
    return ok ? EXIT.ok : EXIT.drift;
}

/** GETs a URL as JSON (one redirect followed, https checked against `ca`). */
function getJson(url: string, ca: string | undefined, redirects = 1): Promise<{ status: number; body: unknown }> {
    return new Promise((resolve) => {
        const lib = url.startsWith("https:") ? https : http;
        const req = lib.get(url, { timeout: 5000, ...(ca ? { ca } : {}) }, (res) => {
            let body = "";
            res.setEncoding("utf8").on("data", (d: string) => (body += d));
            res.on("end", () => {
                if (res.statusCode && res.statusCode >= 300 && res.statusCode < 400 && res.headers.location && redirects > 0) {
                    resolve(getJson(new URL(res.headers.location, url).toString(), ca, redirects - 1));
                    return;
                }
                let parsed: unknown = body;
                try {
                    parsed = JSON.parse(body);
                } catch {
                    /* not JSON: kept as text */
                }
                resolve({ status: res.statusCode ?? 0, body: parsed });
            });
        });
        req.on("timeout", () => req.destroy(new Error("no answer in 5 s")));
        req.on("error", (e) => resolve({ status: 0, body: e.message }));
    });
}

async function status(opts: Common): Promise<number> {
    const stack = await openStack(opts.stack);
    const outputs = await plainOutputs(stack);
    const lbUrl = outputs.lbUrl as string | undefined;
    if (!lbUrl) throw new CliError(`status: stack ${opts.stack} has no lbUrl output: deploy it first (npx pi-cluster deploy --stack ${opts.stack})`, EXIT.usage);
    const ca = outputs.caCertificate as string | undefined;
    // The site over HTTPS, checked against the cluster's CA; a stack from before httpsUrl: lbUrl.
    const url = (outputs.httpsUrl as string | undefined) ?? lbUrl;
    const nodes = (outputs.nodes as { name: string; address: string; role: string }[] | undefined) ?? [];
    // Each node's health through the LB's per-node route (from the management network).
    const health = await Promise.all(
        nodes.map(async (n) => {
            if (n.role !== "web") return { ...n, serving: null as boolean | null, detail: "" };
            const r = await getJson(`${url}/api/nodes/${n.name}/health`, ca);
            return { ...n, serving: r.status === 200, detail: r.status === 200 ? "" : `HTTP ${r.status || "-"}: ${typeof r.body === "string" ? r.body.slice(0, 200) : JSON.stringify(r.body).slice(0, 200)}` };
        }),
    );
    const site = await getJson(`${url}/api/health`, ca);
    const ok = site.status === 200 && health.every((h) => h.serving !== false);
    const text = [
        `${opts.stack}: ${url} ${site.status === 200 ? "serves" : `does not serve (HTTP ${site.status || "-"})`}; certificate expires ${outputs.certificateExpiry ?? "-"}`,
        ...health.map((h) => `  ${h.name.padEnd(14)} ${h.address.padEnd(15)} ${h.role.padEnd(8)} ${h.serving === null ? "" : h.serving ? "serving" : `NOT serving ${h.detail}`}`.trimEnd()),
    ].join("\n");
    result(opts, { command: "status", stack: opts.stack, ok, url, lbUrl, site: site.status, nodes: health, outputs }, `${text}\n`);
    return ok ? EXIT.ok : EXIT.drift;
}

async function promoteCommand(replica: string | undefined, opts: Common & { allowBehind?: boolean; allowUnreachableReplicas?: boolean; allowUnfenced?: boolean; catchUpSeconds: string }): Promise<number> {
    const catchUpSeconds = Number(opts.catchUpSeconds);
    if (!/^\d+$/.test(opts.catchUpSeconds) || !Number.isSafeInteger(catchUpSeconds)) throw new CliError(`--catch-up-seconds: expected whole seconds, got '${opts.catchUpSeconds}'`, EXIT.usage);
    const o: PromoteOptions = { replica, allowBehind: !!opts.allowBehind, allowUnreachableReplicas: !!opts.allowUnreachableReplicas, allowUnfenced: !!opts.allowUnfenced, catchUpSeconds };
    let s: Summary;
    try {
        s = await promote(await openStack(opts.stack), o);
    } catch (e) {
        // With --json a refusal is an object too; the message (stderr) says what to do.
        failed(opts, "promote", e);
    }
    result(
        opts,
        { command: "promote", ok: true, ...s },
        `promote: ${s.promoted} is the database: writable after ${s.writableAfterSeconds} s, the first web servers on it after ${s.firstWaveServingAfterSeconds} s, all after ${s.allServingAfterSeconds} s\n`,
    );
    return EXIT.ok;
}

/** The program: each subcommand with --stack and --json. */
export function program(run: (action: () => Promise<number>) => void): Command {
    const p = new Command("pi-cluster")
        .description("Operates a pi-cluster stack (README \"CLI\"). Exit codes: 0 ok, 1 failed, 2 usage or config, 3 drift or a node not serving.")
        .showHelpAfterError()
        .exitOverride();
    const common = (c: Command) =>
        c.addOption(new Option("-s, --stack <name>", "the stack").default("lab")).option("--json", "print one JSON object on stdout (progress goes to stderr)");
    const eventLog = (c: Command) => c.option("--event-log <file>", "also write every engine event to FILE, one JSON object a line (as pulumi up --event-log)");
    eventLog(common(p.command("deploy").description("pulumi up, with the step running on each Pi and the time so far"))).action((o: Common) => run(() => deploy(o)));
    eventLog(common(p.command("recover").description("bring replaced, wiped or drifted Pis back: check each presents its pinned key, run every step on them again (pulumi up)")))
        .argument("[names...]", "the Pis to recover")
        .option("--all", "every Pi of the stack (full recovery)")
        .option("--host-key <key>", "the new host key of the one Pi named ('ssh-ed25519 AAAA...'; check it on the Pi's console)")
        .option("--db-data <file>", "with the database Pi: a tar.gz of MariaDB's data directory, taken with MariaDB stopped, put in place after the up")
        .action((names: string[], o: Common & { all?: boolean; hostKey?: string; dbData?: string }) => run(() => recoverCommand(names, o)));
    common(p.command("preview").description("pulumi preview --diff, as the Markdown a PR comment shows"))
        .option("--max-chars <n>", "cap the Markdown's length")
        .action((o: Common & { maxChars?: string }) => run(() => preview(o)));
    common(p.command("verify").description("check every Pi against what the last deploy applied, read-only")).action((o: Common) => run(() => verify(o)));
    common(p.command("status").description("the outputs, and whether the site and each web server serve")).action((o: Common) => run(() => status(o)));
    common(p.command("promote").description("make a read replica the database when the database Pi is lost (README \"Read replicas\"); refuses, exit 1, where a write could be lost"))
        .argument("[replica]", "the replica to promote (default: the one that received the most)")
        .option("--allow-behind", "promote REPLICA even when another received more (those writes are lost)")
        .option("--allow-unreachable-replicas", "choose among the replicas that answer when another cannot be asked")
        .option("--allow-unfenced", "go on when a web server cannot be reached to fence it (it is powered off)")
        .addOption(new Option("--catch-up-seconds <n>", "how long the replica may take to apply its relay log").default("60"))
        .action((replica: string | undefined, o: Common & { catchUpSeconds: string }) => run(() => promoteCommand(replica, o)));
    return p;
}

/** Runs the CLI with `argv` (without node and the script); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
    let pending: Promise<number> | undefined;
    try {
        await program((action) => {
            pending = action();
        }).parseAsync(argv, { from: "user" });
    } catch (e) {
        if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
        throw e;
    }
    if (!pending) return EXIT.usage;
    try {
        return await pending;
    } catch (e) {
        if (e instanceof CliError) {
            process.stderr.write(`pi-cluster: ${e.message}\n`);
            return e.code;
        }
        process.stderr.write(`pi-cluster: ${e instanceof Error ? e.message : String(e)}\n`);
        return EXIT.failed;
    }
}

if (require.main === module) {
    main(process.argv.slice(2)).then((code) => (process.exitCode = code));
}
