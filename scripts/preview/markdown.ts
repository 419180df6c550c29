// Renders `pulumi preview --json` as Markdown a reviewer can read: a table of creates,
// updates, replaces and deletes per Pi, then each changed input as a line diff. Scripts
// carry their files as heredocs (components/render/shell.ts `fileText`), each shown as its own
// diff; states written before that carried them as base64, which is decoded and diffed as
// text. Pure: JSON in, Markdown out; scripts/preview.sh runs the preview.
import { fileVar, fileVarNames, HEREDOC_END } from "../../components/render/shell";
import { unifiedDiff } from "./textDiff";

/** The document `pulumi preview --json` prints (PreviewDigest in pulumi's pkg/display). */
export interface PreviewDigest {
    config?: Record<string, string>;
    steps?: PreviewStep[];
    diagnostics?: PreviewDiagnostic[];
    duration?: number;
    changeSummary?: Record<string, number>;
    maybeCorrupt?: boolean;
}

export interface PreviewStep {
    op: string;
    urn: string;
    provider?: string;
    oldState?: ResourceState;
    newState?: ResourceState;
    diffReasons?: string[];
    replaceReasons?: string[];
    /** Keyed by property path, e.g. `stdin`, `connection.host`, `triggers[0]`; null when the provider gave none. */
    detailedDiff?: Record<string, { kind: string; inputDiff: boolean }> | null;
}

export interface ResourceState {
    urn: string;
    type: string;
    custom?: boolean;
    id?: string;
    parent?: string;
    inputs?: Record<string, unknown>;
    outputs?: Record<string, unknown>;
}

export interface PreviewDiagnostic {
    urn?: string;
    prefix?: string;
    message?: string;
    severity?: string;
}

export interface RenderOptions {
    /** The stack's name for the title. Default: read from the first URN. */
    stack?: string;
    /** Leave out resource sections past this many characters (a GitHub comment holds 65536). Default: no limit. */
    maxChars?: number;
}

/** What `--json` prints for a secret value (massagePropertyValue in pulumi's display package). */
export const SECRET = "[secret]";
/** The bucket for resources of no single Pi, such as the database password. */
export const CLUSTER = "cluster";
export const OPS = ["create", "update", "replace", "delete"] as const;
export type Op = (typeof OPS)[number];

const CLUSTER_TYPE = "pi-cluster:cluster:PiCluster";
const STACK_TYPE = "pulumi:pulumi:Stack";
const SYMBOL: Record<Op, string> = { create: "+", update: "~", replace: "+-", delete: "-" };
// Pulumi's serialized value envelopes: the key is fixed, the value names the kind.
const SIG_KEY = "4dabf18193072939515e22adb298388d";
const SIG_SECRET = "1b47061264138c4ac30d75fd1eb44270";
const SIG_ASSET = "c44067f5952c0a294b673a41bacd8c17";
const SIG_ARCHIVE = "0def7320c3a5731c473e5ecbe6d01bc7";

/** Inline code; a backtick inside would end it early. */
const code = (s: string) => `\`${s.replace(/`/g, "'")}\``;

export function urnName(urn: string): string {
    return urn.split("::").slice(3).join("::");
}

/** The resource's own type: the last of the URN's `$`-joined parent types. */
export function urnType(urn: string): string {
    const qualified = urn.split("::")[2] ?? "";
    return qualified.split("$").pop() ?? "";
}

/** The step's op as a column, or undefined for ops a reviewer need not count (same, read, the halves of a replace). */
export function opOf(step: PreviewStep): Op | undefined {
    if (urnType(step.urn) === STACK_TYPE) return undefined;
    return (OPS as readonly string[]).includes(step.op) ? (step.op as Op) : undefined;
}

function parseJson(text: string | undefined): unknown {
    if (text === undefined) return undefined;
    try {
        return JSON.parse(text);
    } catch {
        return undefined;
    }
}

const isRole = (type: string) => type.startsWith("pi-cluster:") && type !== CLUSTER_TYPE;

/** Pi names the preview knows: role and Host components (each named after its Pi) and the stack config. */
export function knownHosts(digest: PreviewDigest): Set<string> {
    const hosts = new Set<string>();
    for (const s of digest.steps ?? []) {
        if (isRole(urnType(s.urn))) hosts.add(urnName(s.urn));
        for (const state of [s.oldState, s.newState]) {
            if (state?.parent && isRole(urnType(state.parent))) hosts.add(urnName(state.parent));
        }
    }
    const config = digest.config ?? {};
    for (const key of ["pi-cluster:loadBalancer", "pi-cluster:database", "pi-cluster:webServers"]) {
        const parsed = parseJson(config[key]);
        for (const h of Array.isArray(parsed) ? parsed : [parsed]) {
            if (h && typeof h === "object" && typeof (h as { name?: unknown }).name === "string") hosts.add((h as { name: string }).name);
        }
    }
    return hosts;
}

