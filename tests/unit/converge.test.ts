// The converge report (scripts/bench/converge.ts): each Pi's critical path from the engine's
// events and the state's dependencies, and the time by step kind.
import * as assert from "assert";
import { ConvergeEvent, convergeReport, hostsOf, parseEventLog, renderConvergeReport, spansOf, StateExport } from "../../scripts/bench/converge";

const URN = "urn:pulumi:lab::pi-cluster::pi-cluster:cluster:PiCluster$command:remote:Command::";
const urn = (name: string) => `${URN}${name}`;

/** Events of a run: each step [name, start, end], in time order; `failed` ends with resOpFailedEvent. */
function events(steps: [string, number, number, ("failed" | "same")?][]): ConvergeEvent[] {
    const out: ConvergeEvent[] = [
        { timestamp: 1000, resourcePreEvent: { metadata: { op: "create", urn: "urn:pulumi:lab::pi-cluster::pulumi:pulumi:Stack::pi-cluster-lab", type: "pulumi:pulumi:Stack" } } },
        { timestamp: 1000, resourcePreEvent: { metadata: { op: "create", urn: "urn:pulumi:lab::pi-cluster::pi-cluster:cluster:PiCluster::pi-cluster", type: "pi-cluster:cluster:PiCluster" } } },
    ];
    const timed: { t: number; e: ConvergeEvent }[] = [];
    for (const [name, start, end, how] of steps) {
        const metadata = { op: how === "same" ? "same" : "create", urn: urn(name), type: "command:remote:Command" };
        timed.push({ t: start, e: { timestamp: 1000 + start, resourcePreEvent: { metadata } } });
        timed.push({ t: end, e: { timestamp: 1000 + end, ...(how === "failed" ? { resOpFailedEvent: { metadata } } : { resOutputsEvent: { metadata } }) } });
    }
    return [...out, ...timed.sort((a, b) => a.t - b.t).map((x) => x.e)];
}

function state(deps: Record<string, string[]>, nodes: string[] = []): StateExport {
    return {
        deployment: {
            resources: [
                { urn: "urn:pulumi:lab::pi-cluster::pulumi:pulumi:Stack::pi-cluster-lab", type: "pulumi:pulumi:Stack", outputs: { nodes: nodes.map((name) => ({ name })) } } as never,
                ...Object.entries(deps).map(([name, d]) => ({ urn: urn(name), dependencies: d.map(urn) })),
            ],
        },
    };
}

describe("the converge report", () => {
    const run = events([
        ["pi-db-wait-ssh", 2, 3],
        ["pi-web1-wait-ssh", 2, 3],
        ["pi-db-read1-wait-ssh", 2, 4],
        ["pi-web1-base", 3, 30],
        ["pi-db-base", 3, 50],
        ["pi-db-read1-base", 4, 52],
        ["pi-db-tls", 50, 52],
        ["pi-web1-app", 52, 60],
        ["pi-db-read1-replica", 52, 70],
        ["pi-cluster-backup-target", 60, 61],
        ["pi-web1-noop", 5, 6, "same"],
    ]);
    const deps = state(
        {
            "pi-db-base": ["pi-db-wait-ssh"],
            "pi-web1-base": ["pi-web1-wait-ssh"],
            "pi-db-read1-base": ["pi-db-read1-wait-ssh"],
            "pi-db-tls": ["pi-db-base"],
            // The app waits for its own base and the database's TLS step: the latter ends later.
            "pi-web1-app": ["pi-web1-base", "pi-db-tls"],
            "pi-db-read1-replica": ["pi-db-read1-base", "pi-db-tls"],
            "pi-cluster-backup-target": ["pi-web1-app", "some-resource-of-another-run"],
        },
        ["pi-db", "pi-web1", "pi-db-read1"],
    );

    it("times each step that did something from the run's first step, and marks a failed one", () => {
        const spans = spansOf(events([["a", 5, 9], ["b", 6, 8, "failed"], ["c", 7, 7, "same"]]));
        assert.deepStrictEqual(spans.map((s) => [s.name, s.start, s.end, s.failed]), [["b", 1, 3, true], ["a", 0, 4, false]]);
    });

    it("follows each Pi's last step back through the step it waited for longest", () => {
        const r = convergeReport(run, deps, hostsOf(deps));
        assert.strictEqual(r.seconds, 68);
        assert.strictEqual(r.steps, 10, "the unchanged step is not one");
        assert.deepStrictEqual(r.paths.map((p) => [p.host, p.end]), [["pi-db-read1", 68], ["cluster", 59], ["pi-web1", 58], ["pi-db", 50]]);
        const web = r.paths.find((p) => p.host === "pi-web1")!;
        assert.deepStrictEqual(web.steps.map((s) => [s.name, s.after]), [
            ["pi-db-wait-ssh", undefined],
            ["pi-db-base", "pi-db-wait-ssh"],
            ["pi-db-tls", "pi-db-base"],
            ["pi-web1-app", "pi-db-tls"],
        ]);
        // pi-db-read1's steps are its own, not pi-db's (the longer name wins).
        assert.strictEqual(r.paths.find((p) => p.host === "pi-db-read1")!.steps.at(-1)!.name, "pi-db-read1-replica");
        // A dependency on a resource this run did not touch ends the walk.
        assert.deepStrictEqual(r.paths.find((p) => p.host === "cluster")!.steps.map((s) => s.name).slice(-2), ["pi-web1-app", "pi-cluster-backup-target"]);
    });

    it("adds up the step time by kind over all Pis, the largest first", () => {
        const r = convergeReport(run, deps, hostsOf(deps));
        assert.deepStrictEqual(r.byKind.slice(0, 2), [
            { kind: "base", seconds: 27 + 47 + 48, steps: 3 },
            { kind: "replica", seconds: 18, steps: 1 },
        ]);
    });

    it("renders the path of every Pi and the kinds as text, and reads an event log line by line", () => {
        const text = renderConvergeReport(convergeReport(parseEventLog(run.map((e) => JSON.stringify(e)).join("\n\n") + "\n"), deps, hostsOf(deps)), "cold");
        assert.match(text, /^cold: 10 steps in 68 s/);
        assert.match(text, /^pi-web1: last step done at 58 s; its critical path:$/m);
        assert.match(text, /^ {5}48 -> {3}50 s {2}pi-db-tls create \(2 s\), after pi-db-base$/m);
        assert.match(text, /^ {2}base +122 s +79 % +in 3 steps$/m);
    });
});
