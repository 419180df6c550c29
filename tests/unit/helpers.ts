// Shared fixtures for the unit tests: a valid raw config, fake artifacts, and Pulumi
// mocks that record every resource with its inputs and resource options.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { apiRateLimitOf, parseConfig } from "../../components/config";
import { NginxSiteArgs, renderNginxSite } from "../../components/render/nginx";
import { fileVar } from "../../components/render/shell";

export const FAKE_PASSWORD = "Mock0Password0That0Must0Not0Leak";
/** What the mocked RandomPassword of the write token returns. */
export const FAKE_WRITE_TOKEN = "Mock0Write0Token0That0Must0Not0Leak";

/** What the mocked TLS steps print (tls_step_output in assets/scripts/lib.sh). */
export const FAKE_TLS_OUTPUT = { caCertificate: "-----BEGIN CERTIFICATE-----\nMOCKCA\n-----END CERTIFICATE-----\n", certificateExpiry: "2027-11-27T09:00:00Z" };

export function tmpDir(prefix: string): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * A private key in OpenSSH's format (PROTOCOL.key) that is not a key: its public half says
 * `type`, as config.ts reads it, and its private half is a marker.
 */
export function fakeOpensshKey(type: string): string {
    const field = (v: string | Buffer) => {
        const b = Buffer.from(v);
        const n = Buffer.alloc(4);
        n.writeUInt32BE(b.length);
        return Buffer.concat([n, b]);
    };
    const count = Buffer.from([0, 0, 0, 1]);
    const pub = Buffer.concat([field(type), field(Buffer.alloc(32, 7))]);
    const body = Buffer.concat([Buffer.from("openssh-key-v1\0", "latin1"), field("none"), field("none"), field(""), count, field(pub), field("fake0Key0That0Must0Not0Leak")]);
    const lines = body.toString("base64").match(/.{1,70}/g)!;
    return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join("\n")}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

/** The fake SSH private key writeKey writes; no output may ever carry it. */
export const FAKE_PRIVATE_KEY = fakeOpensshKey("ssh-ed25519");

export function writeKey(dir = tmpDir("pi-key-")): string {
    const file = path.join(dir, "id_ed25519");
    fs.writeFileSync(file, FAKE_PRIVATE_KEY, { mode: 0o600 });
    return file;
}

export const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB5xdkq0aWSwD1Nb4l1IXnXy8rlzvEMWMZ8b8MZzOlkp";

/** A valid raw config with `webs` web servers, in the shape `pulumi config` holds. */
/** A throwaway age recipient (its private half was thrown away). */
export const AGE_PUBLIC_KEY = "age1amw0rye57c8ndullpz6p8cpy8gvsztlpewszkm0uwr93ylycn9esj89aut";
/** What the mocked database backup step prints as the Pi's SSH public key. */
export const DB_BACKUP_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOANQGvW+EBAyuBpUOLYb4Bc30lrPrg0NQYoZEBNB3DA";

/** What the mocked replica seed-key step prints as the replica's SSH public key. */
export const REPLICA_SEED_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ9pYh8Qn3v0m0sZ3cT0q2b8m9Qw7y4nZr1x5o6Kk2Lm";

/** `n` replicas at .127, .128, ... as the lab makes them. */
export function replicasConfig(n: number): Record<string, unknown>[] {
    return Array.from({ length: n }, (_, i) => ({ name: `pi-db-read${i + 1}`, address: `10.254.0.${127 + i}`, hostKey: HOST_KEY }));
}

export function rawConfig(webs = 2, keyPath = writeKey()): Record<string, unknown> {
    return {
        sshUser: "pi",
        sshPrivateKeyPath: keyPath,
        managementCidr: "10.254.0.0/24",
        loadBalancer: { name: "pi-lb", address: "10.254.0.121", hostKey: HOST_KEY },
        webServers: Array.from({ length: webs }, (_, i) => ({
            name: `pi-web${i + 1}`,
            address: `10.254.0.${i < 2 ? 122 + i : 123 + i}`,
            hostKey: HOST_KEY,
        })),
        database: { name: "pi-db", address: "10.254.0.124", hostKey: HOST_KEY },
    };
}

