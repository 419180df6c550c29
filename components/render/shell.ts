// Remote steps are bash scripts from assets/scripts, sent on stdin to `sudo bash -s`.
// Their inputs are injected as shell variables in place of the `# @vars` line, so the
// command text never changes with its inputs and never carries a secret.
import * as fs from "fs";
import * as path from "path";

export const SCRIPTS_DIR = path.join(__dirname, "..", "..", "assets", "scripts");

/** Quotes a string for bash so that it stays one literal word. */
export function shellQuote(value: string): string {
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

export type ShellValue = string | number | boolean | string[];

/** Renders `NAME=value` lines (arrays become bash arrays), sorted for a stable text. */
export function shellVars(vars: Record<string, ShellValue>): string {
    return Object.keys(vars)
        .sort()
        .map((name) => {
            if (!/^[A-Z][A-Z0-9_]*$/.test(name)) throw new Error(`shell variable name ${JSON.stringify(name)} must be UPPER_SNAKE_CASE`);
            const v = vars[name];
            const text = Array.isArray(v) ? `(${v.map(shellQuote).join(" ")})` : shellQuote(String(v));
            return `${name}=${text}`;
        })
        .join("\n");
}

/** Base64 of a file's text, for shipping rendered files inside a step's script. */
export function b64(text: string): string {
    return Buffer.from(text, "utf8").toString("base64");
}

/**
 * Returns the script `assets/scripts/<name>.sh` with its `# @vars` line replaced by the
 * given variables. Every script ends with `main "$@" </dev/null`, so nothing it runs
 * can read the rest of the script from stdin.
 */
export function renderScript(name: string, vars: Record<string, ShellValue>): string {
    const template = fs.readFileSync(path.join(SCRIPTS_DIR, `${name}.sh`), "utf8");
    const lib = fs.readFileSync(path.join(SCRIPTS_DIR, "lib.sh"), "utf8");
    if (!template.includes("\n# @vars\n")) throw new Error(`assets/scripts/${name}.sh has no "# @vars" line`);
    if (!template.includes("# @lib\n")) throw new Error(`assets/scripts/${name}.sh has no "# @lib" line`);
    if (!/\nmain "\$@" <\/dev\/null\n?$/.test(template)) {
        throw new Error(`assets/scripts/${name}.sh must end with: main "$@" </dev/null`);
    }
    const libBody = lib.replace(/^#!.*\n/, "");
    // Function replacers: a string replacement would expand "$'" and "$&" in the scripts.
    return template.replace("\n# @vars\n", () => `\n${shellVars(vars)}\n`).replace("# @lib\n", () => libBody);
}
