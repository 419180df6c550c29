import assert from "node:assert/strict";
import {
  gtidWaitAllowsReplica,
  inReadSet,
  parseGtidToken,
  pickRoundRobin,
  readSetProblem,
  requestGtid,
  sampleFromSlaveStatus,
  semiSyncFromServer,
  type HealthSample,
} from "../../src/db/replicas";

const healthy = (over: Partial<Extract<HealthSample, { reachable: true }>> = {}): HealthSample => ({
  reachable: true,
  configured: true,
  ioRunning: true,
  sqlRunning: true,
  lagSeconds: 0,
  gtid: "0-1-42",
  lastError: null,
  ...over,
});

describe("replica decisions", () => {
  describe("read-set membership", () => {
    it("admits a replica whose threads run and whose lag is within the bound, the bound included", () => {
      assert.equal(inReadSet(healthy({ lagSeconds: 0 }), 5), true);
      assert.equal(inReadSet(healthy({ lagSeconds: 5 }), 5), true);
      assert.equal(inReadSet(healthy({ lagSeconds: 0 }), 0), true);
    });

    it("refuses a replica lagging past the bound, saying by how much", () => {
      assert.equal(inReadSet(healthy({ lagSeconds: 6 }), 5), false);
      assert.equal(readSetProblem(healthy({ lagSeconds: 6 }), 5), "lagging 6 s, over the 5 s bound");
      assert.equal(inReadSet(healthy({ lagSeconds: 1 }), 0), false);
    });

    it("refuses a replica whose lag is unknown (Seconds_Behind_Master NULL)", () => {
      assert.equal(inReadSet(healthy({ lagSeconds: null }), 5), false);
      assert.match(readSetProblem(healthy({ lagSeconds: null }), 5)!, /Seconds_Behind_Master is NULL/);
    });

    it("refuses a replica whose I/O or SQL thread is stopped, with the server's error", () => {
      assert.equal(inReadSet(healthy({ ioRunning: false }), 5), false);
      assert.equal(inReadSet(healthy({ sqlRunning: false }), 5), false);
      assert.equal(
        readSetProblem(healthy({ sqlRunning: false, lastError: "Duplicate entry '1' for key 'PRIMARY'" }), 5),
        "replication SQL thread not running: Duplicate entry '1' for key 'PRIMARY'",
      );
      assert.equal(readSetProblem(healthy({ ioRunning: false }), 5), "replication I/O thread not running");
    });

    it("refuses an unreachable replica, one not checked yet, and a server that is no replica", () => {
      assert.equal(inReadSet({ reachable: false, error: "ECONNREFUSED: connect ECONNREFUSED 10.254.0.127:3306" }, 5), false);
      assert.equal(readSetProblem({ reachable: false, error: "ECONNREFUSED: x" }, 5), "ECONNREFUSED: x");
      assert.equal(inReadSet(undefined, 5), false);
      assert.equal(readSetProblem(undefined, 5), "not checked yet");
      assert.equal(inReadSet(sampleFromSlaveStatus(undefined, ""), 5), false);
      assert.match(readSetProblem(sampleFromSlaveStatus(undefined, ""), 5)!, /not a replica/);
    });
  });

  describe("SHOW SLAVE STATUS", () => {
    it("reads the threads, the lag and the GTID position as MariaDB reports them", () => {
      const sample = sampleFromSlaveStatus(
        { Slave_IO_Running: "Yes", Slave_SQL_Running: "Yes", Seconds_Behind_Master: 3, Last_IO_Error: "", Last_SQL_Error: "" },
        "0-1-7",
      );
      assert.deepEqual(sample, { reachable: true, configured: true, ioRunning: true, sqlRunning: true, lagSeconds: 3, gtid: "0-1-7", lastError: null });
    });

    it("counts Connecting as not running and a NULL lag as unknown", () => {
      const sample = sampleFromSlaveStatus(
        { Slave_IO_Running: "Connecting", Slave_SQL_Running: "Yes", Seconds_Behind_Master: null, Last_IO_Error: "error connecting to master", Last_SQL_Error: "" },
        "",
      );
      assert.deepEqual(sample, { reachable: true, configured: true, ioRunning: false, sqlRunning: true, lagSeconds: null, gtid: null, lastError: "error connecting to master" });
    });
  });

  describe("round robin", () => {
    it("takes each member of the read set in turn", () => {
      const picks = [0, 1, 2, 3, 4].map((turn) => pickRoundRobin(["read1", "read2"], turn));
      assert.deepEqual(picks, ["read1", "read2", "read1", "read2", "read1"]);
    });

    it("has nothing to pick from an empty read set (the read goes to the primary)", () => {
      assert.equal(pickRoundRobin([], 7), undefined);
    });
  });

  describe("GTID tokens", () => {
    it("accepts MariaDB GTID positions, one or several domains", () => {
      assert.equal(parseGtidToken("0-1-42"), "0-1-42");
      assert.equal(parseGtidToken(" 0-1-42,1-2-7 "), "0-1-42,1-2-7");
    });

    it("ignores anything else, so nothing unvalidated reaches SQL", () => {
      for (const bad of ["", "0-1", "0-1-42,", "a-b-c", "0-1-42; DROP TABLE notes", "0-1-42'", "0 - 1 - 42", `${"1".repeat(30)}-1-1`, undefined, 42, ["0-1-1"]]) {
        assert.equal(parseGtidToken(bad), null, `accepted ${JSON.stringify(bad)}`);
      }
    });

    it("takes the header first, else the cookie, and ignores malformed values of either", () => {
      assert.equal(requestGtid("0-1-9", "pi_cluster_gtid=0-1-5", "pi_cluster_gtid"), "0-1-9");
      assert.equal(requestGtid("junk", "a=b; pi_cluster_gtid=0-1-5", "pi_cluster_gtid"), "0-1-5");
      assert.equal(requestGtid(undefined, "pi_cluster_gtid=0-1-5%2C1-2-3", "pi_cluster_gtid"), "0-1-5,1-2-3");
      assert.equal(requestGtid(undefined, "pi_cluster_gtid=0-1-5'--", "pi_cluster_gtid"), null);
      assert.equal(requestGtid(undefined, "other_gtid=0-1-5", "pi_cluster_gtid"), null);
      assert.equal(requestGtid(undefined, undefined, "pi_cluster_gtid"), null);
    });
  });

  describe("read-your-writes", () => {
    it("reads on the replica only when MASTER_GTID_WAIT returned 0", () => {
      assert.equal(gtidWaitAllowsReplica(0), true);
      assert.equal(gtidWaitAllowsReplica("0"), true);
      for (const other of [-1, 1, "-1", null, undefined, ""]) assert.equal(gtidWaitAllowsReplica(other), false, `allowed ${JSON.stringify(other)}`);
    });
  });

  describe("semi-sync on the primary", () => {
    const server = (over: Record<string, string> = {}) =>
      new Map(Object.entries({
        rpl_semi_sync_master_enabled: "ON",
        rpl_semi_sync_master_timeout: "1000",
        rpl_semi_sync_master_wait_point: "AFTER_SYNC",
        Rpl_semi_sync_master_status: "ON",
        Rpl_semi_sync_master_clients: "2",
        Rpl_semi_sync_master_yes_tx: "120",
        Rpl_semi_sync_master_no_tx: "3",
        Rpl_semi_sync_master_no_times: "1",
        ...over,
      }));

    it("reads MariaDB's variables and counters: writes are protected while it waits and a replica acks", () => {
      assert.deepEqual(semiSyncFromServer(server()), {
        enabled: true, active: true, clients: 2, timeoutMs: 1000, waitPoint: "AFTER_SYNC", ackedCommits: 120, unackedCommits: 3, fallbacks: 1, writesProtected: true,
      });
    });

    it("says writes are unprotected after a wait ran out (async), with no replica acking, or with semi-sync off", () => {
      assert.equal(semiSyncFromServer(server({ Rpl_semi_sync_master_status: "OFF" }))!.writesProtected, false);
      // ON with no replica connected: the next commit waits the timeout, then goes on async.
      assert.equal(semiSyncFromServer(server({ Rpl_semi_sync_master_clients: "0" }))!.writesProtected, false);
      const off = semiSyncFromServer(server({ rpl_semi_sync_master_enabled: "OFF", Rpl_semi_sync_master_status: "OFF" }))!;
      assert.equal(off.enabled, false);
      assert.equal(off.writesProtected, false);
    });

    it("is null for a server without semi-sync, and counts what it cannot read as 0", () => {
      assert.equal(semiSyncFromServer(new Map()), null);
      const partial = semiSyncFromServer(new Map([["rpl_semi_sync_master_enabled", "ON"]]))!;
      assert.deepEqual([partial.active, partial.clients, partial.timeoutMs, partial.waitPoint, partial.writesProtected], [false, 0, 0, "", false]);
    });
  });
});
