import assert from "node:assert/strict";
import request from "supertest";
import { Database } from "../../src/db/pool";
import { createApp } from "../../src/server";
import { closedPort, INTERNAL, silentServer, testConfig } from "../helpers";

const pkgVersion: string = require("../../package.json").version;

/** A Database that counts how many status probes reached it. */
class CountingDatabase extends Database {
  probes = 0;
  override withConnection<T>(fn: Parameters<Database["withConnection"]>[0], timeoutMs?: number): Promise<T> {
    this.probes++;
    return super.withConnection(fn as never, timeoutMs) as Promise<T>;
  }
}

describe("status routes (real MariaDB)", () => {
  const config = testConfig();
  let db: CountingDatabase;
  before(() => (db = new CountingDatabase(config.db)));
  after(() => db.close());

  it("reports the node, the database's live figures and the pool", async () => {
    const res = await request(createApp({ config, db })).get("/internal/status").set(INTERNAL).expect(200);
    const { node, db: d } = res.body;
    assert.equal(node.name, "pi-test");
    assert.equal(node.version, pkgVersion);
    assert.equal(node.pid, process.pid);
    assert.ok(node.memory.rssBytes > 0 && node.memory.systemTotalBytes >= node.memory.systemFreeBytes);
    assert.equal(node.load.length, 3);

    const [{ version }] = await db.query<Array<{ version: string }>>("SELECT VERSION() AS version");
    assert.equal(d.reachable, true);
    assert.equal(d.error, null);
    assert.equal(d.host, config.db.host);
    assert.equal(d.version, version);
    assert.ok(d.latencyMs > 0 && d.latencyMs < 1000, `latency ${d.latencyMs}`);
    assert.ok(d.uptimeSeconds > 0);
    assert.ok(d.connections >= 1);
    assert.ok(d.queries > 0);
    assert.equal(typeof d.queriesPerSecond, "number");
    assert.deepEqual(d.pool, { limit: config.db.poolSize, inUse: 0, free: 1 });
    assert.equal(d.replication, null);
    assert.equal(d.lastBackup, null);
    assert.ok(Math.abs(Date.parse(res.body.generatedAt) - Date.now()) < 5000);
  });

  it("serves lastBackup from what the backup tool publishes in backup_status, with ages at read time", async () => {
    const taken = new Date(Date.now() - 120_000).toISOString().replace(/\.\d+Z$/, "Z");
    const published = {
      full: { name: "full-x.xb.zst.age", at: taken, bytes: 1234 },
      incremental: null,
      binlog: null,
      lastSuccess: { full: taken, incremental: null, binlog: null },
      staleAfterSeconds: { full: 93600, incremental: 7200, binlog: 900 },
      failures: [],
      verify: null,
    };
    await db.query("REPLACE INTO backup_status (id, status) VALUES (1, ?)", [JSON.stringify(published)]);
    try {
      const { lastBackup } = (await request(createApp({ config, db })).get("/internal/status").set(INTERNAL).expect(200)).body.db;
      assert.equal(lastBackup.full.name, "full-x.xb.zst.age");
      assert.ok(lastBackup.full.ageSeconds >= 119 && lastBackup.full.ageSeconds < 180, String(lastBackup.full.ageSeconds));
      assert.equal(lastBackup.full.stale, false);
      // No incremental and no binlog yet: stale, so the dashboard shows it red.
      assert.equal(lastBackup.incremental.stale, true);
      assert.equal(lastBackup.problem, true);
      assert.equal(lastBackup.error, null);
    } finally {
      await db.query("DELETE FROM backup_status");
    }
  });

  it("counts the requests served", async () => {
    const app = createApp({ config, db });
    for (let i = 0; i < 3; i++) await request(app).get("/health").expect(200);
    await request(app).get("/nope").expect(404);
    assert.equal((await request(app).get("/internal/status").set(INTERNAL).expect(200)).body.requests.served, 4);
    assert.equal((await request(app).get("/internal/status").set(INTERNAL).expect(200)).body.requests.served, 5);
  });

  it("serves the database figures from the cache for STATUS_CACHE_MS, sharing one probe", async () => {
    const app = createApp({ config: { ...config, statusCacheMs: 60_000 }, db });
    const before = db.probes;
    const responses = await Promise.all(Array.from({ length: 5 }, () => request(app).get("/internal/status").set(INTERNAL).expect(200)));
    assert.equal(db.probes - before, 1, "five concurrent requests, one probe");
    assert.ok(responses.every((r) => r.body.cache.hit === false && r.body.db.reachable === true));
    const cached = await request(app).get("/internal/status").set(INTERNAL).expect(200);
    assert.equal(cached.body.cache.hit, true);
    assert.equal(cached.body.db.queries, responses[0].body.db.queries, "same sample");
    assert.equal(db.probes - before, 1);
  });

  it("probes on every request with STATUS_CACHE_MS=0", async () => {
    const app = createApp({ config, db });
    const first = await request(app).get("/internal/status").set(INTERNAL).expect(200);
    const second = await request(app).get("/internal/status").set(INTERNAL).expect(200);
    assert.equal(second.body.cache.hit, false);
    assert.ok(second.body.db.queries > first.body.db.queries, "the server's query counter moved");
  });

  it("shows the public only whether the node and database serve, and which release", async () => {
    const res = await request(createApp({ config, db })).get("/").expect(200);
    assert.deepEqual(Object.keys(res.body).sort(), ["db", "generatedAt", "node", "status", "version"]);
    assert.deepEqual({ ...res.body, generatedAt: "" }, { status: "ok", node: "pi-test", version: pkgVersion, db: "up", generatedAt: "" });
    assert.equal(res.headers["cache-control"], "no-store");
  });

  it("refuses the internal status without the load balancer's header, in any letter case", async () => {
    const app = createApp({ config, db });
    for (const path of ["/internal/status", "/INTERNAL/status", "/internal/status/"]) {
      const res = await request(app).get(path).expect(403);
      assert.equal(res.body.error.code, "FORBIDDEN");
      assert.match(res.body.error.message, /management network/);
    }
    await request(app).get("/internal/status").set("X-Pi-Cluster-Access", "yes").expect(403);
  });

  it("reports health with db up", async () => {
    const res = await request(createApp({ config, db })).get("/health").expect(200);
    assert.deepEqual({ ...res.body, uptimeSeconds: 0 }, { status: "ok", node: "pi-test", version: pkgVersion, uptimeSeconds: 0, db: "up" });
  });
});

