import assert from "node:assert/strict";
import http from "node:http";
import express from "express";
import { boundPort, listen, shutdown } from "../../src/lifecycle";

function get(port: number, path: string): Promise<{ status: number; body: string; connection?: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }));
      })
      .on("error", reject);
  });
}

function slowApp(delayMs: number) {
  const app = express();
  app.locals.finishedAt = 0;
  app.use((req, res, next) => {
    if (req.app.locals.shuttingDown) res.set("Connection", "close");
    next();
  });
  app.get("/slow", async (_req, res) => {
    await new Promise((r) => setTimeout(r, delayMs));
    res.on("finish", () => (app.locals.finishedAt = Date.now()));
    res.send("finished");
  });
  return app;
}

describe("graceful shutdown", () => {
  it("finishes an in-flight request, refuses new connections, then closes the pool", async () => {
    const app = slowApp(300);
    const server = await listen(app, 0, "127.0.0.1");
    const port = boundPort(server);
    const inflight = get(port, "/slow");
    await new Promise((r) => setTimeout(r, 50));
    let poolClosedAt = 0;
    const stopping = shutdown(server, app, async () => {
      poolClosedAt = Date.now();
    });
    await assert.rejects(get(port, "/slow"), { code: "ECONNREFUSED" });
    const response = await inflight;
    assert.equal(response.status, 200);
    assert.equal(response.body, "finished");
    assert.equal(response.connection, "close");
    assert.deepEqual(await stopping, { timedOut: false });
    assert.ok(app.locals.finishedAt > 0 && poolClosedAt >= app.locals.finishedAt, "pool closed only after the response was sent");
  });

  it("cuts requests that outlast the drain timeout", async () => {
    const app = slowApp(5000);
    const server = await listen(app, 0, "127.0.0.1");
    const inflight = get(boundPort(server), "/slow");
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    let closed = false;
    const result = await shutdown(server, app, async () => void (closed = true), 200);
    assert.deepEqual(result, { timedOut: true });
    assert.ok(Date.now() - started < 2000, "did not wait for the slow request");
    assert.equal(closed, true);
    await assert.rejects(inflight, { code: "ECONNRESET" });
  });
});
