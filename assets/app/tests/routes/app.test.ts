import assert from "node:assert/strict";
import request from "supertest";
import { Database } from "../../src/db/pool";
import { createApp } from "../../src/server";
import { testConfig } from "../helpers";

describe("app middleware", () => {
  const config = testConfig();
  let db: Database;
  before(() => (db = new Database(config.db)));
  after(() => db.close());

  it("sets helmet's security headers", async () => {
    const res = await request(createApp({ config, db })).get("/health").expect(200);
    assert.equal(res.headers["x-content-type-options"], "nosniff");
    assert.ok(res.headers["content-security-policy"]);
    assert.equal(res.headers["x-powered-by"], undefined);
  });

  it("sends no CORS headers when CORS_ORIGINS is empty", async () => {
    const res = await request(createApp({ config, db })).get("/health").set("Origin", "https://evil.example").expect(200);
    assert.equal(res.headers["access-control-allow-origin"], undefined);
  });

  it("allows only the configured CORS origins", async () => {
    const app = createApp({ config: { ...config, corsOrigins: ["https://dash.example"] }, db });
    const ok = await request(app).get("/health").set("Origin", "https://dash.example").expect(200);
    assert.equal(ok.headers["access-control-allow-origin"], "https://dash.example");
    const other = await request(app).get("/health").set("Origin", "https://evil.example").expect(200);
    assert.equal(other.headers["access-control-allow-origin"], undefined);
    const preflight = await request(app)
      .options("/notes")
      .set("Origin", "https://dash.example")
      .set("Access-Control-Request-Method", "POST")
      .expect(204);
    assert.match(preflight.headers["access-control-allow-methods"], /POST/);
  });

  it("answers unknown routes with a JSON 404", async () => {
    const res = await request(createApp({ config, db })).get("/nope").expect(404);
    assert.deepEqual(res.body, { error: { code: "NOT_FOUND", message: "no route for GET /nope" } });
  });

  it("answers a JSON 500 without leaking the error", async () => {
    const logged: string[] = [];
    const app = createApp({ config, db, log: (m) => logged.push(m) });
    // A syntax error from the database is a bug, not an outage: 500, and it is logged.
    const broken = { ...db, query: () => Promise.reject(Object.assign(new Error("You have an error in your SQL"), { code: "ER_PARSE_ERROR" })) };
    const appWithBrokenDb = createApp({ config, db: broken as unknown as Database, log: (m) => logged.push(m) });
    await request(app).get("/notes").expect(200);
    const res = await request(appWithBrokenDb).get("/notes").expect(500);
    assert.deepEqual(res.body, { error: { code: "INTERNAL", message: "internal server error" } });
    assert.equal(logged.length, 1);
    assert.match(logged[0], /GET \/notes -> 500: .*SQL/);
  });
});
