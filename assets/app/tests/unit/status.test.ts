import assert from "node:assert/strict";
import type { DbSample } from "../../src/db/probe";
import { dbStatus, describeError, ProbeCache, queriesPerSecond } from "../../src/status";

const sample = (over: Partial<DbSample> = {}): DbSample => ({
  version: "11.8.3-MariaDB",
  latencyMs: 0.81234,
  uptimeSeconds: 100,
  connections: 3,
  queries: 1000,
  semiSync: null,
  ...over,
});

describe("status derivation", () => {
  it("computes qps as the average since the server started on the first probe", () => {
    assert.equal(queriesPerSecond(undefined, sample({ queries: 250, uptimeSeconds: 100 })), 2.5);
  });

  it("computes qps from the change between two probes", () => {
    assert.equal(queriesPerSecond(sample({ queries: 1000, uptimeSeconds: 100 }), sample({ queries: 1030, uptimeSeconds: 110 })), 3);
  });

  it("falls back to the average when the server restarted between probes", () => {
    assert.equal(queriesPerSecond(sample({ queries: 5000, uptimeSeconds: 900 }), sample({ queries: 20, uptimeSeconds: 10 })), 2);
  });

  it("gives null qps for a server that reports no uptime", () => {
    assert.equal(queriesPerSecond(undefined, sample({ uptimeSeconds: 0 })), null);
  });

  it("builds the reachable db status with the contract's fields", () => {
    const pool = { limit: 10, inUse: 1, free: 2 };
    assert.deepEqual(dbStatus("10.254.0.124", { ok: true, sample: sample() }, 1.5, pool), {
      reachable: true,
      host: "10.254.0.124",
      version: "11.8.3-MariaDB",
      latencyMs: 0.812,
      uptimeSeconds: 100,
      connections: 3,
      queries: 1000,
      queriesPerSecond: 1.5,
      pool,
      replication: null,
      lastBackup: null,
      error: null,
    });
  });

  it("builds the unreachable db status with nulls and the error", () => {
    const status = dbStatus("db", { ok: false, error: "ECONNREFUSED: nope" }, null, { limit: 10, inUse: 0, free: 0 });
    assert.equal(status.reachable, false);
    assert.equal(status.error, "ECONNREFUSED: nope");
    for (const key of ["version", "latencyMs", "uptimeSeconds", "connections", "queries", "queriesPerSecond"] as const) {
      assert.equal(status[key], null, key);
    }
  });

  it("carries the replicas' status whether or not the primary answers, and the primary's semi-sync while it answers", () => {
    const replicas = {
      maxLagSeconds: 5,
      replicas: [
        { name: "pi-db-read1", host: "10.254.0.127", reachable: true, ioRunning: true, sqlRunning: true, lagSeconds: 0, gtid: "0-1-9", inReadSet: true, reads: 3, error: null },
      ],
    };
    const semiSync = { enabled: true, active: true, clients: 1, timeoutMs: 1000, waitPoint: "AFTER_SYNC", ackedCommits: 7, unackedCommits: 0, fallbacks: 0, writesProtected: true };
    const pool = { limit: 10, inUse: 0, free: 0 };
    assert.deepEqual(dbStatus("db", { ok: true, sample: sample({ semiSync }) }, null, pool, null, replicas).replication, { maxLagSeconds: 5, semiSync, replicas: replicas.replicas });
    assert.deepEqual(dbStatus("db", { ok: false, error: "ECONNREFUSED: nope" }, null, pool, null, replicas).replication, { maxLagSeconds: 5, semiSync: null, replicas: replicas.replicas });
    // Without replicas there is no replication section, semi-sync or not.
    assert.equal(dbStatus("db", { ok: true, sample: sample({ semiSync }) }, null, pool, null, null).replication, null);
  });

  it("describes errors with their code, including Node's empty AggregateError", () => {
    assert.equal(describeError(Object.assign(new Error("Access denied"), { code: "ER_ACCESS_DENIED_ERROR" })), "ER_ACCESS_DENIED_ERROR: Access denied");
    assert.equal(describeError(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" })), "connect ECONNREFUSED 127.0.0.1:1");
    const aggregate = Object.assign(new AggregateError([new Error("connect ECONNREFUSED ::1:1"), new Error("connect ECONNREFUSED 127.0.0.1:1")], ""), { code: "ECONNREFUSED" });
    assert.equal(describeError(Object.assign(new AggregateError([new Error("a"), new Error("b")], ""), { code: "EX" })), "EX: a; b");
    assert.equal(describeError(aggregate), "connect ECONNREFUSED ::1:1; connect ECONNREFUSED 127.0.0.1:1");
    assert.equal(describeError("plain"), "plain");
  });
});

describe("ProbeCache", () => {
  it("shares one probe among concurrent requests", async () => {
    let probes = 0;
    let finish: (s: DbSample) => void = () => undefined;
    const cache = new ProbeCache(() => {
      probes++;
      return new Promise<DbSample>((resolve) => (finish = resolve));
    }, 1000);
    const pending = Promise.all([cache.get(), cache.get(), cache.get()]);
    finish(sample());
    const results = await pending;
    assert.equal(probes, 1);
    assert.ok(results.every((r) => r.outcome.ok && r.hit === false));
  });

  it("serves from the cache within its lifetime and probes again after it", async () => {
    let now = 1000;
    let probes = 0;
    const cache = new ProbeCache(async () => sample({ queries: 1000 + 10 * ++probes, uptimeSeconds: 100 + probes }), 2000, () => now);
    const first = await cache.get();
    assert.deepEqual([first.hit, first.ageMs, probes], [false, 0, 1]);
    now += 1500;
    const second = await cache.get();
    assert.deepEqual([second.hit, second.ageMs, probes], [true, 1500, 1]);
    now += 500;
    const third = await cache.get();
    assert.deepEqual([third.hit, probes], [false, 2]);
    assert.equal(third.queriesPerSecond, 10, "qps between the two probes");
  });

  it("probes on every request when the lifetime is 0", async () => {
    let probes = 0;
    const cache = new ProbeCache(async () => (probes++, sample()), 0);
    await cache.get();
    await cache.get();
    assert.equal(probes, 2);
  });

  it("caches a failure too, then recovers", async () => {
    let now = 0;
    let fail = true;
    let probes = 0;
    const cache = new ProbeCache(
      async () => {
        probes++;
        if (fail) throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
        return sample();
      },
      2000,
      () => now,
    );
    const down = await cache.get();
    assert.deepEqual(down.outcome, { ok: false, error: "connect ECONNREFUSED" });
    now += 100;
    assert.equal((await cache.get()).hit, true);
    assert.equal(probes, 1);
    fail = false;
    now += 2000;
    assert.equal((await cache.get()).outcome.ok, true);
    assert.equal(probes, 2);
  });
});
