import assert from "node:assert/strict";
import request from "supertest";
import type { Express } from "express";
import { Database } from "../../src/db/pool";
import { createApp } from "../../src/server";
import { AUTH, closedPort, testConfig, testDatabase } from "../helpers";

describe("notes routes (real MariaDB)", () => {
  const config = testConfig();
  let db: Database;
  let other: Database;
  let app: Express;

  before(() => {
    db = testDatabase(config);
    other = new Database(config.db);
    app = createApp({ config, db });
  });
  beforeEach(() => db.query("DELETE FROM notes", [], { write: true }));
  after(async () => {
    await db.close();
    await other.close();
  });

  it("stores a created note in MariaDB and returns it with 201", async () => {
    const res = await request(app).post("/notes").set(AUTH).send({ title: "  First  ", body: "héllo \u{1F600}" }).expect(201);
    assert.equal(res.body.title, "First");
    assert.equal(res.body.body, "héllo \u{1F600}");
    assert.equal(typeof res.body.id, "number");
    assert.equal(res.headers.location, `/notes/${res.body.id}`);
    assert.ok(Math.abs(Date.parse(res.body.createdAt) - Date.now()) < 60_000, `createdAt ${res.body.createdAt} is now, in UTC`);

    // Read back through a different pool: the note is in the database, not in the app.
    const rows = await other.query<Array<{ title: string; body: string }>>("SELECT title, body FROM notes WHERE id = ?", [res.body.id]);
    assert.deepEqual(rows.map((r) => ({ ...r })), [{ title: "First", body: "héllo \u{1F600}" }]);

    const got = await request(app).get(`/notes/${res.body.id}`).expect(200);
    assert.deepEqual(got.body, res.body);
  });

  it("says every read was served by the primary, and hands out no GTID, without replicas", async () => {
    const created = await request(app).post("/notes").set(AUTH).send({ title: "where" }).expect(201);
    assert.equal(created.headers["x-pi-cluster-gtid"], undefined);
    assert.equal(created.headers["set-cookie"], undefined);
    const list = await request(app).get("/notes").expect(200);
    assert.equal(list.headers["x-pi-cluster-read-from"], "primary");
    const one = await request(app).get(`/notes/${created.body.id}`).expect(200);
    assert.equal(one.headers["x-pi-cluster-read-from"], "primary");
    const missing = await request(app).get(`/notes/${created.body.id + 1000}`).expect(404);
    assert.equal(missing.headers["x-pi-cluster-read-from"], "primary");
  });

  it("lists notes newest first with total, limit and offset", async () => {
    for (const title of ["a", "b", "c"]) await request(app).post("/notes").set(AUTH).send({ title }).expect(201);
    const page = await request(app).get("/notes?limit=2").expect(200);
    assert.deepEqual(page.body.items.map((n: { title: string }) => n.title), ["c", "b"]);
    assert.deepEqual([page.body.total, page.body.limit, page.body.offset], [3, 2, 0]);
    const next = await request(app).get("/notes?limit=2&offset=2").expect(200);
    assert.deepEqual(next.body.items.map((n: { title: string; body: string }) => [n.title, n.body]), [["a", ""]]);
    const all = await request(app).get("/notes").expect(200);
    assert.equal(all.body.limit, 20);
    assert.equal(all.body.items.length, 3);
  });

  it("deletes a note with 204, after which it is gone", async () => {
    const { body: note } = await request(app).post("/notes").set(AUTH).send({ title: "doomed" }).expect(201);
    await request(app).delete(`/notes/${note.id}`).set(AUTH).expect(204);
    const rows = await other.query<unknown[]>("SELECT id FROM notes WHERE id = ?", [note.id]);
    assert.equal(rows.length, 0);
    const res = await request(app).get(`/notes/${note.id}`).expect(404);
    assert.deepEqual(res.body, { error: { code: "NOT_FOUND", message: `no note with id ${note.id}`, field: "id" } });
    await request(app).delete(`/notes/${note.id}`).set(AUTH).expect(404);
  });

  it("answers 400 naming the field for a bad title, and stores nothing", async () => {
    const res = await request(app).post("/notes").set(AUTH).send({ title: "x".repeat(201) }).expect(400);
    assert.deepEqual(res.body, {
      error: { code: "VALIDATION_ERROR", message: "title: expected 1 to 200 characters, got 201", field: "title" },
    });
    const rows = await other.query<unknown[]>("SELECT id FROM notes");
    assert.equal(rows.length, 0);
  });

  it("answers 400 naming limit for an out-of-range page size", async () => {
    const res = await request(app).get("/notes?limit=101").expect(400);
    assert.equal(res.body.error.field, "limit");
    assert.equal(res.body.error.message, 'limit: expected an integer from 1 to 100, got "101"');
  });

  it("answers 400 naming id for a non-numeric id", async () => {
    const res = await request(app).get("/notes/abc").expect(400);
    assert.equal(res.body.error.field, "id");
  });

  it("treats SQL in input as data", async () => {
    const title = "x'); DROP TABLE notes; --";
    const { body } = await request(app).post("/notes").set(AUTH).send({ title }).expect(201);
    assert.equal((await request(app).get(`/notes/${body.id}`).expect(200)).body.title, title);
  });

  it("answers 400 INVALID_JSON for malformed JSON", async () => {
    const res = await request(app).post("/notes").set(AUTH).set("Content-Type", "application/json").send('{"title": ').expect(400);
    assert.equal(res.body.error.code, "INVALID_JSON");
  });

  it("answers 413 JSON for a body over 16kb", async () => {
    const res = await request(app).post("/notes").set(AUTH).send({ title: "t", body: "b".repeat(17 * 1024) }).expect(413);
    assert.equal(res.body.error.code, "PAYLOAD_TOO_LARGE");
    assert.match(res.headers["content-type"], /application\/json/);
  });

  it("answers 400 naming body when the request is not JSON", async () => {
    const res = await request(app).post("/notes").set(AUTH).set("Content-Type", "text/plain").send("title=x").expect(400);
    assert.equal(res.body.error.field, "body");
  });

  it("answers 503 DB_UNAVAILABLE after retrying when MariaDB is unreachable", async () => {
    const sleeps: number[] = [];
    const downConfig = testConfig({ db: { port: 1 } });
    const down = testDatabase(downConfig, sleeps);
    try {
      const res = await request(createApp({ config: downConfig, db: down, log: () => undefined })).get("/notes").expect(503);
      assert.equal(res.body.error.code, "DB_UNAVAILABLE");
      assert.deepEqual(sleeps, [100, 200], "three attempts with backoff");
    } finally {
      await down.close();
    }
  });

  it("answers at once with 503 and Retry-After while MariaDB is known down, logging one line per request", async () => {
    const logged: string[] = [];
    const downConfig = testConfig({ db: { port: await closedPort() } });
    const down = testDatabase(downConfig);
    try {
      const downApp = createApp({ config: downConfig, db: down, log: (m) => logged.push(m) });
      const first = await request(downApp).get("/notes").expect(503);
      assert.equal(first.headers["retry-after"], "1");
      const started = Date.now();
      const res = await request(downApp).post("/notes").set(AUTH).send({ title: "t" }).expect(503);
      assert.ok(Date.now() - started < 100, `took ${Date.now() - started} ms`);
      assert.equal(res.headers["retry-after"], "1");
      assert.deepEqual(res.body, { error: { code: "DB_UNAVAILABLE", message: "the database is unavailable, try again later" } });
      assert.match(logged[0], /^GET \/notes -> 503: connect ECONNREFUSED/);
      assert.match(logged[1], /^POST \/notes -> 503: DB_DOWN: the database has been down for \d+ ms \(connect ECONNREFUSED/);
      assert.ok(logged.every((line) => !line.includes("\n")), "no stack traces");
    } finally {
      await down.close();
    }
  });
});
