import cors from "cors";
import express from "express";
import helmet from "helmet";
import { Registry } from "prom-client";
import { requireWriteToken } from "./auth";
import type { Config } from "./config";
import type { Database } from "./db/pool";
import { probeDatabase } from "./db/probe";
import { ReadRouter } from "./db/readRouter";
import { errorHandler, notFound } from "./errors";
import { appMetrics, mountedAt, requestStart } from "./metrics";
import { notesRouter } from "./routes/notes";
import { statusRouter } from "./routes/status";
import { ProbeCache } from "./status";

/** Request bodies above this are refused with 413. */
export const BODY_LIMIT = "16kb";
/** Bound on the status page's database probe, so it answers quickly when MariaDB is down. */
export const PROBE_TIMEOUT_MS = 2000;

export interface AppDeps {
  config: Config;
  db: Database;
  /** Where reads run (index.ts builds it from DB_REPLICAS and starts it). Default: every read on `db`. */
  reads?: ReadRouter;
  probeTimeoutMs?: number;
  log?: (message: string) => void;
  /**
   * Where the app registers its metrics (index.ts serves it on METRICS_PORT, never on the app's
   * own port). Default: a registry of its own, which nothing serves.
   */
  metrics?: Registry;
}

function corsMiddleware(origins: string[]) {
  if (origins.length === 0) return undefined;
  return cors({
    origin: origins.includes("*") ? "*" : origins,
    methods: ["GET", "HEAD", "POST", "DELETE"],
    maxAge: 600,
  });
}

/** Builds the Express app. It does not listen: index.ts does, and tests use supertest. */
export function createApp({ config, db, reads, probeTimeoutMs = PROBE_TIMEOUT_MS, log = console.error, metrics = new Registry() }: AppDeps): express.Express {
  const router = reads ?? new ReadRouter(db, [], config.replication.maxLagSeconds);
  const meter = appMetrics(metrics, db, router);
  const app = express();
  let served = 0;
  const probes = new ProbeCache(() => probeDatabase(db, probeTimeoutMs), config.statusCacheMs);

  // Exactly one proxy (the nginx load balancer) sits in front, so req.ip is the client it saw.
  app.set("trust proxy", 1);
  app.locals.shuttingDown = false;

  app.use((req, res, next) => {
    const startedAt = requestStart();
    res.on("finish", () => {
      served++;
      meter.observeRequest(req, res, startedAt);
    });
    // While index.ts drains, tell keep-alive clients (nginx) to open their next request elsewhere.
    if (req.app.locals.shuttingDown) res.set("Connection", "close");
    next();
  });
  app.use(helmet());
  const corsHandler = corsMiddleware(config.corsOrigins);
  if (corsHandler) app.use(corsHandler);
  // Before the body parser: a write without the token is refused before its body is read.
  app.use(requireWriteToken(config.writeToken));
  app.use(express.json({ limit: BODY_LIMIT }));

  app.use(statusRouter({ config, db, probes, requestsServed: () => served, replication: () => router.status() }));
  app.use("/notes", mountedAt("/notes"), notesRouter(db, router));

  app.use(notFound);
  app.use(errorHandler(log));
  return app;
}
