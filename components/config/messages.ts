// How a bad config is reported: one line per problem, each naming its key as \`pulumi config\`
// spells it, with what was expected and what was given (never the value of an unknown key),
// in one ConfigError that Pulumi prints without a stack trace.
import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";

export const NAMESPACE = "pi-cluster";

/**
 * Thrown for bad stack config; the message names every bad key. A RunError, so Pulumi
 * prints just the message, not a stack trace. Its stack is that message too, with no
 * frames: Pulumi's runner formats every uncaught error's stack for its telemetry, and
 * source-mapping those frames took 30 s of a 37 s failed preview here (5.5 s without).
 */
export class ConfigError extends pulumi.RunError {
    constructor(message: string) {
        super(message);
        Object.defineProperty(this, "stack", { value: `${this.name}: ${message}`, configurable: true, writable: true });
    }
}

function formatPath(p: PropertyKey[]): string {
    return p.reduce<string>((acc, seg) => (typeof seg === "number" ? `${acc}[${seg}]` : `${acc}.${String(seg)}`), `${NAMESPACE}:`).replace(":.", ":");
}

function editDistance(a: string, b: string): number {
    let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
        const row = [i];
        for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
        prev = row;
    }
    return prev[b.length];
}

/** The known key a typo most likely meant, if one is close. */
function closestKey(key: string, known: string[]): string | undefined {
    const scored = known
        .map((k) => ({ k, d: editDistance(key.toLowerCase(), k.toLowerCase()) }))
        .filter(({ k, d }) => d <= Math.max(2, Math.floor(k.length / 4)))
        .sort((x, y) => x.d - y.d);
    return scored[0]?.k;
}

// The value of an unknown key is never shown: it may be a secret set under a mistyped name.
function unknownKey(path: PropertyKey[], key: string, known: string[]): string {
    const near = closestKey(key, known);
    const expected = path.length === 0 ? "the keys are listed in Pulumi.yaml" : `expected one of ${known.join(", ")}`;
    return `  ${formatPath([...path, key])}: unknown key${near ? `, did you mean ${near}?` : `; ${expected}`}`;
}

function describe(value: unknown): string {
    if (value === undefined) return "nothing";
    const s = JSON.stringify(value);
    return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function valueAt(raw: unknown, p: PropertyKey[]): unknown {
    let v: unknown = raw;
    for (const seg of p) {
        if (v === null || typeof v !== "object") return undefined;
        v = (v as Record<PropertyKey, unknown>)[seg];
    }
    return v;
}

/**
 * The report's lines for the schema's issues on `raw`; `knownAt(path)` lists the keys the
 * level at `path` knows, for an unknown key's "did you mean".
 */
export function issueLines(issues: z.ZodError["issues"], raw: unknown, knownAt: (path: PropertyKey[]) => string[]): string[] {
    return issues.flatMap((i) => {
        if (i.code === "unrecognized_keys") return i.keys.map((k) => unknownKey(i.path, k, knownAt(i.path)));
        const own = i.code === "custom" && (i as { params?: { whole?: boolean } }).params?.whole;
        const got = own ? "" : `, got ${describe(valueAt(raw, i.path))}`;
        return `  ${formatPath(i.path)}: ${i.message}${got}`;
    });
}
