import assert from "node:assert/strict";
import type http from "node:http";
import request from "supertest";
import type { Express } from "express";
import type { Config } from "../../src/config";
import { Database, REQUEST_DB_BUDGET_MS } from "../../src/db/pool";
import { HEALTH_CHECK_INTERVAL_MS, HEALTH_CHECK_TIMEOUT_MS, ReadRouter } from "../../src/db/readRouter";
import { boundPort, listen } from "../../src/lifecycle";
import { createApp } from "../../src/server";
import { AUTH, INTERNAL } from "../helpers";
import { pairConfig, sleep, startReplicationPair, until, type ReplicationPair } from "../replication";

/**
 * Reads on a real GTID replica of a real primary (tests/replication.ts): served there, read-your-
 * writes, and no failed read when the replica freezes (power cut) or dies under a stream of reads.
 */

const PRIMARY_PORT = Number(process.env.TEST_MARIADB_REPL_PORT ?? 3317);
const REPLICA_PORT = PRIMARY_PORT + 1;
const REPLICA = "pi-db-read1";
/** How soon a dead replica must leave the read set: a check interval plus its timeout, and slack. */
const LEAVE_MS = HEALTH_CHECK_INTERVAL_MS + HEALTH_CHECK_TIMEOUT_MS + 500;

