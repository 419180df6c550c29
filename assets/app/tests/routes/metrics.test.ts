import assert from "node:assert/strict";
import { Registry } from "prom-client";
import request from "supertest";
import { Database, type Queryable } from "../../src/db/pool";
import { ReadRouter } from "../../src/db/readRouter";
import { createApp } from "../../src/server";
import { AUTH, closedPort, parseMetrics, sampleValue, testConfig } from "../helpers";

/** Answers the notes SELECTs as MariaDB would with one note, id 42, stored. */
const oneNote: Queryable = {
  query: async <T>(sql: string, params: ReadonlyArray<unknown> = []) => {
    const row = { id: 42, title: "t", body: "", created_at: new Date(0) };
    if (sql.includes("COUNT(*)")) return [{ total: 1 }] as T;
    if (sql.includes("WHERE id = ?")) return (params[0] === 42 ? [row] : []) as T;
    return [row] as T;
  },
};

describe("request metrics (no database)", () => {
  let db: Database;
  before(async () => {
    // Never reached: the reads go to `oneNote`, and nothing here writes.
    db = new Database(testConfig({ db: { host: "127.0.0.1", port: await closedPort() } }).db);
  });
  after(() => db.close());

  function app() {
    const registry = new Registry();
    const config = testConfig();
    return { registry, app: createApp({ config, db, reads: new ReadRouter(oneNote, [], 5), metrics: registry }) };
  }

  it("counts requests by route pattern and status, a request no route matched as 'unmatched'", async () => {
    const { registry, app: served } = app();
    await request(served).get("/notes/42").expect(200);
    await request(served).get("/notes/7").expect(404);
    await request(served).get("/notes/abc").expect(400);
    await request(served).get("/notes").expect(200);
    await request(served).get("/nope").expect(404);
    await request(served).post("/notes").send({ title: "t" }).expect(401);
    await request(served).delete("/notes/7/8").set(AUTH).expect(404);

    const { samples } = parseMetrics(await registry.metrics());
    const count = (method: string, route: string, status: string) => sampleValue(samples, "pi_cluster_http_requests_total", { method, route, status });
    assert.equal(count("GET", "/notes/:id", "200"), 1);
    // The note's own 404 is the route's answer; an error thrown in the router keeps its pattern.
    assert.equal(count("GET", "/notes/:id", "404"), 1);
    assert.equal(count("GET", "/notes/:id", "400"), 1);
    assert.equal(count("GET", "/notes", "200"), 1);
    assert.equal(count("GET", "unmatched", "404"), 1);
    // Refused before routing: no route ran.
    assert.equal(count("POST", "unmatched", "401"), 1);
    assert.equal(count("DELETE", "unmatched", "404"), 1);
    const routes = new Set(samples.filter((s) => s.name === "pi_cluster_http_requests_total").map((s) => s.labels.route));
    assert.deepEqual([...routes].sort(), ["/notes", "/notes/:id", "unmatched"]);
    // Two reads answered by the primary (42 and 7), one list: where each read ran.
    assert.equal(sampleValue(samples, "pi_cluster_db_reads_total", { target: "primary" }), 3);
  });

  it("observes each request's latency once in the histogram of its route", async () => {
    const { registry, app: served } = app();
    for (const id of [42, 42, 9]) await request(served).get(`/notes/${id}`);
    await request(served).head("/notes/42").expect(200);

    const { samples } = parseMetrics(await registry.metrics());
    const get = { method: "GET", route: "/notes/:id" };
    assert.equal(sampleValue(samples, "pi_cluster_http_request_duration_seconds_count", get), 3);
    assert.equal(sampleValue(samples, "pi_cluster_http_request_duration_seconds_bucket", { ...get, le: "+Inf" }), 3);
    assert.equal(sampleValue(samples, "pi_cluster_http_request_duration_seconds_count", { method: "HEAD", route: "/notes/:id" }), 1);
    const sum = sampleValue(samples, "pi_cluster_http_request_duration_seconds_sum", get)!;
    assert.ok(sum > 0 && sum < 3, `sum ${sum} s`);
  });

  it("does not serve /metrics on the app's own port (nginx proxies it to the public)", async () => {
    const { registry, app: served } = app();
    const res = await request(served).get("/metrics").expect(404);
    assert.equal(res.body.error.code, "NOT_FOUND");
    assert.doesNotMatch(res.text, /pi_cluster_/);
    const { samples } = parseMetrics(await registry.metrics());
    assert.equal(sampleValue(samples, "pi_cluster_http_requests_total", { method: "GET", route: "unmatched", status: "404" }), 1);
  });

  it("keeps each app's series in its own registry", async () => {
    const one = app();
    const two = app();
    await request(one.app).get("/notes/42").expect(200);
    const count = async (registry: Registry) =>
      sampleValue(parseMetrics(await registry.metrics()).samples, "pi_cluster_http_requests_total", { method: "GET", route: "/notes/:id", status: "200" });
    assert.equal(await count(one.registry), 1);
    assert.equal(await count(two.registry), undefined);
  });
});
