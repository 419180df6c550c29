// The pi-cluster policy pack's rules (index.ts serves them). Each check is a pure function
// of a resource's inputs or of the stack's settings, so tests/unit/policy.test.ts runs it
// on the resources the real program builds, and on the violation it is there to catch.
//
// Where the evidence lives:
// - how a step is built (its delete, its logging, its pinned host key) is checked on the
//   resource inputs the engine is about to apply, whatever the config said;
// - what production must be configured for is checked on the stack's settings, parsed by
//   the program's own schema (components/config.ts), so defaults come from one place and a
//   message can name the key to change. The program turns exactly those settings into the
//   firewall, the nginx site and the backup target.
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { PolicyConfigSchema, ReportViolation, ResourceValidationPolicy, StackValidationArgs, StackValidationPolicy, UnknownValueError, validateResourceOfType } from "@pulumi/policy";
import { MIN_MANAGEMENT_PREFIX, parseSettings, rawStackConfig, secretsSet, Settings, tooWideForManagement } from "../components/config";
import { SSH_HOST_KEY_TYPES } from "../components/render/sshd";

/** The stack the production rules hold for, unless the pack's config names others. */
export const PRODUCTION_STACK = "production";

/** Each production rule's config: `pulumi preview --policy-pack-config` can name other stacks. */
const PRODUCTION_CONFIG: PolicyConfigSchema = {
    properties: { stacks: { type: "array", items: { type: "string" }, default: [PRODUCTION_STACK] } },
};

type CommandInputs = Partial<Record<"create" | "update" | "delete" | "stdin" | "logging", string>> & { connection?: { hostKey?: string } };

/** The value of an input, or `unknown` when the engine cannot know it yet (a preview). */
function known<T>(read: () => T): T | typeof UNKNOWN {
    try {
        return read();
    } catch (e) {
        if (e instanceof UnknownValueError) return UNKNOWN;
        throw e;
    }
}
const UNKNOWN = Symbol("unknown");

// A step's script arrives on stdin, so a Command with stdin runs a step; a create without
// one changes the Pi when it calls one of these (wait-ssh's `sudo -n true && uname -m`
// does not).
const CHANGES_THE_PI = /\b(apt-get|apt|dpkg|install|cp|mv|tee|rm|systemctl|useradd|mkdir|ln|tar|npm|pm2|sed -i|bash -s)\b|\s>>?\s*\//;

/** Why a remote Command that installs something has no teardown, or undefined. */
export function deleteProblem(props: CommandInputs): string | undefined {
    if (known(() => props.delete)) return undefined;
    const stdin = known(() => props.stdin);
    const create = known(() => props.create);
    const installs = stdin === UNKNOWN || (typeof stdin === "string" && stdin !== "") || create === UNKNOWN || CHANGES_THE_PI.test(create ?? "");
    if (!installs) return undefined;
    return "expected a delete that undoes this step (a script step runs its own `delete`): without one, `pulumi destroy` or removing the step leaves what it installed on the Pi";
}

// A secret in a step script is a variable whose name ends in what it holds (DB_PASSWORD,
// API_WRITE_TOKEN, the SECRETS_TEXT of an env file; not SECRETS_FILE, a path, nor
// SECRETS_DIGEST), or a file's text that holds one: a private key (KEY_TEXT of a supplied
// TLS key) or a MariaDB client option file's password line (CLIENT_CNF_TEXT).
const SECRET_VARIABLE = /^(?:[A-Z0-9]+_)*(?:PASSWORD|TOKEN|SECRET|PRIVATE_KEY|SECRETS_TEXT)=/m;
const SECRET_TEXT = /-----BEGIN [A-Z ]*PRIVATE KEY-----|AGE-SECRET-KEY-1|^\s*password\s*=/m;

/** The secret-looking variable or text a script carries, or undefined. */
export function secretIn(script: string): string | undefined {
    const variable = SECRET_VARIABLE.exec(script);
    if (variable) return `the variable ${variable[0].slice(0, -1)}`;
    const text = SECRET_TEXT.exec(script);
    if (!text) return undefined;
    return /password/.test(text[0]) ? "a password in a file's text" : "a private key";
}

/** Why a step that carries a secret may log it, or undefined. */
export function secretLoggingProblem(props: CommandInputs): string | undefined {
    const stdin = known(() => props.stdin);
    // Unknown at a preview (a password not generated yet): `pulumi up` checks the step with
    // its real script before running it.
    if (stdin === UNKNOWN || typeof stdin !== "string") return undefined;
    const secret = secretIn(stdin);
    if (!secret) return undefined;
    // The provider's default, when unset, logs stdout too.
    const logging = known(() => props.logging) ?? "stdoutAndStderr";
    if (logging === "stderr" || logging === "none") return undefined;
    return `expected logging "stderr" or "none" on a step whose script carries ${secret}, got ${JSON.stringify(logging)}: a failed step's stdout lands in the error, the log and the state (remoteStep's secret: true)`;
}

/** Why a remote resource's connection does not pin the Pi's host key, or undefined. */
export function hostKeyProblem(props: CommandInputs): string | undefined {
    const hostKey = known(() => props.connection?.hostKey);
    if (hostKey === UNKNOWN) return undefined;
    const type = typeof hostKey === "string" ? hostKey.trim().split(/\s+/)[0] : undefined;
    if (type && SSH_HOST_KEY_TYPES.includes(type)) return undefined;
    return hostKey
        ? `expected connection.hostKey to be the Pi's ${SSH_HOST_KEY_TYPES.join(" or ")} host key, got a ${type} key: the Pis' sshd offers no other, so the step could not connect`
        : "expected connection.hostKey, the Pi's pinned SSH host key: without it the step sends its script, secrets included, to whatever answers at the address";
}

