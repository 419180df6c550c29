// The preview's Markdown (scripts/preview): fixtures are real `pulumi preview --json --diff`
// output (CLI v3.274.1, pulumi-command 1.2.1) of the cluster's component tree carrying the
// real rendered scripts; tests/unit/fixtures/preview/capture.sh regenerates them.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { fileText, renderScript } from "../../components/render/shell";
import {
    decodeBase64Text,
    hostOf,
    parsePropertyPath,
    PreviewDigest,
    PreviewStep,
    renderChange,
    renderPreview,
    SECRET,
    summarize,
} from "../../scripts/preview/markdown";
import { unifiedDiff } from "../../scripts/preview/textDiff";
import { labNginxSite } from "./helpers";

const FIXTURES = path.join(__dirname, "fixtures", "preview");
const REPO = path.join(__dirname, "..", "..");

function fixture(name: string): PreviewDigest {
    return JSON.parse(fs.readFileSync(path.join(FIXTURES, `${name}.json`), "utf8")) as PreviewDigest;
}

function stepNamed(digest: PreviewDigest, name: string): PreviewStep {
    const s = digest.steps!.find((x) => x.urn.endsWith(`::${name}`));
    if (!s) throw new Error(`no step ${name}`);
    return s;
}

/** The -/+ lines of every diff block in the Markdown (hunk headers and context left out). */
function changedLines(markdown: string): string[] {
    const blocks = [...markdown.matchAll(/```diff\n([\s\S]*?)\n```/g)].map((m) => m[1]);
    return blocks.flatMap((b) => b.split("\n").filter((l) => /^[-+]/.test(l)));
}

/** The Markdown of one host's section, up to the next host. */
function section(markdown: string, host: string): string {
    const start = markdown.indexOf(`### \`${host}\``);
    assert.ok(start >= 0, `no section for ${host}`);
    const next = markdown.indexOf("\n### ", start + 1);
    return markdown.slice(start, next < 0 ? undefined : next);
}

function table(markdown: string): string[] {
    return markdown.split("\n").filter((l) => l.startsWith("|"));
}

