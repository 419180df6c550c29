import assert from "node:assert/strict";
import type http from "node:http";
import request from "supertest";
import type { Express } from "express";
import type { Config } from "../../src/config";
import { Database } from "../../src/db/pool";
import { ReadRouter } from "../../src/db/readRouter";
import { boundPort, listen } from "../../src/lifecycle";
import { createApp } from "../../src/server";
import { AUTH, INTERNAL } from "../helpers";
import { pairConfig, sleep, startReplicationPair, until, type ReplicationPair } from "../replication";

/**
 * Semi-synchronous replication on a real primary and replica (tests/replication.ts), as the
 * stack runs it: what the status API says, what a write does while no replica acks (it waits the
 * timeout, then succeeds unprotected), and RPO 0: with the primary killed under a stream of writes
 * through the app, every write the app acknowledged is on the replica.
 */

const PRIMARY_PORT = Number(process.env.TEST_MARIADB_SEMISYNC_PORT ?? 3319);
const REPLICA_PORT = PRIMARY_PORT + 1;
const REPLICA = "pi-db-read1";
/** The stack's default dbSemiSyncTimeoutMs. */
const TIMEOUT_MS = 1000;
/**
 * How late the replication link carries the primary's events: what an async primary has
 * acknowledged within that time before a power cut is lost, so the case below can fail.
 */
const LINK_DELAY_MS = 20;

