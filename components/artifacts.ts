// Builds what is shipped to the Pis (the app, PM2 and the dashboard) on the deploying
// machine, once per source content: a source hash names each tarball in .build/, so an
// unchanged source reuses its tarball and its hash, and Pulumi sees no change.
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { shellQuote } from "./render/shell";

export interface Artifact {
    /** The tarball on the deploying machine. */
    path: string;
    /** First 16 hex digits of its SHA-256: names its upload and its release on the Pi. */
    sha: string;
}

export interface ArtifactSpec {
    kind: string;
    /** Source directory, relative to the repo root (or absolute). */
    source: string;
    /** Shell commands run in a scratch copy of the source. */
    build: string[];
    /** What to pack, relative to the scratch copy: a directory whose contents become the tarball's root, or a list of paths. */
    pack: { dir: string } | { paths: string[] };
}

const REPO = path.join(__dirname, "..");
const SKIP = new Set(["node_modules", "dist", ".angular", "coverage", ".git"]);

export const APP_ARTIFACT: ArtifactSpec = {
    kind: "app",
    source: "assets/app",
    build: ["npm ci --no-audit --no-fund", "npm run build", "npm prune --omit=dev --no-audit --no-fund"],
    pack: { paths: ["dist", "package.json", "node_modules"] },
};

export const PM2_ARTIFACT: ArtifactSpec = {
    kind: "pm2",
    source: "assets/pm2",
    build: ["npm ci --omit=dev --no-audit --no-fund"],
    pack: { paths: ["package.json", "node_modules"] },
};

export const DASHBOARD_ARTIFACT: ArtifactSpec = {
    kind: "dashboard",
    source: "assets/dashboard",
    build: ["npm ci --no-audit --no-fund", "npm run build"],
    pack: { dir: "dist/dashboard/browser" },
};

function listFiles(dir: string, rel = ""): string[] {
    return fs
        .readdirSync(path.join(dir, rel), { withFileTypes: true })
        .filter((e) => !SKIP.has(e.name))
        .flatMap((e) => {
            const p = path.join(rel, e.name);
            return e.isDirectory() ? listFiles(dir, p) : [p];
        })
        .sort();
}

/** Hash of every source file's path and content (build outputs and node_modules excluded). */
export function sourceHash(dir: string): string {
    const h = crypto.createHash("sha256");
    for (const f of listFiles(dir)) {
        h.update(f).update("\0").update(fs.readFileSync(path.join(dir, f))).update("\0");
    }
    return h.digest("hex").slice(0, 16);
}

function fileSha(file: string): string {
    return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex").slice(0, 16);
}

// npm settings a build may need to reach its registry through this machine's network:
// where the registry and cache are, the proxy, and the TLS trust for either. Names as npm
// reads them from npm_config_<name>, lower-cased with "-" as "_".
const NPM_SETTINGS = new Set([
    "registry", "cache", "offline", "prefer_offline", "prefer_online",
    "proxy", "https_proxy", "noproxy", "strict_ssl", "ca", "cafile",
    "userconfig", "globalconfig",
]);
const PROXY_VARS = new Set(["http_proxy", "https_proxy", "no_proxy"]);

/**
 * The environment a build command gets. Under `pulumi up` the process environment holds
 * PULUMI_CONFIG, the stack config with its secrets decrypted (the SSH key among them),
 * and every dependency's install script would see it. So a build gets an allowlist only:
 * PATH and HOME, npm's registry, cache and proxy settings, the machine's proxy, and
 * NG_CLI_ANALYTICS=false, so `ng` never stops to ask about analytics.
 */
export function buildEnv(env: NodeJS.ProcessEnv): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(env)) {
        if (value === undefined) continue;
        const lower = name.toLowerCase();
        const npm = lower.startsWith("npm_config_") ? lower.slice("npm_config_".length).replace(/-/g, "_") : undefined;
        const keep =
            name === "PATH" ||
            name === "HOME" ||
            PROXY_VARS.has(lower) ||
            // "@scope:registry" points a package scope at its own registry.
            (npm !== undefined && (NPM_SETTINGS.has(npm) || /^@[^:]+:registry$/.test(npm)));
        if (keep) out[name] = value;
    }
    out.NG_CLI_ANALYTICS = "false";
    return out;
}