describe("status routes with MariaDB down", () => {
  it("answers at once with reachable:false and the error when nothing listens", async () => {
    const config = testConfig({ db: { port: await closedPort() } });
    const db = new Database(config.db);
    try {
      const app = createApp({ config, db });
      const started = Date.now();
      const res = await request(app).get("/internal/status").set(INTERNAL).expect(200);
      assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
      assert.equal(res.body.db.reachable, false);
      assert.match(res.body.db.error, /ECONNREFUSED/);
      assert.equal(res.body.db.version, null);
      assert.deepEqual(res.body.db.pool, { limit: 10, inUse: 0, free: 0 });
      assert.equal(typeof res.body.node.uptimeSeconds, "number");
      const health = await request(app).get("/health").expect(200);
      assert.equal(health.body.db, "down");
      // The public status says so without the address, pid or error text.
      const pub = await request(app).get("/").expect(200);
      assert.deepEqual({ ...pub.body, generatedAt: "" }, { status: "degraded", node: "pi-test", version: pub.body.version, db: "down", generatedAt: "" });
      assert.ok(!JSON.stringify(pub.body).includes(config.db.host) && !/ECONNREFUSED|pid/i.test(JSON.stringify(pub.body)));
    } finally {
      await db.close();
    }
  });

  it("gives up on a server that never answers within the probe timeout (2 s)", async () => {
    const hung = await silentServer();
    const config = testConfig({ db: { port: hung.port } });
    const db = new Database(config.db);
    try {
      const started = Date.now();
      const res = await request(createApp({ config, db })).get("/internal/status").set(INTERNAL).expect(200);
      const took = Date.now() - started;
      // The handshake never comes, so the connect timeout (CONNECT_TIMEOUT_MS, 1 s) ends it first.
      assert.ok(took >= 900 && took < 2100, `took ${took} ms`);
      assert.equal(res.body.db.reachable, false);
      assert.match(res.body.db.error, /ETIMEDOUT/);
    } finally {
      await hung.close();
      await db.close();
    }
  });
});