describe("preview Markdown", function () {
    it("shows a one-line change to the nginx site as exactly that line's -/+ pair, under the file's name", () => {
        const md = renderPreview(fixture("nginx-one-line"));
        assert.deepStrictEqual(changedLines(md), ["-    client_max_body_size 64k;", "+    client_max_body_size 128k;"]);
        assert.match(md, /`stdin` › `SITE_TEXT`\n```diff\n@@ -\d+,7 \+\d+,7 @@\n/);
        // Neither the script around it nor a base64 blob is shown.
        assert.doesNotMatch(md, /[A-Za-z0-9+/]{60,}/);
        assert.doesNotMatch(md, /put_file/);
        assert.deepStrictEqual(table(md).slice(2), ["| `pi-lb` | 0 | 1 | 0 | 0 |", "| **total** | **0** | **1** | **0** | **0** |"]);
    });

    it("shows a one-line edit of today's nginx template as that line's pair, too", () => {
        // The same step with scripts rendered now, so a template change cannot outdate this test.
        const digest = fixture("nginx-one-line");
        const step = stepNamed(digest, "pi-lb-nginx-conf");
        const site = labNginxSite();
        // A line of the HTTPS settings: the locations stand in each server that serves the site.
        const line = site.split("\n").find((l) => l.trim().startsWith("ssl_session_timeout"));
        assert.ok(line, "the site has an ssl_session_timeout line");
        assert.strictEqual(site.split(line).length, 2, "that line is unique in the site");
        const script = (text: string) =>
            renderScript("lb-nginx-conf", { STEP: "pi-lb-nginx-conf", SITE_TEXT: fileText(text), CLUSTER_JSON_TEXT: fileText("{}\n"), CLUSTER_JSON: "/x" });
        const edited = line.replace(/\d+d;/, "2d;");
        step.oldState!.outputs!.stdin = script(site);
        step.oldState!.inputs!.stdin = script(site);
        step.newState!.inputs!.stdin = script(site.replace(line, edited));
        assert.deepStrictEqual(changedLines(renderPreview(digest)), [`-${line}`, `+${edited}`]);
    });

    it("counts creates, updates and replaces per Pi, with the DB password's step under pi-db", () => {
        const md = renderPreview(fixture("scale-out"));
        assert.deepStrictEqual(table(md), [
            "| host | create | update | replace | delete |",
            "|---|--:|--:|--:|--:|",
            "| `pi-db` | 0 | 1 | 0 | 0 |",
            "| `pi-lb` | 0 | 2 | 0 | 0 |",
            "| `pi-web1` | 0 | 0 | 1 | 0 |",
            "| `pi-web2` | 0 | 0 | 1 | 0 |",
            "| `pi-web3` | 4 | 0 | 0 | 0 |",
            "| **total** | **4** | **3** | **2** | **0** |",
        ]);
        // The per-host totals agree with the engine's own count.
        const d = fixture("scale-out");
        for (const op of ["create", "update", "replace"]) {
            const sum = [...summarize(d).values()].reduce((n, c) => n + c[op as "create"], 0);
            assert.strictEqual(sum, d.changeSummary![op], op);
        }
    });

    it("shows a secret input as [secret] with no diff and no value", () => {
        const md = renderPreview(fixture("scale-out"));
        const db = section(md, "pi-db");
        assert.match(db, /`stdin`: \[secret\] \(update; the values are secret and not shown\)/);
        assert.doesNotMatch(db, /```/);
        assert.doesNotMatch(md, /DB_PASSWORD|0Password/);
    });

    it("never prints either side when one side of a change is secret", () => {
        const out = renderChange({ path: "stdin", kind: "update", old: "DB_PASSWORD='Plain0Text0Before'\n", new: SECRET });
        assert.doesNotMatch(out, /Plain0Text0Before/);
        const nested = renderChange({ path: "connection", kind: "update", old: { host: "a", privateKey: SECRET }, new: { host: "b", privateKey: SECRET } });
        assert.strictEqual(nested, "`connection`: [secret] (update; the values are secret and not shown)");
    });

    it("shows the diffs of a scale-out: the new per-node upstream, the firewall's new address, the release trigger", () => {
        const md = renderPreview(fixture("scale-out"));
        const lb = section(md, "pi-lb");
        assert.ok(changedLines(lb).includes("+    server 10.254.0.125:3000 max_fails=0;"));
        assert.ok(
            changedLines(lb).includes(
                '+        ip daddr { 10.254.0.122, 10.254.0.123, 10.254.0.125 } tcp dport 3000 accept comment "proxy to the web servers"',
            ),
        );
        assert.match(section(md, "pi-web1"), /`triggers\[0\]` \(forces a replace\)\n```diff\n@@ -1 \+1 @@\n-1\n\+2\n```/);
        assert.match(section(md, "pi-web3"), /\*\*\+ create\*\* `pi-web3-firewall` \(`command:local:Command`\)/);
    });

    it("puts a scale-in's deletes under the Pi that goes, from the old state's parent", () => {
        const md = renderPreview(fixture("scale-in"));
        assert.ok(table(md).includes("| `pi-web3` | 0 | 0 | 0 | 4 |"), table(md).join("\n"));
        assert.match(section(md, "pi-web3"), /\*\*- delete\*\* `pi-web3-app`/);
        assert.ok(changedLines(md).includes("-    server 10.254.0.125:3000 max_fails=0;"));
    });

    it("says so when nothing changes", () => {
        const d = fixture("nginx-one-line");
        d.steps = d.steps!.filter((s) => s.op === "same");
        d.changeSummary = { same: 16 };
        assert.match(renderPreview(d), /^## Pulumi preview of `production`\n\n[\s\S]*No changes: 16 resources unchanged\.\n$/);
    });

    it("puts a failed preview's errors first", () => {
        const d: PreviewDigest = {
            diagnostics: [{ message: "error: invalid stack config:\n  pi-cluster:appPort: expected a port between 1 and 65535, got 70000\n", severity: "error" }],
        };
        const md = renderPreview(d, { stack: "production" });
        assert.match(md, /\*\*The preview failed\.\*\*\n\n```\nerror: invalid stack config:\n  pi-cluster:appPort: expected a port/);
    });

    it("cuts the diffs to stay under maxChars and says how many it left out", () => {
        const full = renderPreview(fixture("scale-out"));
        const cut = renderPreview(fixture("scale-out"), { maxChars: 2500 });
        assert.ok(full.length > 2500);
        assert.ok(cut.length <= 2500, `${cut.length}`);
        assert.match(cut, /_\d+ more change\(s\) left out to keep this under 2500 characters; `scripts\/preview.sh --stack production` prints them all\._\n$/);
        assert.ok(cut.includes("| **total** | **4** | **3** | **2** | **0** |"), "the table is always there");
    });

    it("scripts/preview.sh --json prints the renderer's Markdown", () => {
        const file = path.join(FIXTURES, "scale-out.json");
        const r = spawnSync("bash", [path.join(REPO, "scripts", "preview.sh"), "--json", file], { encoding: "utf8" });
        assert.strictEqual(r.status, 0, r.stderr);
        assert.strictEqual(r.stdout, renderPreview(fixture("scale-out")));
    });
});

describe("preview Markdown helpers", function () {
    it("decodes base64 of text, and leaves hashes, words and binary alone", () => {
        assert.strictEqual(decodeBase64Text(Buffer.from("listen 80;\nserver_name _;\n").toString("base64")), "listen 80;\nserver_name _;\n");
        for (const s of ["aaaaaaaaaaaaaaaa", "0123456789abcdef0123456789abcdef", "pi-web1", "dGV4dA==", Buffer.from([0, 1, 2, 250, 251, 252, 253, 254, 255, 0, 1, 2]).toString("base64")]) {
            assert.strictEqual(decodeBase64Text(s), undefined, s);
        }
    });

    it("renders a unified diff with 3 lines of context and GNU-style hunk headers", () => {
        const a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
        assert.strictEqual(unifiedDiff(a, a.replace("5\n", "five\n")), "@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8");
        assert.strictEqual(unifiedDiff("a\nb\n", "x\na\nb\n"), "@@ -1,2 +1,3 @@\n+x\n a\n b");
        assert.strictEqual(unifiedDiff("", "x\n"), "@@ -0,0 +1 @@\n+x");
        assert.strictEqual(unifiedDiff("a\n", ""), "@@ -1 +0,0 @@\n-a");
        assert.strictEqual(unifiedDiff("same\n", "same\n"), "");
        assert.strictEqual(unifiedDiff("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n", "one\n2\n3\n4\n5\n6\n7\n8\n9\nten\n"), "@@ -1,4 +1,4 @@\n-1\n+one\n 2\n 3\n 4\n@@ -7,4 +7,4 @@\n 7\n 8\n 9\n-10\n+ten");
    });

    it("splits Pulumi property paths", () => {
        assert.deepStrictEqual(parsePropertyPath("connection.host"), ["connection", "host"]);
        assert.deepStrictEqual(parsePropertyPath("triggers[0]"), ["triggers", 0]);
        assert.deepStrictEqual(parsePropertyPath('environment["A.B"].x'), ["environment", "A.B", "x"]);
    });

    it("gives the DB password to the cluster, and a parentless step to the longest Pi name it starts with", () => {
        const urn = (type: string, name: string) => `urn:pulumi:production::pi-cluster::${type}::${name}`;
        const cluster = urn("pi-cluster:cluster:PiCluster", "pi-cluster");
        const password: PreviewStep = {
            op: "create",
            urn: urn("pi-cluster:cluster:PiCluster$random:index/randomPassword:RandomPassword", "pi-cluster-db-password"),
            newState: { urn: "", type: "random:index/randomPassword:RandomPassword", parent: cluster },
        };
        assert.strictEqual(hostOf(password, new Set(["pi-db"])), "cluster");
        const orphan: PreviewStep = { op: "update", urn: urn("command:remote:Command", "pi-web10-app") };
        assert.strictEqual(hostOf(orphan, new Set(["pi-web1", "pi-web10"])), "pi-web10");
    });
});
