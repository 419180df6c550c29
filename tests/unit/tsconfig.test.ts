// The program runs transpile-only (tsconfig.pulumi.json); tsc --noEmit with tsconfig.json
// is the type check. These keep the two configs what scripts/test.sh relies on.
import * as assert from "assert";
import * as fs from "fs";
import * as yaml from "js-yaml";
import * as path from "path";
import * as ts from "typescript";

const REPO = path.join(__dirname, "..", "..");

/** A tsconfig file as written: JSON with comments, its `extends` not followed. */
function readTsconfig(name: string): { extends?: string; compilerOptions: Record<string, unknown> } {
    const file = path.join(REPO, name);
    const { config, error } = ts.parseConfigFileTextToJson(file, fs.readFileSync(file, "utf8"));
    assert.strictEqual(error, undefined, `${name} does not parse`);
    return { compilerOptions: {}, ...config };
}

describe("tsconfig.json and the program's tsconfig.pulumi.json", () => {
    const checked = readTsconfig("tsconfig.json");
    const program = readTsconfig("tsconfig.pulumi.json");

    it("runs the program with tsconfig.pulumi.json, transpile-only", () => {
        const project = yaml.load(fs.readFileSync(path.join(REPO, "Pulumi.yaml"), "utf8")) as { runtime: { options: Record<string, unknown> } };
        assert.strictEqual(project.runtime.options.tsconfig, "tsconfig.pulumi.json");
        assert.strictEqual(program.extends, "./tsconfig.json");
        assert.strictEqual(program.compilerOptions.noCheck, true);
    });

    it("leaves type checking on in tsconfig.json, which tsc --noEmit checks the whole tree with", () => {
        assert.strictEqual(checked.compilerOptions.noCheck, undefined);
        assert.ok((checked as { include?: string[] }).include?.includes("tests/**/*.ts"), "the tests are type-checked too");
    });

    // @pulumi/pulumi's cmd/run passes only the named file's own compilerOptions to ts-node,
    // over its own target and module defaults (ES2020, nodenext): an option left to
    // `extends` would be silently replaced.
    it("emits the program as tsc checks it: the same target, module, module interop and source maps", () => {
        for (const option of ["target", "module", "moduleResolution", "sourceMap", "esModuleInterop", "resolveJsonModule"]) {
            assert.ok(checked.compilerOptions[option] !== undefined, `tsconfig.json sets ${option}`);
            assert.strictEqual(program.compilerOptions[option], checked.compilerOptions[option], option);
        }
    });
});
