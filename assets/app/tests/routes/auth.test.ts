import assert from "node:assert/strict";
import request from "supertest";
import type { Express } from "express";
import { Database } from "../../src/db/pool";
import { createApp } from "../../src/server";
import { AUTH, TEST_WRITE_TOKEN, testConfig } from "../helpers";

describe("write token (real MariaDB)", () => {
  const config = testConfig();
  let db: Database;
  let app: Express;

  before(() => {
    db = new Database(config.db);
    app = createApp({ config, db });
  });
  after(() => db.close());

  /** A 401 as RFC 6750 has it, with a message that never repeats what was sent. */
  function refused(res: request.Response, why: RegExp, sent?: string): void {
    assert.equal(res.status, 401);
    assert.match(res.headers["www-authenticate"], /^Bearer realm="pi-cluster"/);
    assert.equal(res.body.error.code, "UNAUTHORIZED");
    assert.match(res.body.error.message, why);
    if (sent) assert.ok(!JSON.stringify(res.body).includes(sent), "the answer repeats the token sent");
    assert.ok(!JSON.stringify(res.body).includes(TEST_WRITE_TOKEN), "the answer shows the real token");
  }

  it("refuses a write with no Authorization header, naming what is missing", async () => {
    refused(await request(app).post("/notes").send({ title: "t" }), /needs an Authorization: Bearer <token> header/);
    refused(await request(app).delete("/notes/1"), /DELETE needs an Authorization/);
    // Methods the API does not route yet are writes too.
    refused(await request(app).put("/notes/1").send({ title: "t" }), /PUT needs/);
    refused(await request(app).patch("/notes/1").send({ title: "t" }), /PATCH needs/);
  });

  it("refuses a wrong token, a token of another length and another scheme, without echoing them", async () => {
    const wrong = TEST_WRITE_TOKEN.replace(/.$/, "X");
    const res = await request(app).post("/notes").set("Authorization", `Bearer ${wrong}`).send({ title: "t" });
    refused(res, /the bearer token is not the API's write token/, wrong);
    assert.match(res.headers["www-authenticate"], /error="invalid_token"/);
    refused(await request(app).post("/notes").set("Authorization", "Bearer short").send({ title: "t" }), /not the API's write token/, "short");
    const basic = await request(app).post("/notes").set("Authorization", `Basic ${TEST_WRITE_TOKEN}`).send({ title: "t" });
    refused(basic, /expected the Bearer scheme/);
    assert.match(basic.headers["www-authenticate"], /error="invalid_request"/);
  });

  it("lets a write with the token through, the scheme in any letter case", async () => {
    const created = await request(app).post("/notes").set(AUTH).send({ title: "with token" }).expect(201);
    await request(app).delete(`/notes/${created.body.id}`).set("Authorization", `bearer ${TEST_WRITE_TOKEN}`).expect(204);
  });

  it("keeps reads public", async () => {
    await request(app).get("/notes").expect(200);
    await request(app).get("/notes/999999999").expect(404);
    await request(app).get("/health").expect(200);
    await request(app).get("/").expect(200);
    await request(app).head("/notes").expect(200);
  });
});