describe("read replicas (real MariaDB primary and GTID replica)", function () {
  this.timeout(120_000);
  let pair: ReplicationPair | undefined;
  let config: Config;
  let db: Database;
  const routers: ReadRouter[] = [];

  /** An app whose reads go to the pair's replica; `checkIntervalMs` slows its health checks. */
  function app(checkIntervalMs?: number): { app: Express; reads: ReadRouter } {
    const reads = ReadRouter.fromConfig(db, config, checkIntervalMs ? { checkIntervalMs } : {});
    routers.push(reads);
    reads.start();
    return { app: createApp({ config, db, reads }), reads };
  }

  before(async () => {
    pair = await startReplicationPair(PRIMARY_PORT, REPLICA_PORT);
    config = pairConfig(pair, REPLICA, { DB_REPLICA_MAX_LAG_SECONDS: "5" });
    db = new Database(config.db);
  });

  after(async () => {
    try {
      await Promise.all(routers.map((r) => r.close()));
      await db?.close();
    } finally {
      pair?.stop();
    }
  });

  it("serves a read from the replica once it is healthy, says so, and reports it in the status", async () => {
    const { app: server, reads } = app();
    await until("the replica joins the read set", 5000, () => reads.readSet().includes(REPLICA));
    const created = await request(server).post("/notes").set(AUTH).send({ title: "replicated" }).expect(201);
    // Without a GTID the read may run before the replica applied the write; wait for it there.
    await until("the note reaches the replica", 5000, async () => (await pair!.sql(pair!.replica, `SELECT COUNT(*) FROM webapp_db.notes WHERE id = ${Number(created.body.id)}`)).trim() === "1");
    const res = await request(server).get(`/notes/${created.body.id}`).expect(200);
    assert.equal(res.headers["x-pi-cluster-read-from"], REPLICA);
    assert.equal(res.body.title, "replicated");
    const list = await request(server).get("/notes").expect(200);
    assert.equal(list.headers["x-pi-cluster-read-from"], REPLICA);

    const status = await request(server).get("/internal/status").set(INTERNAL).expect(200);
    const replication = status.body.db.replication;
    assert.equal(replication.maxLagSeconds, 5);
    assert.equal(replication.replicas.length, 1);
    const r = replication.replicas[0];
    assert.deepEqual(
      { name: r.name, host: r.host, reachable: r.reachable, ioRunning: r.ioRunning, sqlRunning: r.sqlRunning, inReadSet: r.inReadSet, error: r.error },
      { name: REPLICA, host: "127.0.0.1", reachable: true, ioRunning: true, sqlRunning: true, inReadSet: true, error: null },
    );
    assert.equal(typeof r.lagSeconds, "number");
    assert.match(r.gtid, /^\d+-\d+-\d+/);
    assert.ok(r.reads >= 2, `reads ${r.reads}`);
  });

  it("hands out the write's GTID, and a read carrying it reads the primary until the replica has applied it", async () => {
    // Slow health checks, so stopping the replica's SQL thread does not take it out of the read set.
    const { app: server, reads } = app(60_000);
    await until("the replica joins the read set", 5000, () => reads.readSet().includes(REPLICA));
    await pair!.sql(pair!.replica, "STOP SLAVE SQL_THREAD");
    try {
      const created = await request(server).post("/notes").set(AUTH).send({ title: "read your writes" }).expect(201);
      const gtid = created.headers["x-pi-cluster-gtid"];
      assert.match(gtid, /^\d+-\d+-\d+$/);
      const [primaryGtid] = (await pair!.sql(pair!.primary, "SELECT @@gtid_binlog_pos")).trim().split("\n");
      assert.equal(gtid, primaryGtid);
      const cookie = String(created.headers["set-cookie"]);
      assert.match(cookie, new RegExp(`^pi_cluster_gtid=${gtid.replace(/-/g, "\\-")}; Max-Age=60; Path=/; Expires=[^;]+; HttpOnly; SameSite=Lax$`));

      // The replica has not applied it: without the GTID the read is stale, with it it is not.
      const stale = await request(server).get(`/notes/${created.body.id}`).expect(404);
      assert.equal(stale.headers["x-pi-cluster-read-from"], REPLICA);
      const byHeader = await request(server).get(`/notes/${created.body.id}`).set("X-Pi-Cluster-Gtid", gtid).expect(200);
      assert.equal(byHeader.headers["x-pi-cluster-read-from"], "primary");
      const byCookie = await request(server).get(`/notes/${created.body.id}`).set("Cookie", cookie.split(";")[0]).expect(200);
      assert.equal(byCookie.headers["x-pi-cluster-read-from"], "primary");
      // A malformed token is ignored, not sent to SQL.
      const junk = await request(server).get(`/notes/${created.body.id}`).set("X-Pi-Cluster-Gtid", `${gtid}') OR 1=1 -- `).expect(404);
      assert.equal(junk.headers["x-pi-cluster-read-from"], REPLICA);

      await pair!.sql(pair!.replica, "START SLAVE SQL_THREAD");
      const fresh = await request(server).get(`/notes/${created.body.id}`).set("X-Pi-Cluster-Gtid", gtid).expect(200);
      assert.equal(fresh.headers["x-pi-cluster-read-from"], REPLICA);
      assert.equal(fresh.body.title, "read your writes");
    } finally {
      await pair!.sql(pair!.replica, "START SLAVE SQL_THREAD");
    }
  });

  it("fails no read while the replica freezes (power cut), thaws, is killed, restarts and stops cleanly under a stream of reads", async () => {
    const { app: server, reads } = app();
    const listening: http.Server = await listen(server, 0, "127.0.0.1");
    try {
      const base = `http://127.0.0.1:${boundPort(listening)}`;
      await until("the replica joins the read set", 5000, () => reads.readSet().includes(REPLICA));
      const { body: note } = await request(server).post("/notes").set(AUTH).send({ title: "steady" }).expect(201);

      const failures: string[] = [];
      const from = new Map<string, number>();
      let slowest = 0;
      let sent = 0;
      let running = true;
      const worker = async (i: number) => {
        for (let n = i; running; n++) {
          const path = n % 2 === 0 ? "/notes?limit=5" : `/notes/${note.id}`;
          const start = Date.now();
          try {
            const res = await fetch(base + path, { signal: AbortSignal.timeout(8000) });
            await res.arrayBuffer();
            if (res.status !== 200) failures.push(`${path} -> ${res.status}`);
            const where = res.headers.get("x-pi-cluster-read-from") ?? "none";
            from.set(where, (from.get(where) ?? 0) + 1);
          } catch (err) {
            failures.push(`${path} -> ${String(err)}`);
          }
          sent++;
          slowest = Math.max(slowest, Date.now() - start);
        }
      };
      const workers = Promise.all(Array.from({ length: 8 }, (_, i) => worker(i)));
      try {
        await sleep(1000);
        pair!.freeze(pair!.replica);
        const frozenOut = await until("a frozen replica leaves the read set", LEAVE_MS, () => !reads.readSet().includes(REPLICA));
        await sleep(1000);
        pair!.thaw(pair!.replica);
        await until("a thawed replica rejoins the read set", 5000, () => reads.readSet().includes(REPLICA));
        const servedBefore = reads.status()!.replicas[0].reads;
        await sleep(1000);
        assert.ok(reads.status()!.replicas[0].reads > servedBefore, "the thawed replica serves reads again");
        pair!.kill(pair!.replica);
        const killedOut = await until("a killed replica leaves the read set", LEAVE_MS, () => !reads.readSet().includes(REPLICA));
        await sleep(1000);
        await pair!.restart(pair!.replica);
        await until("a restarted replica rejoins the read set", 10_000, () => reads.readSet().includes(REPLICA));
        await sleep(1000);
        // A clean stop, as systemctl stop: the server closes its connections itself.
        const stopping = pair!.shutdown(pair!.replica);
        const stoppedOut = await until("a stopped replica leaves the read set", LEAVE_MS, () => !reads.readSet().includes(REPLICA));
        await stopping;
        await sleep(1500);
        assert.ok(frozenOut <= LEAVE_MS && killedOut <= LEAVE_MS && stoppedOut <= LEAVE_MS);
      } finally {
        running = false;
        await workers;
      }
      console.log(`      replica frozen, thawed, killed, restarted, stopped: ${sent} reads, ${failures.length} failed, by server ${JSON.stringify(Object.fromEntries(from))}, slowest ${slowest} ms`);
      assert.deepEqual(failures.slice(0, 10), [], `${failures.length} of ${sent} reads failed`);
      assert.ok(sent >= 500, `only ${sent} reads were sent`);
      assert.ok((from.get(REPLICA) ?? 0) > 0 && (from.get("primary") ?? 0) > 0, `reads by server: ${JSON.stringify([...from])}`);
      assert.ok(slowest <= REQUEST_DB_BUDGET_MS + 500, `slowest read ${slowest} ms`);
      const [status] = reads.status()!.replicas;
      assert.equal(status.reachable, false);
      assert.equal(status.inReadSet, false);
      assert.match(status.error!, /ECONNREFUSED|ECONNRESET|connect|closed|did not answer/i);
    } finally {
      await new Promise<void>((resolve) => {
        listening.closeAllConnections();
        listening.close(() => resolve());
      });
    }
  });
});
