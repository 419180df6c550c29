// A path of the stack's own directories has one home, components/constants.ts: a step script
// gets it as a variable from its renderer and never spells it. A literal copy in bash is a
// change that reaches the TypeScript side and leaves the Pis on the old path.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { LIB_VARS, renderScript, SCRIPTS_DIR } from "../../components/render/shell";
import { CONFIG_DIR, LIB_DIR, STATE_DIR } from "../../components/constants";

/** The stack's directories, each matched as itself or a path under it (not /var/lib/pi-cluster-app). */
const OWN_DIRS = new RegExp(`(${[CONFIG_DIR, STATE_DIR, LIB_DIR].map((d) => d.replace(/[/.-]/g, "\\$&")).join("|")})(?![\\w.-])`);

/** A line of bash without its comment: bash starts one at a `#` that begins a word outside quotes. */
function code(line: string): string {
    let quote = "";
    for (let i = 0; i < line.length; i++) {
        const c = line[i];
        if (quote) {
            if (c === quote) quote = "";
            else if (c === "\\" && quote === '"') i++;
        } else if (c === "'" || c === '"') quote = c;
        else if (c === "\\") i++;
        else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]))) return line.slice(0, i);
    }
    return line;
}

/** `file:line: text` for each line of `text` that spells one of the stack's directories in code. */
function ownDirLiterals(file: string, text: string): string[] {
    return text
        .split("\n")
        .map((line, i) => ({ line, n: i + 1 }))
        .filter(({ line }) => OWN_DIRS.test(code(line)))
        .map(({ line, n }) => `${file}:${n}: ${line.trim()}`);
}

describe("one home for the stack's paths", () => {
    it("finds a directory of the stack spelled in code, and not in a comment or in a longer name", () => {
        assert.deepStrictEqual(ownDirLiterals("x.sh", 'readonly D=/var/lib/pi-cluster/seed\nrm -f "/usr/local/lib/pi-cluster/lease-$n.sh"\ninstall -d /etc/pi-cluster'), [
            "x.sh:1: readonly D=/var/lib/pi-cluster/seed",
            'x.sh:2: rm -f "/usr/local/lib/pi-cluster/lease-$n.sh"',
            "x.sh:3: install -d /etc/pi-cluster",
        ]);
        assert.deepStrictEqual(ownDirLiterals("x.sh", 'echo "a # b /etc/pi-cluster/x"\necho x#/etc/pi-cluster'), ['x.sh:1: echo "a # b /etc/pi-cluster/x"', "x.sh:2: echo x#/etc/pi-cluster"]);
        assert.deepStrictEqual(
            ownDirLiterals("x.sh", "# reads /etc/pi-cluster/app.env\n    # /var/lib/pi-cluster/pending\nrun x # then /usr/local/lib/pi-cluster/y\nhome=/var/lib/pi-cluster-app\nd=/etc/pi-cluster2"),
            [],
        );
    });

    it("no step script in assets/scripts spells /etc/pi-cluster, /var/lib/pi-cluster or /usr/local/lib/pi-cluster outside comments", () => {
        const scripts = fs.readdirSync(SCRIPTS_DIR).filter((f) => f.endsWith(".sh"));
        assert.ok(scripts.includes("lib.sh") && scripts.length > 20, `expected the step scripts in ${SCRIPTS_DIR}`);
        const found = scripts.flatMap((f) => ownDirLiterals(`assets/scripts/${f}`, fs.readFileSync(path.join(SCRIPTS_DIR, f), "utf8")));
        assert.deepStrictEqual(found, [], "pass the path from components/constants.ts as a variable instead");
    });

    it("gives every script lib.sh's variables from components/constants.ts, and refuses them from a step", () => {
        const script = renderScript("web-node", { STEP: "t", APP_USER: "u", APP_HOME: "/h" });
        for (const [name, value] of Object.entries(LIB_VARS)) assert.match(script, new RegExp(`^${name}='${value}'$`, "m"));
        assert.match(script, new RegExp(`^PENDING_DIR='${STATE_DIR}/pending'$`, "m"));
        assert.throws(() => renderScript("web-node", { STEP: "t", PENDING_DIR: "/tmp/x" }), /PENDING_DIR is lib\.sh's/);
    });
});
