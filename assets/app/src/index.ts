import { Registry } from "prom-client";
import { ConfigError, loadConfig, type Config } from "./config";
import { Database } from "./db/pool";
import { ReadRouter } from "./db/readRouter";
import { closeNow, listen, shutdown } from "./lifecycle";
import { metricsHandler, processMetrics } from "./metrics";
import { createApp } from "./server";

const metricsNote = ({ metricsPort }: Config): string => (metricsPort === null ? "" : `, metrics on port ${metricsPort}`);
const replicasNote = ({ replication }: Config): string =>
  replication.replicas.length === 0 ? "" : `, read replicas ${replication.replicas.map((r) => `${r.name}@${r.host}:${r.port}`).join(", ")}`;

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    console.error(err instanceof ConfigError ? err.message : err);
    process.exit(1);
  }

  const db = new Database(config.db);
  const reads = ReadRouter.fromConfig(db, config);
  reads.start();
  const metrics = new Registry();
  processMetrics(metrics, process.env);
  const app = createApp({ config, db, reads, metrics });
  const server = await listen(app, config.port);
  // Same bind as the app: who may reach the port is the firewall's decision.
  const metricsServer = config.metricsPort === null ? null : await listen(metricsHandler(metrics), config.metricsPort);
  console.log(`${config.nodeName}: app ${config.version} listening on port ${config.port}${metricsNote(config)}, database ${config.db.host}:${config.db.port}${replicasNote(config)}`);
  // PM2 with wait_ready waits for this before it counts the process as online.
  if (process.send) process.send("ready");

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: draining in-flight requests`);
    shutdown(server, app, async () => {
      await Promise.all([db.close(), reads.close(), metricsServer && closeNow(metricsServer)]);
    }).then(
      ({ timedOut }) => {
        console.log(timedOut ? "stopped (drain timed out, open requests were cut)" : "stopped");
        process.exit(0);
      },
      (err: unknown) => {
        console.error("shutdown failed:", err);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err: unknown) => {
  console.error("failed to start:", err);
  process.exit(1);
});
