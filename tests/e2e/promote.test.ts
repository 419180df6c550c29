// Issue 17's promotion on the lab, alone: the database and two replicas converge from bare
// (no replica added later, no dashboard), then the promotion case the replica suite runs
// too (tests/e2e/replicaLab.ts, promoteUnderWrites). About 15 minutes on a quiet machine.
import * as assert from "assert";
import { record } from "./checks";
import { up } from "./lib";
import { labWithReplicas, promoteUnderWrites, REPLICA_STEPS, sql, steps } from "./replicaLab";

describe("promotion on the lab, with the Pulumi engine", function () {
    before(() => labWithReplicas(2));

    it("converges 2 web servers, the database and 2 replicas with one up", () => {
        const r = up("promote-converge");
        for (const host of ["pi-db-read1", "pi-db-read2"]) for (const s of steps(host, REPLICA_STEPS)) assert.ok(r.changes.create?.includes(s), `${s} was not created`);
        record("promoteConvergeSeconds", r.seconds);
        for (const host of ["pi-db-read1", "pi-db-read2"]) assert.strictEqual(sql(host, "SELECT @@read_only"), "1");
    });

    it(
        "promotes the most advanced replica when the database is lost, under writes: an unapplied relay log and a less advanced replica refused, the old primary fenced when it comes back, 0 acknowledged writes lost",
        promoteUnderWrites,
    );
});