/**
 * The Pi a step belongs to: the resource name's prefix before the step (`pi-web1-app` ->
 * `pi-web1`). Every step's parent is its Pi's component, named after the Pi, so the parent
 * decides; names are the fallback. Anything else (the DB password) belongs to the cluster.
 */
export function hostOf(step: PreviewStep, hosts: Set<string> = new Set()): string {
    const name = urnName(step.urn);
    if (isRole(urnType(step.urn))) return name;
    const parent = (step.newState ?? step.oldState)?.parent;
    if (parent && isRole(urnType(parent))) return urnName(parent);
    const prefixes = [...hosts].filter((h) => name.startsWith(`${h}-`)).sort((a, b) => b.length - a.length);
    return prefixes[0] ?? CLUSTER;
}

export type Counts = Record<Op, number>;

/** Counts per host, in table order: the cluster first, then the Pis by name. */
export function summarize(digest: PreviewDigest): Map<string, Counts> {
    const hosts = knownHosts(digest);
    const counts = new Map<string, Counts>();
    for (const step of digest.steps ?? []) {
        const op = opOf(step);
        if (!op) continue;
        const host = hostOf(step, hosts);
        const c = counts.get(host) ?? { create: 0, update: 0, replace: 0, delete: 0 };
        c[op]++;
        counts.set(host, c);
    }
    return new Map([...counts.entries()].sort(([a], [b]) => hostOrder(a, b)));
}

function hostOrder(a: string, b: string): number {
    if (a === b) return 0;
    if (a === CLUSTER) return -1;
    if (b === CLUSTER) return 1;
    return a.localeCompare(b, "en", { numeric: true });
}

/** Splits a Pulumi property path (`a.b[0]["c.d"]`) into its keys. */
export function parsePropertyPath(path: string): (string | number)[] {
    const keys: (string | number)[] = [];
    const re = /([^.[\]]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]/g;
    for (const m of path.matchAll(re)) {
        if (m[1] !== undefined) keys.push(m[1]);
        else if (m[2] !== undefined) keys.push(Number(m[2]));
        else keys.push(JSON.parse(`"${m[3]}"`) as string);
    }
    return keys;
}

function valueAt(root: unknown, keys: (string | number)[]): unknown {
    let v: unknown = root;
    for (const k of keys) {
        if (v === null || typeof v !== "object") return undefined;
        v = (v as Record<string | number, unknown>)[k];
    }
    return v;
}

export interface PropertyChange {
    path: string;
    kind: string;
    old: unknown;
    new: unknown;
}

/** The changed properties of a step, each with its old and new value. */
export function propertyChanges(step: PreviewStep): PropertyChange[] {
    const detailed = step.detailedDiff ?? Object.fromEntries((step.diffReasons ?? []).map((p) => [p, { kind: "update", inputDiff: true }]));
    return Object.keys(detailed)
        .sort()
        .map((path) => {
            const keys = parsePropertyPath(path);
            const { kind, inputDiff } = detailed[path];
            // inputDiff false: the provider compared its recorded state with the new inputs.
            const oldInputs = valueAt(step.oldState?.inputs, keys);
            const oldOutputs = valueAt(step.oldState?.outputs, keys);
            const old = inputDiff ? oldInputs : (oldOutputs ?? oldInputs);
            return {
                path,
                kind,
                old: kind.startsWith("add") ? undefined : old,
                new: kind.startsWith("delete") ? undefined : valueAt(step.newState?.inputs, keys),
            };
        });
}

/** True when the value is, or holds, a secret: such a diff shows no value at all. */
export function holdsSecret(v: unknown): boolean {
    if (v === SECRET) return true;
    if (Array.isArray(v)) return v.some(holdsSecret);
    if (v && typeof v === "object") {
        const o = v as Record<string, unknown>;
        if (o[SIG_KEY] === SIG_SECRET) return true;
        return Object.values(o).some(holdsSecret);
    }
    return false;
}

/** The text a reviewer compares: strings as they are, an asset's text or its path and hash, anything else as JSON. */
export function textOf(v: unknown): string {
    if (v === undefined || v === null) return "";
    if (typeof v === "string") return v;
    return JSON.stringify(readable(v), null, 2);
}