export function fakeArtifacts(): { app: { path: string; sha: string }; pm2: { path: string; sha: string }; dashboard: { path: string; sha: string } } {
    const dir = tmpDir("pi-artifacts-");
    const make = (kind: string, sha: string) => {
        const p = path.join(dir, `${kind}.tgz`);
        fs.writeFileSync(p, kind);
        return { path: p, sha };
    };
    return { app: make("app", "aaaaaaaaaaaaaaaa"), pm2: make("pm2", "bbbbbbbbbbbbbbbb"), dashboard: make("dashboard", "cccccccccccccccc") };
}

const SECRET_SIG = "4dabf18193072939515e22adb298388d";

/** Mocks see secret inputs wrapped in Pulumi's secret envelope; tests want the values. */
function unwrapSecrets(v: any): any {
    if (Array.isArray(v)) return v.map(unwrapSecrets);
    // Only plain objects: assets and archives arrive as class instances and stay as they are.
    if (v && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
        if (v[SECRET_SIG] !== undefined && "value" in v) return unwrapSecrets(v.value);
        return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapSecrets(x)]));
    }
    return v;
}

export interface Recorded {
    type: string;
    name: string;
    inputs: Record<string, any>;
    resource?: pulumi.Resource;
    dependsOn: string[];
    parent?: string;
    /** The resource option, as the engine gets it (after every transformation below). */
    ignoreChanges?: string[];
}

/** Installs mocks; every registered resource lands in the returned map, by name and type. */
export function installMocks(password = FAKE_PASSWORD): Map<string, Recorded> {
    const recorded = new Map<string, Recorded>();
    pulumi.runtime.setMocks(
        {
            newResource(args: pulumi.runtime.MockResourceArgs) {
                const key = `${args.type}::${args.name}`;
                const entry = recorded.get(key) ?? { type: args.type, name: args.name, inputs: {}, dependsOn: [] };
                entry.inputs = unwrapSecrets(args.inputs);
                recorded.set(key, entry);
                const state: Record<string, unknown> = { ...args.inputs };
                if (args.type === "random:index/randomPassword:RandomPassword") state.result = args.name.endsWith("-api-write-token") ? FAKE_WRITE_TOKEN : password;
                if (args.type === "command:remote:Command") {
                    state.stdout = args.name.endsWith("-wait-ssh")
                        ? "x86_64"
                        : args.name.endsWith("-tls")
                          ? JSON.stringify(FAKE_TLS_OUTPUT) + "\n"
                          : args.name.endsWith("-backup")
                            ? `[x] scheduled\nBACKUP_PUBLIC_KEY ${DB_BACKUP_PUBLIC_KEY}\n`
                            : args.name.endsWith("-seed-key")
                              ? `SEED_PUBLIC_KEY ${REPLICA_SEED_PUBLIC_KEY}\n`
                              : "ok";
                    state.stderr = "";
                }
                return { id: `${args.name}-id`, state };
            },
            call: (args: pulumi.runtime.MockCallArgs) => args.inputs,
        },
        "pi-cluster",
        "unit",
        false,
    );
    return recorded;
}

/** The mocks' organization, which setMocks leaves unset unless it is given one (getOrganization then throws). */
function organization(): string | undefined {
    try {
        return pulumi.runtime.getOrganization();
    } catch {
        return undefined;
    }
}

/**
 * Saves the mocks and config in force and returns what puts them back: other suites
 * install their own mocks when their file loads, and a suite with its own must restore them.
 */
