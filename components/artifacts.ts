// Builds what is shipped to the Pis (the app, PM2 and the dashboard) on the deploying
// machine, once per source content: a source hash names each tarball in .build/, so an
// unchanged source reuses its tarball and its hash, and Pulumi sees no change.
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

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

function run(cmd: string, cwd: string): void {
    execFileSync("bash", ["-c", cmd], { cwd, stdio: ["ignore", 2, 2], env: buildEnv(process.env) });
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

/** Everything the cluster ships, each built only when its sources changed. */
export function buildClusterArtifacts(): { app: Artifact; pm2: Artifact; dashboard: Artifact } {
    return {
        app: buildArtifact(APP_ARTIFACT),
        pm2: buildArtifact(PM2_ARTIFACT),
        dashboard: buildArtifact(DASHBOARD_ARTIFACT),
    };
}

/** Returns the artifact for `spec`, building it only when no tarball exists for its source hash. */
export function buildArtifact(spec: ArtifactSpec, cacheDir = path.join(REPO, ".build")): Artifact {
    const src = path.resolve(REPO, spec.source);
    const out = path.join(cacheDir, `${spec.kind}-${sourceHash(src)}.tgz`);
    if (!fs.existsSync(out)) {
        fs.mkdirSync(cacheDir, { recursive: true });
        const scratch = fs.mkdtempSync(path.join(os.tmpdir(), `pi-cluster-${spec.kind}-`));
        try {
            for (const f of listFiles(src)) {
                fs.mkdirSync(path.dirname(path.join(scratch, f)), { recursive: true });
                fs.copyFileSync(path.join(src, f), path.join(scratch, f));
            }
            for (const cmd of spec.build) run(cmd, scratch);
            const tmp = `${out}.partial`;
            if ("dir" in spec.pack) {
                const dir = path.join(scratch, spec.pack.dir);
                pack(dir, fs.readdirSync(dir).sort(), tmp);
            } else {
                pack(scratch, spec.pack.paths, tmp);
            }
            fs.renameSync(tmp, out);
        } finally {
            fs.rmSync(scratch, { recursive: true, force: true });
        }
    }
    return { path: out, sha: fileSha(out) };
}
