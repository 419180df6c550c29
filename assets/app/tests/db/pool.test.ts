import assert from "node:assert/strict";
import { DatabaseDownError, RECHECK_INTERVAL_MS } from "../../src/db/breaker";
import { AcquireTimeoutError, Database, IDLE_TIMEOUT_MS } from "../../src/db/pool";
import { isSafeToRetryWrite, isTransientError } from "../../src/db/retry";
import { closedPort, rebootableProxy, silentServer, testConfig } from "../helpers";

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  assert.fail("expected a rejection");
}

describe("database pool (real MariaDB)", () => {
  const config = testConfig();

  it("passes mysql2 only options it knows (no warnings) and sets the limits", async () => {
    const printed: unknown[] = [];
    const original = { error: console.error, warn: console.warn };
    const onWarning = (w: Error) => printed.push(w.message);
    console.error = (...args: unknown[]) => printed.push(args.join(" "));
    console.warn = console.error;
    process.on("warning", onWarning);
    const db = new Database({ ...config.db, poolSize: 7 });
    try {
      await db.query("SELECT 1");
    } finally {
      Object.assign(console, original);
      process.off("warning", onWarning);
      await db.close();
    }
    assert.deepEqual(printed, []);
    const core = (db.pool as unknown as { pool: { config: Record<string, number> } }).pool.config;
    assert.equal(core.connectionLimit, 7);
    assert.equal(core.idleTimeout, IDLE_TIMEOUT_MS);
    assert.ok(core.maxIdle < core.connectionLimit, "mysql2 only applies idleTimeout when maxIdle < connectionLimit");
  });

  it("times out getting a connection when the pool is exhausted, then recovers without leaking", async () => {
    const db = new Database({ ...config.db, poolSize: 1 }, {}, 200);
    try {
      const held = await db.acquire();
      assert.deepEqual(db.stats(), { limit: 1, inUse: 1, free: 0 });
      const started = Date.now();
      const err = await caught(db.acquire());
      assert.ok(err instanceof AcquireTimeoutError);
      assert.equal(err.message, "no database connection became free within 200 ms (all pool connections in use)");
      assert.ok(Date.now() - started >= 190 && Date.now() - started < 1000);
      db.release(held);
      // The timed-out waiter's connection goes straight back to the pool.
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(db.stats(), { limit: 1, inUse: 0, free: 1 });
      const rows = await db.query<Array<{ one: number }>>("SELECT 1 AS one");
      assert.equal(rows[0].one, 1);
    } finally {
      await db.close();
    }
  });

  it("shows the metrics a caller queued behind a busy connection, and the connection idle once both are done", async () => {
    const db = new Database({ ...config.db, poolSize: 1 }, {}, 1000);
    try {
      const held = await db.acquire();
      const queued = db.acquire();
      assert.deepEqual(db.meter.usage(), { limit: 1, busy: 1, idle: 0, waiting: 1, waits: 1, acquireTimeouts: 0 });
      db.release(held);
      db.release(await queued);
      assert.deepEqual(db.meter.usage(), { limit: 1, busy: 0, idle: 1, waiting: 0, waits: 1, acquireTimeouts: 0 });
    } finally {
      await db.close();
    }
  });

  it("uses placeholders for values", async () => {
    const db = new Database(config.db);
    try {
      const rows = await db.query<Array<{ v: string }>>("SELECT ? AS v", ["' OR 1=1 --"]);
      assert.equal(rows[0].v, "' OR 1=1 --");
    } finally {
      await db.close();
    }
  });

  it("classifies MariaDB's real lock wait timeout as transient and safe to retry, and a syntax error as permanent", async () => {
    const db = new Database(config.db);
    try {
      await db.query("INSERT INTO notes (title, body) VALUES ('lock', '')", [], { write: true });
      const [{ id }] = await db.query<Array<{ id: number }>>("SELECT MAX(id) AS id FROM notes");
      const holder = await db.acquire();
      const waiter = await db.acquire();
      try {
        await holder.query("START TRANSACTION");
        await holder.query("SELECT id FROM notes WHERE id = ? FOR UPDATE", [id]);
        await waiter.query("SET SESSION innodb_lock_wait_timeout = 1");
        const lockErr = await caught(waiter.query("UPDATE notes SET title = 'x' WHERE id = ?", [id]));
        assert.equal((lockErr as { code: string }).code, "ER_LOCK_WAIT_TIMEOUT");
        assert.equal(isTransientError(lockErr), true);
        assert.equal(isSafeToRetryWrite(lockErr), true);
        const syntaxErr = await caught(waiter.query("SELEC 1"));
        assert.equal((syntaxErr as { code: string }).code, "ER_PARSE_ERROR");
        assert.equal(isTransientError(syntaxErr), false);
      } finally {
        await holder.query("ROLLBACK");
        db.release(holder);
        db.release(waiter);
      }
      await db.query("DELETE FROM notes WHERE id = ?", [id], { write: true });
    } finally {
      await db.close();
    }
  });

  it("does not retry a syntax error", async () => {
    const sleeps: number[] = [];
    const db = new Database(config.db, { sleep: async (ms) => void sleeps.push(ms) });
    try {
      await assert.rejects(db.query("SELEC 1"), { code: "ER_PARSE_ERROR" });
      assert.deepEqual(sleeps, []);
    } finally {
      await db.close();
    }
  });

  it("retries a refused connection 3 times with backoff, for reads and for writes", async () => {
    const sleeps: number[] = [];
    const port = await closedPort();
    const db = new Database({ ...config.db, port }, { sleep: async (ms) => void sleeps.push(ms) });
    // The read marks `db` down (see the next test), so the write goes through a second pool.
    const writer = new Database({ ...config.db, port }, { sleep: async (ms) => void sleeps.push(ms) });
    try {
      const readErr = await caught(db.query("SELECT 1"));
      assert.equal(isTransientError(readErr), true);
      assert.equal((readErr as { phase?: string }).phase, "connect");
      assert.deepEqual(sleeps, [100, 200]);
      await assert.rejects(writer.query("INSERT INTO notes (title, body) VALUES (?, ?)", ["t", ""], { write: true }));
      assert.deepEqual(sleeps, [100, 200, 100, 200]);
      assert.deepEqual(db.stats(), { limit: config.db.poolSize, inUse: 0, free: 0 });
    } finally {
      await db.close();
      await writer.close();
    }
  });

  it("fails at once, without retrying, while the database is known down, and serves again once it answers", async () => {
    const sleeps: number[] = [];
    const proxy = await rebootableProxy(config.db.host, config.db.port);
    await proxy.close();
    const db = new Database({ ...config.db, port: proxy.port }, { sleep: async (ms) => void sleeps.push(ms) });
    let back: Awaited<ReturnType<typeof rebootableProxy>> | undefined;
    try {
      await assert.rejects(db.query("SELECT 1"), { code: "ECONNREFUSED" });
      assert.equal(db.breaker.isDown, true);
      const started = Date.now();
      const err = await caught(db.query("INSERT INTO notes (title, body) VALUES (?, ?)", ["t", ""], { write: true }));
      assert.ok(Date.now() - started < 50, `took ${Date.now() - started} ms`);
      assert.ok(err instanceof DatabaseDownError);
      assert.match(err.message, /^the database has been down for \d+ ms \(connect ECONNREFUSED 127\.0\.0\.1:\d+\)/);
      assert.equal(isTransientError(err), true);
      assert.deepEqual(sleeps, [100, 200], "no retries while down");
      // The same port answers again: a recheck within RECHECK_INTERVAL_MS finds it.
      back = await rebootableProxy(config.db.host, config.db.port, proxy.port);
      await new Promise((r) => setTimeout(r, RECHECK_INTERVAL_MS + 200));
      assert.equal(db.breaker.isDown, false);
      assert.deepEqual(await db.query("SELECT 1 AS one"), [{ one: 1 }]);
    } finally {
      await db.close();
      await back?.close();
    }
  });

  it("closes within its bound while a connection hangs in its handshake", async () => {
    const hung = await silentServer();
    const db = new Database({ ...config.db, port: hung.port });
    try {
      void db.acquire().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 100));
      const started = Date.now();
      await db.close(300);
      const took = Date.now() - started;
      assert.ok(took >= 250 && took < 1500, `took ${took} ms`);
    } finally {
      await hung.close();
    }
  });
});