describe("semi-synchronous replication (real MariaDB primary and replica)", function () {
  this.timeout(120_000);
  let pair: ReplicationPair | undefined;
  let config: Config;
  let db: Database;
  let reads: ReadRouter;
  let app: Express;

  const semiSync = async () => {
    const res = await request(app).get("/internal/status").set(INTERNAL).expect(200);
    return res.body.db.replication.semiSync;
  };
  /** A note written through the app: its status, how long it took, and its GTID. */
  const write = async (title: string) => {
    const start = Date.now();
    const res = await request(app).post("/notes").set(AUTH).send({ title });
    return { status: res.status, ms: Date.now() - start, gtid: res.headers["x-pi-cluster-gtid"] as string | undefined };
  };

  before(async () => {
    pair = await startReplicationPair(PRIMARY_PORT, REPLICA_PORT, { semiSyncTimeoutMs: TIMEOUT_MS, link: { delayMs: LINK_DELAY_MS } });
    config = pairConfig(pair, REPLICA);
    db = new Database(config.db);
    reads = ReadRouter.fromConfig(db, config);
    reads.start();
    // The writes refused after the power cut are counted below, not logged.
    app = createApp({ config, db, reads, log: () => undefined });
  });

  after(async () => {
    try {
      await reads?.close();
      await db?.close();
    } finally {
      pair?.stop();
    }
  });

  it("reports writes protected by the replica's ack: on, active, 1 replica acking, AFTER_SYNC, the timeout", async () => {
    // The setup ran before the replica connected: its commits went on without an ack.
    await until("the replica acks", 10_000, async () => (await semiSync()).writesProtected === true);
    const before = await semiSync();
    const w = await write("protected");
    assert.equal(w.status, 201);
    assert.ok(w.ms < TIMEOUT_MS / 2, `a protected write took ${w.ms} ms`);
    const s = await semiSync();
    assert.deepEqual(
      { enabled: s.enabled, active: s.active, clients: s.clients, timeoutMs: s.timeoutMs, waitPoint: s.waitPoint, writesProtected: s.writesProtected },
      { enabled: true, active: true, clients: 1, timeoutMs: TIMEOUT_MS, waitPoint: "AFTER_SYNC", writesProtected: true },
    );
    assert.deepEqual([s.ackedCommits, s.unackedCommits, s.fallbacks], [before.ackedCommits + 1, before.unackedCommits, before.fallbacks]);
  });

  it("lets a write wait the timeout while no replica acks, then succeed unprotected (async) until the replica acks again", async () => {
    const before = await semiSync();
    await pair!.sql(pair!.replica, "STOP SLAVE IO_THREAD");
    try {
      await until("the replica no longer acks", 5000, async () => (await semiSync()).clients === 0);
      const waited = await write("waits for an ack that never comes");
      assert.equal(waited.status, 201);
      assert.ok(waited.ms >= TIMEOUT_MS - 20 && waited.ms < TIMEOUT_MS + 1000, `the write took ${waited.ms} ms, expected about ${TIMEOUT_MS}`);
      const fallen = await semiSync();
      assert.deepEqual(
        { enabled: fallen.enabled, active: fallen.active, clients: fallen.clients, writesProtected: fallen.writesProtected },
        { enabled: true, active: false, clients: 0, writesProtected: false },
      );
      assert.equal(fallen.fallbacks, before.fallbacks + 1);
      assert.equal(fallen.unackedCommits, before.unackedCommits + 1);
      // Async now: the next write does not wait, and is on the primary alone.
      const next = await write("async");
      assert.equal(next.status, 201);
      assert.ok(next.ms < TIMEOUT_MS / 2, `an async write took ${next.ms} ms`);
      console.log(`      no replica acking: the first write took ${waited.ms} ms (timeout ${TIMEOUT_MS} ms), the next ${next.ms} ms; status active ${fallen.active}, clients ${fallen.clients}`);
    } finally {
      await pair!.sql(pair!.replica, "START SLAVE IO_THREAD");
    }
    // The replica catches up and acks again: protected, with no write of ours waiting.
    await until("writes protected again", 10_000, async () => (await semiSync()).writesProtected === true);
    const ackedBefore = (await semiSync()).ackedCommits;
    const again = await write("protected again");
    assert.equal(again.status, 201);
    assert.ok(again.ms < TIMEOUT_MS / 2, `a write took ${again.ms} ms with the replica back`);
    assert.equal((await semiSync()).ackedCommits, ackedBefore + 1);
  });

  it("loses no acknowledged write when the primary loses power under a stream of writes", async () => {
    const listening: http.Server = await listen(app, 0, "127.0.0.1");
    const acked: Array<{ title: string; seq: number }> = [];
    let failed = 0;
    try {
      await until("writes protected", 10_000, async () => (await semiSync()).writesProtected === true);
      const base = `http://127.0.0.1:${boundPort(listening)}`;
      let running = true;
      const worker = async (w: number) => {
        for (let n = 0; running; n++) {
          const title = `rpo-${w}-${n}`;
          try {
            const res = await fetch(`${base}/notes`, {
              method: "POST",
              headers: { ...AUTH, "Content-Type": "application/json" },
              body: JSON.stringify({ title }),
              signal: AbortSignal.timeout(8000),
            });
            await res.arrayBuffer();
            const gtid = res.headers.get("x-pi-cluster-gtid");
            if (res.status === 201 && gtid) acked.push({ title, seq: Number(gtid.split("-")[2]) });
            else failed++;
          } catch {
            failed++;
          }
        }
      };
      const workers = Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)));
      await until("200 writes acknowledged", 30_000, () => acked.length >= 200);
      pair!.powerCut();
      const ackedAtKill = acked.length;
      await sleep(1000);
      running = false;
      await workers;

      // The replica may still be applying its relay log: wait for the newest acknowledged GTID.
      const newest = Math.max(...acked.map((a) => a.seq));
      const waited = (await pair!.sql(pair!.replica, `SELECT MASTER_GTID_WAIT('0-1-${newest}', 10)`)).trim();
      const present = new Set((await pair!.sql(pair!.replica, "SELECT title FROM webapp_db.notes WHERE title LIKE 'rpo-%'")).split("\n").filter(Boolean));
      const lost = acked.filter((a) => !present.has(a.title));
      console.log(`      primary power cut: ${acked.length} writes acknowledged (${ackedAtKill} before the kill), ${lost.length} lost, ${failed} refused; replica reached GTID 0-1-${newest}: ${waited === "0" ? "yes" : "no"}`);
      assert.deepEqual(lost.map((a) => a.title), [], "acknowledged writes missing on the replica");
      assert.equal(waited, "0");
      assert.ok(acked.length >= 200);
    } finally {
      await new Promise<void>((resolve) => {
        listening.closeAllConnections();
        listening.close(() => resolve());
      });
    }
  });
});
