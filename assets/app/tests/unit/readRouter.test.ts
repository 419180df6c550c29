import assert from "node:assert/strict";
import type { ReplicaSpec } from "../../src/config";
import { ReadRouter, replicaDbConfig, type ReplicaBackend } from "../../src/db/readRouter";
import { tlsOptions, type PoolUsage, type Queryable } from "../../src/db/pool";
import type { HealthSample } from "../../src/db/replicas";

/** A Queryable that answers every statement with `answer`, recording the SQL. */
function fakeDb(answer: string, log: string[] = []): Queryable {
  return {
    query: async <T>(sql: string) => {
      log.push(sql);
      return answer as unknown as T;
    },
  };
}

const HEALTHY: HealthSample = { reachable: true, configured: true, ioRunning: true, sqlRunning: true, lagSeconds: 0, gtid: "0-1-1", lastError: null };

/** A replica backend whose health and reads the test sets. */
class FakeReplica implements ReplicaBackend {
  health: HealthSample | Error = HEALTHY;
  /** Makes reads throw. */
  readError?: Error;
  /** What MASTER_GTID_WAIT "returns": true = 0 (caught up). */
  caughtUp = true;
  gtidsWaited: Array<string | null> = [];
  drops = 0;
  closed = false;
  usage?: () => PoolUsage;

  constructor(readonly name: string) {}

  async read<T>(fn: (db: Queryable) => Promise<T>, gtid: string | null): Promise<{ caughtUp: true; value: T } | { caughtUp: false }> {
    this.gtidsWaited.push(gtid);
    if (this.readError) throw this.readError;
    if (gtid !== null && !this.caughtUp) return { caughtUp: false };
    return { caughtUp: true, value: await fn(fakeDb(this.name)) };
  }

  async check(): Promise<HealthSample> {
    if (this.health instanceof Error) throw this.health;
    return this.health;
  }

