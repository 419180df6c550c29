// A unified line diff (LCS), so a changed config line reads as that line's -/+ pair.
// The `diff` npm package is only a transitive dependency here, so this small one stands in.

export type Edit = { op: " " | "-" | "+"; line: string; oldNo: number; newNo: number };

/** Past this many LCS cells the middle is shown as all removed, then all added: a bounded cost. */
const MAX_CELLS = 4_000_000;

export function splitLines(text: string): string[] {
    if (text === "") return [];
    const lines = text.split("\n");
    // A final newline ends the last line; it does not start an empty one.
    if (lines[lines.length - 1] === "") lines.pop();
    return lines;
}

/** The edit script from `a` to `b`: kept, removed and added lines, in order. */
export function lineEdits(a: string[], b: string[]): Edit[] {
    let start = 0;
    while (start < a.length && start < b.length && a[start] === b[start]) start++;
    let endA = a.length;
    let endB = b.length;
    while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
        endA--;
        endB--;
    }
    const edits: Edit[] = [];
    for (let i = 0; i < start; i++) edits.push({ op: " ", line: a[i], oldNo: i + 1, newNo: i + 1 });
    edits.push(...middleEdits(a.slice(start, endA), b.slice(start, endB), start, start));
    for (let i = endA, j = endB; i < a.length; i++, j++) edits.push({ op: " ", line: a[i], oldNo: i + 1, newNo: j + 1 });
    return edits;
}

function middleEdits(a: string[], b: string[], offA: number, offB: number): Edit[] {
    const n = a.length;
    const m = b.length;
    if (n * m > MAX_CELLS) {
        return [
            ...a.map((line, i) => ({ op: "-" as const, line, oldNo: offA + i + 1, newNo: offB })),
            ...b.map((line, j) => ({ op: "+" as const, line, oldNo: offA + n, newNo: offB + j + 1 })),
        ];
    }
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) {
        for (let j = m - 1; j >= 0; j--) {
            lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
        }
    }
    const edits: Edit[] = [];
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
        if (i < n && j < m && a[i] === b[j]) {
            edits.push({ op: " ", line: a[i], oldNo: offA + i + 1, newNo: offB + j + 1 });
            i++;
            j++;
        } else if (j < m && (i === n || lcs[i][j + 1] > lcs[i + 1][j])) {
            edits.push({ op: "+", line: b[j], oldNo: offA + i, newNo: offB + j + 1 });
            j++;
        } else {
            edits.push({ op: "-", line: a[i], oldNo: offA + i + 1, newNo: offB + j });
            i++;
        }
    }
    return edits;
}

/**
 * A unified diff of two texts (`@@ -l,s +l,s @@` hunks with `context` lines around each
 * change), or "" when they are equal line for line.
 */
export function unifiedDiff(oldText: string, newText: string, context = 3): string {
    const edits = lineEdits(splitLines(oldText), splitLines(newText));
    const changed = edits.map((e, k) => (e.op === " " ? -1 : k)).filter((k) => k >= 0);
    if (changed.length === 0) return "";
    // Group changes whose context windows touch into one hunk.
    const hunks: [number, number][] = [];
    for (const k of changed) {
        const from = Math.max(0, k - context);
        const to = Math.min(edits.length - 1, k + context);
        const last = hunks[hunks.length - 1];
        if (last && from <= last[1] + 1) last[1] = to;
        else hunks.push([from, to]);
    }
    const out: string[] = [];
    for (const [from, to] of hunks) {
        const part = edits.slice(from, to + 1);
        const olds = part.filter((e) => e.op !== "+");
        const news = part.filter((e) => e.op !== "-");
        // An empty side starts at the line before it, as in GNU diff.
        const oldStart = olds.length ? olds[0].oldNo : part[0].oldNo;
        const newStart = news.length ? news[0].newNo : part[0].newNo;
        out.push(`@@ -${range(oldStart, olds.length)} +${range(newStart, news.length)} @@`);
        for (const e of part) out.push(`${e.op}${e.line}`);
    }
    return out.join("\n");
}

function range(start: number, count: number): string {
    return count === 1 ? `${start}` : `${start},${count}`;
}