export function saveMocks(): () => void {
    const config = pulumi.runtime.allConfig();
    // A mock monitor keeps the Mocks it was given; none is set when a file runs alone.
    const mocks = (pulumi.runtime.getMonitor() as { mocks?: pulumi.runtime.Mocks } | undefined)?.mocks;
    const saved = mocks && { mocks, project: pulumi.runtime.getProject(), stack: pulumi.runtime.getStack(), preview: pulumi.runtime.isDryRun(), org: organization() };
    return () => {
        // setMocks, not setMockOptions: only setMocks turns the engine features (secrets) back on.
        if (saved) pulumi.runtime.setMocks(saved.mocks, saved.project, saved.stack, saved.preview, saved.org);
        pulumi.runtime.setAllConfig(config);
    };
}

/**
 * Records what each component hands the engine in registerOutputs, by URN, as the
 * engine receives it (serialized, secrets still in their envelope): what lands in the
 * state. Call after installMocks.
 */
export function recordRegisteredOutputs(): Map<string, unknown> {
    const outputs = new Map<string, unknown>();
    const monitor = pulumi.runtime.getMonitor() as unknown as {
        registerResourceOutputs(req: { getUrn(): string; getOutputs(): { toJavaScript(): unknown } | undefined }, cb: unknown): void;
    };
    const original = monitor.registerResourceOutputs.bind(monitor);
    monitor.registerResourceOutputs = (req, cb) => {
        outputs.set(req.getUrn(), req.getOutputs()?.toJavaScript() ?? {});
        original(req, cb);
    };
    return outputs;
}

/** A transformation that records each resource's object, parent and dependsOn names. */
export function recorder(recorded: Map<string, Recorded>): pulumi.ResourceTransformation {
    return (args) => {
        const key = `${args.type}::${args.name}`;
        const entry = recorded.get(key) ?? { type: args.type, name: args.name, inputs: {}, dependsOn: [] };
        entry.resource = args.resource;
        const deps = args.opts.dependsOn;
        const list = (Array.isArray(deps) ? deps : deps ? [deps] : []) as pulumi.Resource[];
        entry.dependsOn = list.map((r) => (r as unknown as { __name?: string }).__name ?? "?");
        entry.parent = (args.opts.parent as unknown as { __name?: string } | undefined)?.__name;
        entry.ignoreChanges = args.opts.ignoreChanges;
        recorded.set(key, entry);
        return undefined;
    };
}

export function promiseOf<T>(o: pulumi.Output<T>): Promise<T> {
    return new Promise((resolve) => o.apply(resolve));
}

/** Waits until the engine mock has seen every resource the recorder saw. */
export async function settle(recorded: Map<string, Recorded>): Promise<void> {
    const all = [...recorded.values()].filter((r) => r.resource);
    await Promise.all(all.map((r) => promiseOf(r.resource!.urn)));
}

/** The text of a file a rendered step script carries (a `fileText` variable). */
export function decodeVar(script: string, name: string): string {
    const text = fileVar(script, name);
    if (text === undefined) throw new Error(`no file ${name} in script`);
    return text;
}

/** The nginx site's arguments for the lab's two web servers, as the stack passes them. */
export function labNginxSiteArgs(): NginxSiteArgs {
    return {
        backends: [
            { name: "pi-web1", address: "10.254.0.122" },
            { name: "pi-web2", address: "10.254.0.123" },
        ],
        appPort: 3000,
        httpPort: 80,
        managementCidr: "10.254.0.0/24",
        staticRoot: "/var/www/pi-cluster/current",
        clusterJsonPath: "/var/lib/pi-cluster/cluster.json",
        internalClusterJsonPath: "/var/lib/pi-cluster/cluster-internal.json",
        // The stack's defaults, from the config schema.
        apiRateLimit: apiRateLimitOf(parseConfig(rawConfig(2))),
        tls: {
            certificatePath: "/etc/pi-cluster/tls/server.crt",
            keyPath: "/etc/pi-cluster/tls/server.key",
            redirectHttp: true,
            hsts: false,
            statusPath: "/var/lib/pi-cluster/tls.json",
        },
    };
}

/** The nginx site of the lab's two web servers, as the stack renders it. */
export function labNginxSite(): string {
    return renderNginxSite(labNginxSiteArgs());
}