function readable(v: unknown): unknown {
    if (Array.isArray(v)) return v.map(readable);
    if (v && typeof v === "object") {
        const o = v as Record<string, unknown>;
        if (o[SIG_KEY] === SIG_ASSET || o[SIG_KEY] === SIG_ARCHIVE) {
            const what = o[SIG_KEY] === SIG_ASSET ? "asset" : "archive";
            if (typeof o.text === "string") return o.text;
            const where = o.path ?? o.uri ?? "(inline)";
            return `${what} ${where}${typeof o.hash === "string" ? ` sha256:${o.hash}` : ""}`;
        }
        return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, readable(x)]));
    }
    return v;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The text a string is the base64 of, or undefined. Short strings and anything that does
 * not decode to printable UTF-8 stay as they are, so a hash or a word is never "decoded".
 */
export function decodeBase64Text(s: string): string | undefined {
    if (s.length < 16 || !BASE64.test(s)) return undefined;
    const bytes = Buffer.from(s, "base64");
    let text: string;
    try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
        return undefined;
    }
    // Printable text only: tabs, newlines and carriage returns are the only controls allowed.
    if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text)) return undefined;
    return text;
}

export interface TextSection {
    /** What the section is, after the property path: "" for the value itself, else e.g. "`SITE_TEXT`". */
    label: string;
    old: string;
    new: string;
}

// One `NAME='...'` or `NAME=('...' '...')` line, as components/render/shell.ts renders variables.
const VAR_LINE = /^([A-Z][A-Z0-9_]*)=(.*)$/;
const QUOTED_WORD = /'([^']*)'/g;

/**
 * Splits a script's text into its body and the files it carries: each heredoc file, and each
 * base64 word of a `NAME='...'` line (older states), becomes its own section, and the body
 * shows a placeholder, so a changed file reads as its changed lines under its own name.
 */
function extractEmbedded(text: string): { body: string; files: Map<string, { text: string; label: string }> } {
    const files = new Map<string, { text: string; label: string }>();
    for (const name of fileVarNames(text)) {
        const file = fileVar(text, name);
        if (file === undefined) continue;
        files.set(name, { text: file, label: code(name) });
        const start = text.indexOf(`${name}=$(cat <<'${HEREDOC_END}'`);
        const endMark = `\n${name}=\${${name}%`;
        const end = text.indexOf("\n", text.indexOf(endMark, start) + 1);
        text = `${text.slice(0, start)}${name}=<${name}: file, below>${end < 0 ? "" : text.slice(end)}`;
    }
    const body = text
        .split("\n")
        .map((line) => {
            const m = VAR_LINE.exec(line);
            if (!m) return line;
            const [, name, value] = m;
            const isArray = value.startsWith("(");
            let index = 0;
            const replaced = value.replace(QUOTED_WORD, (word, inner: string) => {
                const key = isArray ? `${name}[${index}]` : name;
                index++;
                const decoded = decodeBase64Text(inner);
                if (decoded === undefined) return word;
                files.set(key, { text: decoded, label: `${code(key)} (base64, decoded)` });
                return `'<${key}: base64, decoded below>'`;
            });
            return `${name}=${replaced}`;
        })
        .join("\n");
    return { body, files };
}

/** The texts to diff for one changed value: the value itself (decoded if base64), then each file a script carries. */
export function textSections(oldText: string, newText: string): TextSection[] {
    const oldDecoded = oldText ? decodeBase64Text(oldText) : "";
    const newDecoded = newText ? decodeBase64Text(newText) : "";
    if (oldDecoded !== undefined && newDecoded !== undefined && (oldText || newText)) {
        if (oldDecoded !== oldText || newDecoded !== newText) {
            return [{ label: "(base64, decoded)", old: oldDecoded, new: newDecoded }];
        }
    }
    const a = extractEmbedded(oldText);
    const b = extractEmbedded(newText);
    const sections: TextSection[] = [{ label: "", old: a.body, new: b.body }];
    const keys = [...new Set([...a.files.keys(), ...b.files.keys()])];
    for (const key of keys) {
        const label = (b.files.get(key) ?? a.files.get(key))!.label;
        sections.push({ label, old: a.files.get(key)?.text ?? "", new: b.files.get(key)?.text ?? "" });
    }
    return sections;
}