/** Uploads (CopyToRemote) that no step with a delete consumes, by name. */
export function orphanUploads(resources: StackValidationArgs["resources"]): string[] {
    const consumed = new Set<string>();
    for (const r of resources) {
        if (r.type !== "command:remote:Command" || !known(() => r.props.delete)) continue;
        for (const d of r.dependencies) consumed.add(d.urn);
    }
    return resources.filter((r) => r.type === "command:remote:CopyToRemote" && !consumed.has(r.urn)).map((r) => r.urn);
}

/** Why production's management networks are too wide, one message per key. */
export function managementProblems(s: Settings): string[] {
    const cidrs: [string, string][] = [["managementCidr", s.managementCidr], ...s.adminCidrs.map((c, i): [string, string] => [`adminCidrs[${i}]`, c])];
    return cidrs
        .filter(([, cidr]) => tooWideForManagement(cidr))
        .map(
            ([key, cidr]) =>
                `pi-cluster:${key} is ${cidr}: production keeps SSH and the internal routes to a network no wider than /${MIN_MANAGEMENT_PREFIX}, ` +
                `whatever pi-cluster:allowPublicManagement says; set it to the network the Pis and the deploying machine are on`,
        );
}

/** Why production would serve the site without TLS. */
export function httpsProblems(s: Settings): string[] {
    return s.httpsRedirect
        ? []
        : [`pi-cluster:httpsRedirect is false: production serves the site on HTTPS only (port ${s.httpPort} answers 301); remove the key or set it to true`];
}

/** Why production's database has no backups on another host. */
export function backupProblems(s: Settings): string[] {
    if (!s.backup) {
        return ["pi-cluster:backup is not set: production backs the database up, encrypted, to another host; set pi-cluster:backup.agePublicKey (README, \"Backups\")"];
    }
    // The schema's default target is the load balancer (components/config.ts).
    const target = s.backup.target.host ?? s.loadBalancer.address;
    return target === s.database.address
        ? [`pi-cluster:backup.target.host is ${target}, the database Pi itself: a lost DB disk would lose its backups too; back up to another host`]
        : [];
}

/** The stack's settings as the program reads them (components/config.ts). */
export function stackSettings(): Settings {
    return parseSettings(rawStackConfig(), secretsSet());
}

const production =
    (check: (s: Settings) => string[], settings: () => Settings = stackSettings) =>
    (args: StackValidationArgs, report: ReportViolation): void => {
        const { stacks } = args.getConfig<{ stacks: string[] }>();
        if (!stacks.includes(pulumi.getStack())) args.notApplicable(`only for the stacks ${stacks.join(", ")}`);
        for (const message of check(settings())) report(message);
    };

/** Runs a check that returns a message as a resource validation. */
function commandRule(check: (props: CommandInputs) => string | undefined) {
    return (props: unknown, _args: unknown, report: ReportViolation): void => {
        const problem = check(props as CommandInputs);
        if (problem) report(problem);
    };
}

export function policies(settings?: () => Settings): (ResourceValidationPolicy | StackValidationPolicy)[] {
    return [
        {
            name: "remote-steps-have-delete",
            description: "Every remote step that installs something on a Pi has a delete that undoes it.",
            enforcementLevel: "mandatory",
            validateResource: validateResourceOfType(command.remote.Command, commandRule(deleteProblem)),
        },
        {
            name: "uploads-are-torn-down",
            description: "Every upload to a Pi (CopyToRemote, which never deletes what it copied) feeds a step that has a delete.",
            enforcementLevel: "mandatory",
            validateStack: (args, report) => {
                for (const urn of orphanUploads(args.resources)) {
                    report("expected a step with a delete that depends on this upload: CopyToRemote leaves its file on the Pi when it is deleted", urn);
                }
            },
        },
        {
            name: "secret-steps-log-no-stdout",
            description: "A step whose script carries a secret logs stderr only (or nothing).",
            enforcementLevel: "mandatory",
            validateResource: validateResourceOfType(command.remote.Command, commandRule(secretLoggingProblem)),
        },
        {
            name: "pinned-host-keys",
            description: "Every SSH connection to a Pi pins its ed25519 or ECDSA host key.",
            enforcementLevel: "mandatory",
            validateResource: [
                validateResourceOfType(command.remote.Command, commandRule(hostKeyProblem)),
                validateResourceOfType(command.remote.CopyToRemote, commandRule(hostKeyProblem)),
            ],
        },
        {
            name: "production-management-network",
            description: `In ${PRODUCTION_STACK}, managementCidr and adminCidrs are no wider than /${MIN_MANAGEMENT_PREFIX}, allowPublicManagement or not.`,
            enforcementLevel: "mandatory",
            configSchema: PRODUCTION_CONFIG,
            validateStack: production(managementProblems, settings),
        },
        {
            name: "production-https-only",
            description: `In ${PRODUCTION_STACK}, the site is served over TLS only (httpsRedirect).`,
            enforcementLevel: "mandatory",
            configSchema: PRODUCTION_CONFIG,
            validateStack: production(httpsProblems, settings),
        },
        {
            name: "production-backups-off-the-database",
            description: `In ${PRODUCTION_STACK}, backups are on and go to a host other than the database Pi.`,
            enforcementLevel: "mandatory",
            configSchema: PRODUCTION_CONFIG,
            validateStack: production(backupProblems, settings),
        },
    ];
}
