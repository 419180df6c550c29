// Remote steps are bash scripts from assets/scripts, sent on stdin to `sudo bash -s`.
// Their inputs are injected as shell variables in place of the `# @vars` line, so the
// command text never changes with its inputs and never carries a secret.
import * as fs from "fs";
import * as path from "path";
import { PENDING_DIR, TLS_RENEW_SCRIPT, TLS_RENEW_UNIT } from "../constants";

export const SCRIPTS_DIR = path.join(__dirname, "..", "..", "assets", "scripts");

/** Quotes a string for bash so that it stays one literal word. */
export function shellQuote(value: string): string {
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A file's text, carried in a step's script as its own lines (see `fileText`). */
export class FileText {
    constructor(readonly text: string) {}
}

/**
 * Marks a rendered file's text to ship inside a step's script as a quoted heredoc, line
 * for line: a one-line change to a template is then a one-line change of the script, and
 * `pulumi preview --diff` shows exactly that line. The text must be a text file's: no NUL,
 * and no line that is the heredoc's delimiter.
 */
export function fileText(text: string): FileText {
    if (text.includes("\0")) throw new Error("a shipped file's text cannot hold a NUL byte");
    if (text.split("\n").includes(HEREDOC_END)) throw new Error(`a shipped file's text cannot hold the line ${HEREDOC_END}`);
    return new FileText(text);
}

export type ShellValue = string | number | boolean | string[] | FileText;

export const HEREDOC_END = "PI_CLUSTER_EOF";

/**
 * `NAME=<the text, byte for byte>`. A command substitution drops trailing newlines, so the
 * heredoc is followed by an "x" that is cut off after; a heredoc always ends with a newline,
 * so a text without one gets one there, cut off with the "x" (`%?x`).
 */
function heredocVar(name: string, text: string): string {
    const newline = text === "" || text.endsWith("\n");
    const body = newline ? text : `${text}\n`;
    return `${name}=$(cat <<'${HEREDOC_END}'; printf x\n${body}${HEREDOC_END}\n)\n${name}=\${${name}%${newline ? "" : "?"}x}`;
}

/**
 * The text of a file a rendered script carries (the inverse of `fileText` in `shellVars`),
 * or undefined when the script has no such variable.
 */
export function fileVar(script: string, name: string): string | undefined {
    const re = new RegExp(`^${name}=\\$\\(cat <<'${HEREDOC_END}'; printf x\n([\\s\\S]*?)^${HEREDOC_END}\n\\)\n${name}=\\$\\{${name}%(\\?)?x\\}$`, "m");
    const m = re.exec(script);
    if (!m) return undefined;
    return m[2] ? m[1].slice(0, -1) : m[1];
}

/** The names of the files a rendered script carries, in order. */
export function fileVarNames(script: string): string[] {
    return [...script.matchAll(new RegExp(`^([A-Z][A-Z0-9_]*)=\\$\\(cat <<'${HEREDOC_END}'; printf x$`, "gm"))].map((m) => m[1]);
}

/**
 * Renders `NAME=value` lines (arrays become bash arrays, file texts heredocs), sorted for a
 * stable text.
 */
export function shellVars(vars: Record<string, ShellValue>): string {
    return Object.keys(vars)
        .sort()
        .map((name) => {
            if (!/^[A-Z][A-Z0-9_]*$/.test(name)) throw new Error(`shell variable name ${JSON.stringify(name)} must be UPPER_SNAKE_CASE`);
            const v = vars[name];
            if (v instanceof FileText) return heredocVar(name, v.text);
            const text = Array.isArray(v) ? `(${v.map(shellQuote).join(" ")})` : shellQuote(String(v));
            return `${name}=${text}`;
        })
        .join("\n");
}

/**
 * What lib.sh reads besides STEP. lib.sh is inlined into every script, so every script
 * gets these, from their one definition in components/constants.ts.
 */
export const LIB_VARS: Readonly<Record<string, string>> = { PENDING_DIR, TLS_RENEW_SCRIPT, TLS_RENEW_UNIT };

/**
 * Returns the script `assets/scripts/<name>.sh` with its `# @vars` line replaced by the
 * given variables and lib.sh's (LIB_VARS). Every script ends with `main "$@" </dev/null`,
 * so nothing it runs can read the rest of the script from stdin.
 */
export function renderScript(name: string, vars: Record<string, ShellValue>): string {
    for (const v of Object.keys(vars)) {
        if (v in LIB_VARS) throw new Error(`assets/scripts/${name}.sh: ${v} is lib.sh's, set in every script from LIB_VARS; do not pass it`);
    }
    const template = fs.readFileSync(path.join(SCRIPTS_DIR, `${name}.sh`), "utf8");
    const lib = fs.readFileSync(path.join(SCRIPTS_DIR, "lib.sh"), "utf8");
    if (!template.includes("\n# @vars\n")) throw new Error(`assets/scripts/${name}.sh has no "# @vars" line`);
    if (!template.includes("# @lib\n")) throw new Error(`assets/scripts/${name}.sh has no "# @lib" line`);
    if (!/\nmain "\$@" <\/dev\/null\n?$/.test(template)) {
        throw new Error(`assets/scripts/${name}.sh must end with: main "$@" </dev/null`);
    }
    const libBody = lib.replace(/^#!.*\n/, "");
    // Function replacers: a string replacement would expand "$'" and "$&" in the scripts.
    return template.replace("\n# @vars\n", () => `\n${shellVars({ ...LIB_VARS, ...vars })}\n`).replace("# @lib\n", () => libBody);
}