  dropIdle(): void {
    this.drops++;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const spec = (name: string, i: number): ReplicaSpec => ({ name, host: `10.254.0.${127 + i}`, port: 3306 });

/** A router over fake replicas, with the health-check timer under the test's control. */
function setup(names: string[], maxLag = 5) {
  const replicas = names.map((n) => new FakeReplica(n));
  let tick: () => void = () => undefined;
  const primaryLog: string[] = [];
  const router = new ReadRouter(
    fakeDb("primary", primaryLog),
    replicas.map((backend, i) => ({ spec: spec(backend.name, i), backend })),
    maxLag,
    { every: (_ms, fn) => ((tick = fn), () => undefined) },
  );
  /** Runs one round of health checks and lets them settle. */
  const check = async () => {
    tick();
    await new Promise((resolve) => setImmediate(resolve));
  };
  const read = async (gtid: string | null = null) => (await router.read((db) => db.query<string>("SELECT ..."), gtid)).from;
  return { router, replicas, check, read, primaryLog };
}

describe("read router (no database)", () => {
  it("reads on the primary, with no health checks, when no replica is configured", async () => {
    const { router, read, primaryLog } = setup([]);
    router.start();
    assert.equal(router.enabled, false);
    assert.equal(await read(), "primary");
    assert.deepEqual(primaryLog, ["SELECT ..."]);
    assert.equal(router.status(), null);
  });

  it("reads on the primary until the first health check admits a replica", async () => {
    const { router, read } = setup(["pi-db-read1"]);
    assert.equal(await read(), "primary");
    router.start();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(await read(), "pi-db-read1");
  });

  it("spreads reads round robin over the read set", async () => {
    const { router, read } = setup(["pi-db-read1", "pi-db-read2"]);
    router.start();
    await new Promise((resolve) => setImmediate(resolve));
    const froms = [await read(), await read(), await read(), await read()];
    assert.deepEqual(froms, ["pi-db-read1", "pi-db-read2", "pi-db-read1", "pi-db-read2"]);
    assert.deepEqual(router.status()!.replicas.map((r) => r.reads), [2, 2]);
  });

  it("keeps a lagging, stopped or unreachable replica out of the read set, and lets it back when healthy", async () => {
    const { router, replicas, check, read } = setup(["pi-db-read1", "pi-db-read2"], 5);
    router.start();
    await check();
    replicas[0].health = { ...HEALTHY, lagSeconds: 6 } as HealthSample;
    replicas[1].health = new Error("ECONNREFUSED: connect ECONNREFUSED 10.254.0.128:3306");
    await check();
    assert.deepEqual(router.readSet(), []);
    assert.equal(await read(), "primary");
    const status = router.status()!;
    assert.deepEqual(
      status.replicas.map((r) => [r.name, r.reachable, r.lagSeconds, r.inReadSet, r.error]),
      [
        ["pi-db-read1", true, 6, false, "lagging 6 s, over the 5 s bound"],
        ["pi-db-read2", false, null, false, "ECONNREFUSED: connect ECONNREFUSED 10.254.0.128:3306"],
      ],
    );
    // Leaving the read set drops the idle connections, which may be dead.
    assert.deepEqual(replicas.map((r) => r.drops), [1, 1]);
    replicas[0].health = { ...HEALTHY, sqlRunning: false } as HealthSample;
    replicas[1].health = HEALTHY;
    await check();
    assert.deepEqual(router.readSet(), ["pi-db-read2"]);
    assert.equal(await read(), "pi-db-read2");
  });

  it("runs a read that fails on a replica on the primary, and takes the replica out at once", async () => {
    const { router, replicas, check, read } = setup(["pi-db-read1", "pi-db-read2"]);
    router.start();
    await check();
    replicas[0].readError = Object.assign(new Error("reset by peer"), { code: "ECONNRESET" });
    assert.equal(await read(), "primary");
    assert.deepEqual(router.readSet(), ["pi-db-read2"]);
    assert.equal(replicas[0].drops, 1);
    assert.match(router.status()!.replicas[0].error!, /^a read failed: ECONNRESET: reset by peer$/);
    assert.equal(await read(), "pi-db-read2");
    assert.equal(await read(), "pi-db-read2");
    // Its next health check brings it back.
    replicas[0].readError = undefined;
    await check();
    assert.deepEqual(router.readSet(), ["pi-db-read1", "pi-db-read2"]);
  });

  it("sends a read with a GTID to the replica only when it has applied it, else to the primary", async () => {
    const { router, replicas, check, read } = setup(["pi-db-read1"]);
    router.start();
    await check();
    assert.equal(await read("0-1-42"), "pi-db-read1");
    replicas[0].caughtUp = false;
    assert.equal(await read("0-1-43"), "primary");
    assert.deepEqual(replicas[0].gtidsWaited, ["0-1-42", "0-1-43"]);
    // Not caught up is no failure: the replica stays in the read set.
    assert.deepEqual(router.readSet(), ["pi-db-read1"]);
    assert.equal(await read(), "pi-db-read1");
  });

  it("does not start a health check of a replica while its last one runs", async () => {
    const replica = new FakeReplica("pi-db-read1");
    let checks = 0;
    let finish: () => void = () => undefined;
    replica.check = () => {
      checks++;
      return new Promise((resolve) => (finish = () => resolve(HEALTHY)));
    };
    let tick: () => void = () => undefined;
    const router = new ReadRouter(fakeDb("primary"), [{ spec: spec("pi-db-read1", 0), backend: replica }], 5, {
      every: (_ms, fn) => ((tick = fn), () => undefined),
      checkTimeoutMs: 10_000,
    });
    router.start();
    tick();
    tick();
    assert.equal(checks, 1);
    finish();
    await new Promise((resolve) => setImmediate(resolve));
    tick();
    assert.equal(checks, 2);
    finish();
    await router.close();
  });

  it("counts a health check that never answers as failed, after its timeout", async () => {
    const replica = new FakeReplica("pi-db-read1");
    replica.check = () => new Promise(() => undefined);
    const router = new ReadRouter(fakeDb("primary"), [{ spec: spec("pi-db-read1", 0), backend: replica }], 5, {
      every: () => () => undefined,
      checkTimeoutMs: 20,
    });
    router.start();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const [status] = router.status()!.replicas;
    assert.equal(status.reachable, false);
    assert.match(status.error!, /no answer within 20 ms/);
    await router.close();
  });

  it("reports every configured replica in config order, and closes them all", async () => {
    const { router, replicas, check } = setup(["pi-db-read1", "pi-db-read2"]);
    router.start();
    await check();
    assert.deepEqual(router.status(), {
      maxLagSeconds: 5,
      replicas: [
        { name: "pi-db-read1", host: "10.254.0.127", reachable: true, ioRunning: true, sqlRunning: true, lagSeconds: 0, gtid: "0-1-1", inReadSet: true, reads: 0, error: null },
        { name: "pi-db-read2", host: "10.254.0.128", reachable: true, ioRunning: true, sqlRunning: true, lagSeconds: 0, gtid: "0-1-1", inReadSet: true, reads: 0, error: null },
      ],
    });
    await router.close();
    assert.deepEqual(replicas.map((r) => r.closed), [true, true]);
  });

  it("tells the metrics where reads ran, each replica's lag while known, its place in the read set and its pool", async () => {
    const { router, replicas, check, read } = setup(["pi-db-read1", "pi-db-read2"]);
    replicas[0].usage = () => ({ limit: 10, busy: 1, idle: 2, waiting: 0, waits: 3, acquireTimeouts: 0 });
    assert.equal(await read(), "primary");
    router.start();
    await check();
    replicas[1].health = { ...HEALTHY, lagSeconds: 9 } as HealthSample;
    await check();
    assert.deepEqual([await read(), await read()], ["pi-db-read1", "pi-db-read1"]);
    // A failed replica read runs on the primary; the replica's lag is unknown until its next check.
    replicas[0].readError = Object.assign(new Error("reset by peer"), { code: "ECONNRESET" });
    assert.equal(await read(), "primary");
    assert.deepEqual(router.metrics(), {
      primaryReads: 2,
      replicas: [
        { name: "pi-db-read1", reads: 2, lagSeconds: null, inReadSet: false, pool: { limit: 10, busy: 1, idle: 2, waiting: 0, waits: 3, acquireTimeouts: 0 } },
        { name: "pi-db-read2", reads: 0, lagSeconds: 9, inReadSet: false, pool: null },
      ],
    });
  });

  it("does not count a read the primary failed", async () => {
    const failing: Queryable = { query: () => Promise.reject(Object.assign(new Error("refused"), { code: "ECONNREFUSED" })) };
    const router = new ReadRouter(failing, [], 5);
    await assert.rejects(router.read((db) => db.query("SELECT 1")), { code: "ECONNREFUSED" });
    assert.deepEqual(router.metrics(), { primaryReads: 0, replicas: [] });
  });

  it("connects to a replica with the primary's credentials and TLS, checking the replica's own name", () => {
    const db = {
      host: "10.254.0.124",
      port: 3306,
      database: "webapp_db",
      user: "webapp_user",
      password: "secret",
      poolSize: 7,
      ssl: { ca: "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n", serverName: "pi-db" },
    };
    const replica = replicaDbConfig(db, { name: "pi-db-read1", host: "10.254.0.127", port: 3307 });
    assert.deepEqual(replica, { ...db, host: "10.254.0.127", port: 3307, ssl: { ca: db.ssl.ca, serverName: "pi-db-read1" } });
    const tls = tlsOptions(replica.host, replica.port, replica.ssl!);
    assert.equal(tls.host, "pi-db-read1");
    // Every CA of the bundle, each as its own entry.
    assert.deepEqual((tls.ssl as { ca: string[] }).ca, ["-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----", "-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----"]);
  });
});