/** A code fence longer than any run of backticks in the text, so the text cannot close it. */
function fence(text: string, lang = ""): string {
    const longest = Math.max(2, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
    const f = "`".repeat(longest + 1);
    return `${f}${lang}\n${text}\n${f}`;
}

/** The Markdown of one changed property: a diff per section that changed, or a line saying why there is none. */
export function renderChange(c: PropertyChange): string {
    if (holdsSecret(c.old) || holdsSecret(c.new)) {
        return `${code(c.path)}: ${SECRET} (${c.kind}; the values are secret and not shown)`;
    }
    const forces = c.kind.endsWith("-replace") ? " (forces a replace)" : "";
    const parts: string[] = [];
    for (const s of textSections(textOf(c.old), textOf(c.new))) {
        const diff = unifiedDiff(s.old, s.new);
        if (!diff) continue;
        parts.push(`${code(c.path)}${s.label ? ` › ${s.label}` : ""}${forces}\n${fence(diff, "diff")}`);
    }
    if (parts.length) return parts.join("\n\n");
    if (c.old === undefined && c.new === undefined) return `${code(c.path)}: ${c.kind}`;
    return `${code(c.path)}: ${c.kind}, ${code(JSON.stringify(c.old ?? null))} → ${code(JSON.stringify(c.new ?? null))}`;
}

function renderStep(step: PreviewStep, op: Op): string {
    const name = urnName(step.urn);
    const head = `**${SYMBOL[op]} ${op}** ${code(name)} (${code(urnType(step.urn))})`;
    if (op === "create" || op === "delete") return head;
    const lines = [head];
    if (op === "replace" && step.replaceReasons?.length) {
        lines.push(`replaced because of: ${step.replaceReasons.map(code).join(", ")}`);
    }
    const changes = propertyChanges(step);
    if (changes.length === 0) lines.push("(the provider named no changed property)");
    for (const c of changes) lines.push(renderChange(c));
    return lines.join("\n\n");
}

function renderTable(counts: Map<string, Counts>): string {
    const rows = [`| host | ${OPS.join(" | ")} |`, `|---|${OPS.map(() => "--:").join("|")}|`];
    const total: Counts = { create: 0, update: 0, replace: 0, delete: 0 };
    for (const [host, c] of counts) {
        rows.push(`| ${code(host)} | ${OPS.map((op) => c[op]).join(" | ")} |`);
        for (const op of OPS) total[op] += c[op];
    }
    rows.push(`| **total** | ${OPS.map((op) => `**${total[op]}**`).join(" | ")} |`);
    return rows.join("\n");
}

function renderDiagnostics(digest: PreviewDigest): string {
    const shown = (digest.diagnostics ?? []).filter((d) => d.severity === "error" || d.severity === "warning");
    if (shown.length === 0) return "";
    // The message already starts with its severity ("warning: ..."), as pulumi prints it.
    const text = shown.map((d) => `${d.urn ? `${urnName(d.urn)}: ` : ""}${(d.prefix ?? "") + (d.message ?? "")}`.trimEnd()).join("\n");
    const failed = shown.some((d) => d.severity === "error");
    return `${failed ? "**The preview failed.**" : "**Warnings:**"}\n\n${fence(text)}`;
}

function stackOf(digest: PreviewDigest): string | undefined {
    const urn = digest.steps?.[0]?.urn;
    return urn?.startsWith("urn:pulumi:") ? urn.slice("urn:pulumi:".length).split("::")[0] : undefined;
}

/** The whole preview as Markdown: title, failures, the table per host, then each host's changes. */
export function renderPreview(digest: PreviewDigest, opts: RenderOptions = {}): string {
    const stack = opts.stack ?? stackOf(digest);
    const head: string[] = [`## Pulumi preview${stack ? ` of ${code(stack)}` : ""}`];
    const diagnostics = renderDiagnostics(digest);
    if (diagnostics) head.push(diagnostics);
    const counts = summarize(digest);
    const unchanged = digest.changeSummary?.same ?? 0;
    if (counts.size === 0) {
        head.push(`No changes${unchanged ? `: ${unchanged} resources unchanged` : ""}.`);
        return `${head.join("\n\n")}\n`;
    }
    head.push(renderTable(counts));
    if (unchanged) head.push(`${unchanged} resources unchanged.`);

    const hosts = knownHosts(digest);
    const sections: string[] = [];
    for (const host of counts.keys()) {
        const steps = (digest.steps ?? []).filter((s) => opOf(s) && hostOf(s, hosts) === host);
        sections.push(`### ${code(host)}`);
        for (const s of steps) sections.push(renderStep(s, opOf(s)!));
    }

    let out = head.join("\n\n");
    const limit = opts.maxChars ?? Infinity;
    // Room for the note below, so the cut text plus the note still fits.
    const reserve = 300;
    for (let k = 0; k < sections.length; k++) {
        const next = `${out}\n\n${sections[k]}`;
        if (next.length + reserve > limit) {
            const left = sections.slice(k).filter((s) => !s.startsWith("### ")).length;
            out += `\n\n_${left} more change(s) left out to keep this under ${limit} characters; \`scripts/preview.sh --stack ${stack ?? "STACK"}\` prints them all._`;
            break;
        }
        out = next;
    }
    return `${out}\n`;
}
