// Opens a stack of this project through the Automation API (LocalWorkspace on the repo, any
// backend the environment names). The lab stack gets the lab's defaults (README "The lab"):
// the file backend under .state/ and the lab's throwaway passphrase, unless set. The pinned
// toolchain (toolchain/ensure.sh) goes first on PATH when no pulumi is there.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";

export const REPO = path.join(__dirname, "..");
/** Not a secret: it only guards the lab's throwaway state on this machine (README "The lab"). */
export const LAB_PASSPHRASE = "pi-cluster-lab";

/** An error whose message says what to do next; the CLI prints it and exits with `code`. */
export class CliError extends Error {
    constructor(
        message: string,
        readonly code: number,
    ) {
        super(message);
    }
}

/** Exit codes (README "CLI"). */
export const EXIT = { ok: 0, failed: 1, usage: 2, drift: 3 } as const;

/** The environment a stack's commands run with: the lab's defaults for the lab stack. */
export function stackEnv(stack: string, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
    const out: NodeJS.ProcessEnv = { ...env, PULUMI_SKIP_UPDATE_CHECK: "true", PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true" };
    if (stack === "lab") {
        out.PULUMI_BACKEND_URL ??= `file://${path.join(REPO, ".state", "backend")}`;
        if (!out.PULUMI_CONFIG_PASSPHRASE && !out.PULUMI_CONFIG_PASSPHRASE_FILE) out.PULUMI_CONFIG_PASSPHRASE = LAB_PASSPHRASE;
    }
    return out;
}

/** The pinned toolchain's bin directory first on PATH, unless a pulumi is there already. */
function ensureToolchain(env: NodeJS.ProcessEnv): void {
    const onPath = (env.PATH ?? "").split(":").some((d) => d && fs.existsSync(path.join(d, "pulumi")));
    if (onPath) return;
    let bin: string;
    try {
        bin = execFileSync("bash", [path.join(REPO, "toolchain", "ensure.sh")], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
    } catch {
        throw new CliError("no pulumi on PATH, and toolchain/ensure.sh could not provide one (see above): run scripts/setup.sh", EXIT.failed);
    }
    env.PATH = `${bin}:${env.PATH ?? ""}`;
}

/** Selects an existing stack of the project; its environment is set in this process too. */
export async function openStack(name: string): Promise<Stack> {
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new CliError(`--stack: expected a stack name (letters, digits, '_', '.', '-'), got '${name}'`, EXIT.usage);
    const env = stackEnv(name);
    // Without a backend the CLI would ask to log in to Pulumi Cloud: say what to set instead.
    if (!env.PULUMI_BACKEND_URL && !fs.existsSync(path.join(env.PULUMI_HOME ?? path.join(os.homedir(), ".pulumi"), "credentials.json"))) {
        throw new CliError(`stack '${name}': no backend; set PULUMI_BACKEND_URL (file://DIR for state on this machine) or run pulumi login`, EXIT.usage);
    }
    ensureToolchain(env);
    Object.assign(process.env, env);
    if (name === "lab" && env.PULUMI_BACKEND_URL === `file://${path.join(REPO, ".state", "backend")}`) fs.mkdirSync(path.join(REPO, ".state", "backend"), { recursive: true });
    try {
        return await LocalWorkspace.selectStack({ stackName: name, workDir: REPO });
    } catch (e) {
        const said = e instanceof Error ? e.message : String(e);
        if (/no stack named|not found/i.test(said)) {
            throw new CliError(
                `no stack '${name}' in ${env.PULUMI_BACKEND_URL ?? "the logged-in backend"}: ${name === "lab" ? "run scripts/deploy.sh, which makes the lab and its stack" : `create it with pulumi stack init ${name} and its config (README "Production walkthrough")`}`,
                EXIT.usage,
            );
        }
        throw new CliError(`cannot open stack '${name}': ${said.trim().split("\n").slice(-3).join(" ")}`, EXIT.failed);
    }
}

/** A stack's outputs without its secrets (dbPassword, apiWriteToken). */
export async function plainOutputs(stack: Stack): Promise<Record<string, unknown>> {
    const outputs = await stack.outputs();
    return Object.fromEntries(Object.entries(outputs).filter(([, o]) => !o.secret).map(([k, o]) => [k, o.value]));
}
