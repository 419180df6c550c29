// The step scripts as rendered (bash -n and shellcheck on each), their shipped files, and
// lib.sh's TLS helpers run for real.
import * as assert from "assert";
import { execFileSync, spawn, spawnSync, SpawnSyncReturns } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { fileText, fileVar, fileVarNames, FileText, HEREDOC_END, renderScript, SCRIPTS_DIR, shellQuote, shellVars } from "../../components/render/shell";
import { tmpDir } from "./helpers";

describe("step scripts", () => {
    it("quotes any text as one shell word", () => {
        const nasty = `a'b"c $(rm -rf /) \`x\` \\ \n`;
        const out = execFileSync("bash", ["-c", `x=${shellQuote(nasty)}; printf %s "$x"`], { encoding: "utf8" });
        assert.strictEqual(out, nasty);
        assert.strictEqual(shellVars({ B: ["x y", "z"], A: 1 }), "A='1'\nB=('x y' 'z')");
        assert.throws(() => shellVars({ bad: "x" }), /UPPER_SNAKE_CASE/);
    });

    it("carries a file's text byte for byte as its own lines, and reads it back", () => {
        const texts = ["", "\n", "listen 80;\n", "no newline", "two\n\n", `a'b"c $(id) \`x\` \\ $HOME\n\tEOF\n${HEREDOC_END} \n`];
        for (const text of texts) {
            const script = shellVars({ A: "1", SITE_TEXT: fileText(text) });
            const out = execFileSync("bash", ["-c", `${script}\nprintf %s "$SITE_TEXT"`], { encoding: "utf8" });
            assert.strictEqual(out, text, JSON.stringify(text));
            assert.strictEqual(fileVar(script, "SITE_TEXT"), text);
            assert.deepStrictEqual(fileVarNames(script), ["SITE_TEXT"]);
        }
        // Each line of the file is a line of the script: a diff of the script shows it.
        assert.ok(shellVars({ F: fileText("server {\n    listen 80;\n}\n") }).split("\n").includes("    listen 80;"));
        assert.throws(() => fileText(`a\n${HEREDOC_END}\nb`), new RegExp(`cannot hold the line ${HEREDOC_END}`));
        assert.throws(() => fileText("a\0b"), /NUL/);
        assert.strictEqual(fileVar("A='1'", "A"), undefined);
    });

    describe("every step script, rendered", () => {
        const scripts = fs.readdirSync(SCRIPTS_DIR).filter((f) => f.endsWith(".sh") && f !== "lib.sh");
        const rendered = new Map<string, { script: string; path: string }>();
        // shellcheck takes most of a second per script (each holds lib.sh): they all run at
        // once here, one per CPU at a time, and each case below reads its own result.
        const checked = new Map<string, Promise<{ status: number | null; out: string; error?: Error }>>();
        const renderErrors = new Map<string, Error>();
        before(() => {
            const dir = tmpDir("pi-sh-");
            for (const file of scripts) {
                const vars: Record<string, string | string[] | FileText> = { STEP: "test" };
                const header = fs.readFileSync(path.join(SCRIPTS_DIR, file), "utf8").split("\n# @vars")[0];
                for (const m of header.matchAll(/^#\s+([A-Z][A-Z0-9_]+)\s/gm)) {
                    const isArray = m[1].endsWith("S") && /array/.test(header.split(m[1])[1].split("\n")[0]);
                    vars[m[1]] = isArray ? ["a", "b"] : m[1].endsWith("_TEXT") ? fileText("x = 'y' $z\n") : "x";
                }
                try {
                    const script = renderScript(file.replace(/\.sh$/, ""), vars);
                    const f = path.join(dir, file);
                    fs.writeFileSync(f, script);
                    rendered.set(file, { script, path: f });
                } catch (e) {
                    renderErrors.set(file, e as Error);
                }
            }
            const queue = scripts.filter((f) => rendered.has(f));
            const lanes = Math.max(1, os.availableParallelism());
            const results = new Map<string, (r: { status: number | null; out: string; error?: Error }) => void>();
            for (const file of queue) checked.set(file, new Promise((resolve) => results.set(file, resolve)));
            const next = (): void => {
                const file = queue.shift();
                if (!file) return;
                const child = spawn("shellcheck", ["-s", "bash", "-S", "warning", rendered.get(file)!.path], { stdio: ["ignore", "pipe", "pipe"] });
                let out = "";
                let settled = false;
                // A spawn that fails emits "error" and may emit "close" after it: one result, one next().
                const settle = (r: { status: number | null; out: string; error?: Error }) => {
                    if (settled) return;
                    settled = true;
                    results.get(file)!(r);
                    next();
                };
                child.stdout.on("data", (d) => (out += d));
                child.stderr.on("data", (d) => (out += d));
                child.on("error", (error) => settle({ status: null, out, error }));
                child.on("close", (status) => settle({ status, out }));
            };
            for (let i = 0; i < lanes; i++) next();
        });
        for (const file of scripts) {
            it(`${file} renders to a script that bash and shellcheck accept`, async () => {
                if (renderErrors.has(file)) throw renderErrors.get(file);
                const { script, path: f } = rendered.get(file)!;
                assert.doesNotMatch(script, /# @vars|# @lib/);
                assert.match(script, /\nmain "\$@" <\/dev\/null\n$/);
                execFileSync("bash", ["-n", f]);
                const sc = await checked.get(file)!;
                assert.strictEqual(sc.error, undefined, "shellcheck must be installed (apt-get install shellcheck)");
                assert.strictEqual(sc.status, 0, sc.out);
            });
        }
    });

    describe("a TLS step's certificates (lib.sh)", () => {
        // One CA and server certificate, made in before() by the step's own functions, for
        // the cases below; a case that re-issues works on its own copy. Each openssl run
        // counts: the whole took seconds when every case made its own.
        const lib = path.join(SCRIPTS_DIR, "lib.sh");
        const owner = `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`;
        let dir: string;
        let first: SpawnSyncReturns<string>;
        const sh = (body: string, d = dir) =>
            spawnSync("bash", ["-c", `set -euo pipefail; STEP=t; source "${lib}"; d="${d}/tls"; ${body}`], { encoding: "utf8" });
        /** A copy of the certificates made in before(), for a case that changes them. */
        const copy = () => {
            const d = tmpDir("pi-tls-lib-");
            fs.cpSync(path.join(dir, "tls"), path.join(d, "tls"), { recursive: true });
            return d;
        };

        before(() => {
            dir = tmpDir("pi-tls-lib-");
            const issued = sh(`tls_make_ca "$d" CA; tls_server_cert "$d" pi-db 10.254.0.124 365 30 ${owner}`);
            assert.strictEqual(issued.status, 0, issued.stderr);
            first = sh(`tls_step_output "$d/ca.crt" "$d/server.crt"`);
        });

        it("makes them and prints one JSON line: the CA and the certificate's expiry", () => {
            assert.strictEqual(first.status, 0, first.stderr);
            const out = JSON.parse(first.stdout);
            assert.deepStrictEqual(Object.keys(out), ["caCertificate", "certificateExpiry"]);
            assert.strictEqual(out.caCertificate, fs.readFileSync(path.join(dir, "tls", "ca.crt"), "utf8"));
            assert.strictEqual(fs.statSync(path.join(dir, "tls", "ca.key")).mode & 0o777, 0o600);
            assert.strictEqual(fs.statSync(path.join(dir, "tls", "server.key")).mode & 0o777, 0o600);
        });

        it("keeps a certificate that holds (tls_server_cert returns 1), so the output stays the same", () => {
            const d = copy();
            assert.strictEqual(sh(`tls_server_cert "$d" pi-db 10.254.0.124 365 30 ${owner} || echo kept`, d).stdout, "kept\n");
            assert.strictEqual(sh(`tls_step_output "$d/ca.crt" "$d/server.crt"`, d).stdout, first.stdout);
        });

        it("issues it again within the renewal window, its new key 0600", () => {
            const d = copy();
            assert.match(sh(`tls_server_cert "$d" pi-db 10.254.0.124 365 400 ${owner}`, d).stdout, /issued a server certificate/);
            assert.strictEqual(fs.statSync(path.join(d, "tls", "server.key")).mode & 0o777, 0o600);
        });

        it("issues it again for another address", () => {
            assert.match(sh(`tls_server_cert "$d" pi-db 10.254.0.125 365 30 ${owner}`, copy()).stdout, /issued a server certificate for pi-db \(10\.254\.0\.125\)/);
        });

        it("fails the step instead of printing a broken line when a file is missing", () => {
            const broken = sh(`tls_step_output "$d/ca.crt" "$d/missing.crt"`);
            assert.notStrictEqual(broken.status, 0);
            assert.strictEqual(broken.stdout, "");
        });
    });

    it("refuses a template without a vars line", () => {
        assert.throws(() => renderScript("lib", {}), /no "# @vars" line/);
    });
});