/**
 * Runs each build's commands in its scratch directory, all builds at once (most of a build is
 * npm waiting on the disk and the network, so two or three share a machine well); each line
 * of their output goes to stderr prefixed with the build's kind. Throws naming every build
 * that failed, after all have ended.
 */
function runBuilds(builds: { kind: string; dir: string; commands: string[] }[]): void {
    const script = [
        "set -o pipefail",
        ...builds.map((b, i) => `(cd ${shellQuote(b.dir)} && ${b.commands.map((c) => `{ ${c}; }`).join(" && ")}) 2>&1 | sed -u ${shellQuote(`s/^/[${b.kind}] /`)} >&2 & p${i}=$!`),
        // The exit status has bit i set when build i failed.
        "status=0",
        ...builds.map((b, i) => `wait "$p${i}" || status=$((status | ${1 << i}))`),
        'exit "$status"',
    ].join("\n");
    try {
        execFileSync("bash", ["-c", script], { stdio: ["ignore", 2, 2], env: buildEnv(process.env) });
    } catch (e) {
        const status = (e as { status?: number | null }).status ?? 0;
        const failed = builds.filter((_, i) => status & (1 << i)).map((b) => b.kind);
        throw new Error(`the build of ${failed.length ? failed.join(", ") : builds.map((b) => b.kind).join(", ")} failed (its output, each line marked with its kind, is above)`);
    }
}

/** Packs deterministically (sorted names, fixed times and owners), so equal trees give equal bytes. */
function pack(from: string, entries: string[], out: string): void {
    execFileSync(
        "bash",
        [
            "-c",
            `set -o pipefail; tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=u+rwX,go+rX,go-w ` +
                `--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$1" -cf - "\${@:3}" | gzip -n -9 > "$2"`,
            "pack",
            from,
            out,
            ...entries,
        ],
        { stdio: ["ignore", "inherit", "inherit"] },
    );
}

/** Everything the cluster ships, each built only when its sources changed, the builds at once. */
export function buildClusterArtifacts(): { app: Artifact; pm2: Artifact; dashboard: Artifact } {
    const [app, pm2, dashboard] = buildArtifacts([APP_ARTIFACT, PM2_ARTIFACT, DASHBOARD_ARTIFACT]);
    return { app, pm2, dashboard };
}

/** Returns the artifact for `spec`, building it only when no tarball exists for its source hash. */
export function buildArtifact(spec: ArtifactSpec, cacheDir = path.join(REPO, ".build")): Artifact {
    return buildArtifacts([spec], cacheDir)[0];
}

/**
 * Returns the artifact for each spec, in order. Those with no tarball for their source hash
 * are built side by side, each in a scratch copy of its source, then packed.
 */
export function buildArtifacts(specs: ArtifactSpec[], cacheDir = path.join(REPO, ".build")): Artifact[] {
    const plans = specs.map((spec) => {
        const src = path.resolve(REPO, spec.source);
        return { spec, src, out: path.join(cacheDir, `${spec.kind}-${sourceHash(src)}.tgz`), scratch: "" };
    });
    const missing = plans.filter((p) => !fs.existsSync(p.out));
    if (missing.length > 0) {
        fs.mkdirSync(cacheDir, { recursive: true });
        try {
            for (const p of missing) {
                p.scratch = fs.mkdtempSync(path.join(os.tmpdir(), `pi-cluster-${p.spec.kind}-`));
                for (const f of listFiles(p.src)) {
                    fs.mkdirSync(path.dirname(path.join(p.scratch, f)), { recursive: true });
                    fs.copyFileSync(path.join(p.src, f), path.join(p.scratch, f));
                }
            }
            runBuilds(missing.map((p) => ({ kind: p.spec.kind, dir: p.scratch, commands: p.spec.build })));
            for (const { spec, scratch, out } of missing) {
                const tmp = `${out}.partial`;
                if ("dir" in spec.pack) {
                    const dir = path.join(scratch, spec.pack.dir);
                    pack(dir, fs.readdirSync(dir).sort(), tmp);
                } else {
                    pack(scratch, spec.pack.paths, tmp);
                }
                fs.renameSync(tmp, out);
            }
        } finally {
            for (const p of missing) if (p.scratch) fs.rmSync(p.scratch, { recursive: true, force: true });
        }
    }
    return plans.map((p) => ({ path: p.out, sha: fileSha(p.out) }));
}
