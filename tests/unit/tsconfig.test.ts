// The program runs under sucrase's require hook, which strips the types and checks none;
// tsc --noEmit with tsconfig.json is the type check. These keep Pulumi.yaml, package.json
// and tsconfig.json what scripts/test.sh relies on.
import * as assert from "assert";
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import { transform } from "sucrase";
import * as ts from "typescript";

const REPO = path.join(__dirname, "..", "..");

/** A tsconfig file as written: JSON with comments, its `extends` not followed. */
function readTsconfig(name: string): { compilerOptions: Record<string, unknown>; include?: string[] } {
    const file = path.join(REPO, name);
    const { config, error } = ts.parseConfigFileTextToJson(file, fs.readFileSync(file, "utf8"));
    assert.strictEqual(error, undefined, `${name} does not parse`);
    return { compilerOptions: {}, ...config };
}

/** Every .ts file under dir, recursively. */
function tsFiles(dir: string): string[] {
    return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
        const p = path.join(dir, e.name);
        return e.isDirectory() ? tsFiles(p) : e.name.endsWith(".ts") ? [p] : [];
    });
}

describe("how the program runs: sucrase, and tsc --noEmit as the type check", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8"));

    it("runs index.ts through sucrase's require hook, not ts-node", () => {
        const project = yaml.load(fs.readFileSync(path.join(REPO, "Pulumi.yaml"), "utf8")) as { runtime: { options: Record<string, unknown> } };
        assert.strictEqual(project.runtime.options.typescript, false, "typescript: true would load ts-node and the compiler on every run");
        // sucrase first: components/lazy-modules.ts is TypeScript, and must load before the SDK.
        assert.strictEqual(project.runtime.options.nodeargs, "--require sucrase/register/ts --require ./components/lazy-modules.ts");
        assert.strictEqual(pkg.main, "index.ts");
        // A dependency, not a dev one: `npm ci --omit=dev` on a deploying machine keeps it.
        assert.ok(pkg.dependencies.sucrase, "sucrase is a dependency of the program");
        assert.ok(!fs.existsSync(path.join(REPO, "tsconfig.pulumi.json")), "no second tsconfig to keep equal");
    });

    it("runs the policy pack through sucrase too: typescript off, and main.js requiring the hook before index.ts", () => {
        const pack = yaml.load(fs.readFileSync(path.join(REPO, "policy", "PulumiPolicy.yaml"), "utf8")) as { runtime: { name: string; options: Record<string, unknown> } };
        assert.strictEqual(pack.runtime.name, "nodejs");
        assert.strictEqual(pack.runtime.options.typescript, false, "typescript: true would type-check the pack with ts-node on every preview");
        const packJson = JSON.parse(fs.readFileSync(path.join(REPO, "policy", "package.json"), "utf8"));
        assert.strictEqual(packJson.main, "main.js");
        const main = fs.readFileSync(path.join(REPO, "policy", "main.js"), "utf8");
        const code = main.split("\n").filter((l) => l.trim() && !l.trim().startsWith("//"));
        assert.deepStrictEqual(code, ['require("sucrase/register/ts");', 'module.exports = require("./index.ts");']);
    });

    // The operator scripts' TypeScript halves (scripts/*.sh run them with node -r sucrase/register/ts) and the CLI too.
    it("strips every file of the program and of the operator scripts with sucrase's TypeScript and CommonJS transforms", () => {
        const files = [path.join(REPO, "index.ts"), ...tsFiles(path.join(REPO, "components")), ...tsFiles(path.join(REPO, "scripts")), ...tsFiles(path.join(REPO, "cli"))];
        assert.ok(files.length > 20, `only ${files.length} files`);
        for (const f of files) {
            const { code } = transform(fs.readFileSync(f, "utf8"), { transforms: ["typescript", "imports"], filePath: f });
            assert.ok(code.length > 0, f);
        }
    });

    it("leaves type checking on in tsconfig.json, which tsc --noEmit checks the whole tree with", () => {
        const checked = readTsconfig("tsconfig.json");
        assert.strictEqual(checked.compilerOptions.noCheck, undefined);
        assert.strictEqual(checked.compilerOptions.strict, true);
        for (const dir of ["index.ts", "components/**/*.ts", "tests/**/*.ts", "scripts/**/*.ts", "policy/**/*.ts"]) {
            assert.ok(checked.include?.includes(dir), `tsc checks ${dir}`);
        }
    });
});
