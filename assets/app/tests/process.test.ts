import assert from "node:assert/strict";
import { fork, type ChildProcess } from "node:child_process";
import path from "node:path";
import { closedPort, parseMetrics, sampleValue, silentServer, testConfig } from "./helpers";

const entry = path.join(__dirname, "..", "src", "index.ts");

/** The app's environment against the test database, listening on `port`. */
function appEnv(config: ReturnType<typeof testConfig>, port: number): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PORT: String(port),
    DB_HOST: config.db.host,
    DB_PORT: String(config.db.port),
    DB_PASSWORD: config.db.password,
    API_WRITE_TOKEN: config.writeToken,
  };
}

function start(env: NodeJS.ProcessEnv): { child: ChildProcess; output: () => string; exit: Promise<number | null> } {
  let output = "";
  const child = fork(entry, [], {
    env: { ...env, TS_NODE_TRANSPILE_ONLY: "true" },
    execArgv: ["-r", "ts-node/register"],
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  child.stdout?.on("data", (c) => (output += c));
  child.stderr?.on("data", (c) => (output += c));
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, output: () => output, exit };
}

describe("the app process (src/index.ts)", () => {
  // One process for the app and its metrics listener: each start under ts-node takes seconds.
  it("tells PM2 it is ready once listening, serves the app and its metrics on their own ports, and exits 0 on SIGTERM, closing both", async () => {
    const config = testConfig();
    const [port, metricsPort] = [await closedPort(), await closedPort()];
    const { child, output, exit } = start({ ...appEnv(config, port), METRICS_PORT: String(metricsPort), pm_id: "0", restart_time: "4" });
    try {
      const ready = await new Promise((resolve, reject) => {
        child.once("message", resolve);
        child.once("exit", (code) => reject(new Error(`exited ${code} before ready: ${output()}`)));
      });
      assert.equal(ready, "ready");
      assert.match(output(), new RegExp(`listening on port ${port}, metrics on port ${metricsPort},`));
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { db: string }).db, "up");

      assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 404);
      const scrape = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      assert.equal(scrape.status, 200);
      const { samples } = parseMetrics(await scrape.text());
      assert.equal(sampleValue(samples, "pi_cluster_http_requests_total", { method: "GET", route: "/health", status: "200" }), 1);
      assert.equal(sampleValue(samples, "pi_cluster_http_requests_total", { method: "GET", route: "unmatched", status: "404" }), 1);
      assert.equal(sampleValue(samples, "pi_cluster_app_pm2_restarts"), 4);
      assert.ok(sampleValue(samples, "process_start_time_seconds")! > 0);

      child.kill("SIGTERM");
      assert.equal(await exit, 0);
      assert.match(output(), /SIGTERM: draining/);
      await assert.rejects(fetch(`http://127.0.0.1:${port}/health`));
      await assert.rejects(fetch(`http://127.0.0.1:${metricsPort}/metrics`));
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("with a replica that never answers, reads on the primary and still shuts down at once on SIGTERM", async () => {
    const config = testConfig();
    const port = await closedPort();
    const hung = await silentServer();
    const { child, output, exit } = start({
      ...appEnv(config, port),
      DB_REPLICAS: `pi-db-read1@127.0.0.1:${hung.port}`,
    });
    try {
      await new Promise((resolve, reject) => {
        child.once("message", resolve);
        child.once("exit", (code) => reject(new Error(`exited ${code} before ready: ${output()}`)));
      });
      assert.match(output(), /read replicas pi-db-read1@127\.0\.0\.1:\d+/);
      const res = await fetch(`http://127.0.0.1:${port}/notes?limit=1`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-pi-cluster-read-from"), "primary");
      const stopAt = Date.now();
      child.kill("SIGTERM");
      assert.equal(await exit, 0);
      // The replica's pool and health-check connection are closed too, bounded like the primary's.
      assert.ok(Date.now() - stopAt < 4000, `took ${Date.now() - stopAt} ms to stop`);
    } finally {
      child.kill("SIGKILL");
      await hung.close();
    }
  });

  it("exits 1 naming the variable when the environment is invalid", async () => {
    const { output, exit } = start({ PATH: process.env.PATH, DB_PASSWORD: "x", PORT: "0" });
    assert.equal(await exit, 1);
    assert.match(output(), /DB_HOST: required/);
    assert.match(output(), /PORT: expected an integer from 1 to 65535, got "0"/);
  });
});
