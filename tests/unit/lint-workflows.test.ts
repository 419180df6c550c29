// scripts/lint-workflows.sh: actionlint, built from the Go module proxy, passes the repo's
// workflows and fails on a bad one, shellcheck's findings in `run:` scripts included.
import * as assert from "assert";
import { spawnSync, SpawnSyncReturns } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { tmpDir } from "./helpers";

const SCRIPT = path.join(__dirname, "..", "..", "scripts", "lint-workflows.sh");
const NO_GO = 3;

function lint(dir?: string): SpawnSyncReturns<string> {
    return spawnSync("bash", [SCRIPT, ...(dir ? [dir] : [])], { encoding: "utf8" });
}

const made: string[] = [];

function workflowDir(files: Record<string, string>): string {
    const dir = tmpDir("pi-workflows-");
    made.push(dir);
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
    return dir;
}

const out = (r: SpawnSyncReturns<string>) => `${r.stdout}${r.stderr}`;

describe("scripts/lint-workflows.sh (actionlint)", function () {
    // The first run on a machine builds actionlint from the Go module proxy.
    this.timeout(15 * 60 * 1000);
    let repoRun: SpawnSyncReturns<string>;

    before(function () {
        repoRun = lint();
        if (repoRun.status === NO_GO) {
            assert.match(repoRun.stderr, /go is not on PATH/);
            console.log("      skipped: go is not installed, so actionlint cannot be built here");
            this.skip();
        }
    });

    after(() => {
        for (const dir of made) fs.rmSync(dir, { recursive: true, force: true });
    });

    it("passes the repo's workflows with no finding", () => {
        assert.strictEqual(repoRun.status, 0, out(repoRun));
        assert.match(repoRun.stderr, /actionlint v\d+\.\d+\.\d+ on 2 workflow\(s\)/);
    });

    it("fails on an expression that names an undefined step, with the file and line", () => {
        const dir = workflowDir({
            "bad.yml": "name: bad\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo \"${{ steps.nope.outputs.x }}\"\n",
        });
        const r = lint(dir);
        assert.strictEqual(r.status, 1, out(r));
        assert.match(r.stdout, /bad\.yml:7:\d+: property "nope" is not defined/);
    });

    it("fails on a shellcheck finding in a run: script", () => {
        const dir = workflowDir({
            "unquoted.yml": "name: unquoted\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: rm -rf $TARGET/build\n",
        });
        const r = lint(dir);
        assert.strictEqual(r.status, 1, out(r));
        assert.match(r.stdout, /unquoted\.yml:7:\d+: shellcheck reported issue in this script: SC2086/);
    });

    it("fails, rather than passing, on a directory with no workflow", () => {
        const r = lint(workflowDir({ "README.md": "not a workflow\n" }));
        assert.strictEqual(r.status, 1, out(r));
        assert.match(r.stderr, /no workflow \(\*\.yml, \*\.yaml\) in /);
    });
});
