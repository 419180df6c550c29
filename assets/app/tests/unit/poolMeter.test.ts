import assert from "node:assert/strict";
import { loadConfig } from "../../src/config";
import { AcquireTimeoutError, Database } from "../../src/db/pool";
import { MysqlReplica } from "../../src/db/readRouter";
import { silentServer, TEST_WRITE_TOKEN } from "../helpers";

/** The database settings of a one-connection pool against a server on 127.0.0.1:`port`. */
const onePool = (port: number) =>
  loadConfig({ DB_HOST: "127.0.0.1", DB_PORT: String(port), DB_PASSWORD: "unused", DB_POOL_SIZE: "1", API_WRITE_TOKEN: TEST_WRITE_TOKEN }).db;

describe("pool meters (a database that never answers)", () => {
  it("counts the primary's acquires that queued and that timed out, and shows its connections", async () => {
    const hung = await silentServer();
    const db = new Database(onePool(hung.port), {}, 50);
    try {
      assert.deepEqual(db.meter.usage(), { limit: 1, busy: 0, idle: 0, waiting: 0, waits: 0, acquireTimeouts: 0 });
      // The first acquire opens the only connection, whose handshake never ends.
      await assert.rejects(db.acquire(), AcquireTimeoutError);
      assert.deepEqual(db.meter.usage(), { limit: 1, busy: 1, idle: 0, waiting: 0, waits: 0, acquireTimeouts: 1 });
      // The second finds the pool full and queues, then gives up; mysql2 keeps its place in the queue.
      await assert.rejects(db.acquire(), AcquireTimeoutError);
      assert.deepEqual(db.meter.usage(), { limit: 1, busy: 1, idle: 0, waiting: 1, waits: 1, acquireTimeouts: 2 });
    } finally {
      await hung.close();
      await db.close(100);
    }
  });

  it("counts a replica read that timed out before it had a connection", async () => {
    const hung = await silentServer();
    const replica = new MysqlReplica(onePool(hung.port));
    try {
      await assert.rejects(replica.read(async () => 1, null, 50), { code: "ETIMEDOUT" });
      assert.deepEqual(replica.usage(), { limit: 1, busy: 1, idle: 0, waiting: 0, waits: 0, acquireTimeouts: 1 });
      await assert.rejects(replica.read(async () => 1, null, 50), { code: "ETIMEDOUT" });
      assert.deepEqual(replica.usage(), { limit: 1, busy: 1, idle: 0, waiting: 1, waits: 1, acquireTimeouts: 2 });
    } finally {
      await hung.close();
      await replica.close();
    }
  });
});
