import { Router } from "express";
import { readBackupStatus } from "../backup";
import type { Config } from "../config";
import type { Database } from "../db/pool";
import { dbStatus, nodeStatus, type ProbeCache, type Status } from "../status";

export interface StatusDeps {
  config: Config;
  db: Database;
  probes: ProbeCache;
  requestsServed: () => number;
}

/** `GET /`: the full status; `GET /health`: liveness plus whether the database answers. */
export function statusRouter({ config, db, probes, requestsServed }: StatusDeps): Router {
  const router = Router();

  router.get("/", async (_req, res) => {
    const probe = await probes.get();
    const status: Status = {
      node: nodeStatus(config),
      requests: { served: requestsServed() },
      db: dbStatus(db.host, probe.outcome, probe.queriesPerSecond, db.stats(), readBackupStatus(config.backupStatusFile)),
      cache: { hit: probe.hit, ageMs: probe.ageMs },
      generatedAt: new Date().toISOString(),
    };
    res.set("Cache-Control", "no-store").json(status);
  });

  router.get("/health", async (_req, res) => {
    const probe = await probes.get();
    res.set("Cache-Control", "no-store").json({
      status: "ok",
      node: config.nodeName,
      version: config.version,
      uptimeSeconds: Math.round(process.uptime() * 1000) / 1000,
      db: probe.outcome.ok ? "up" : "down",
    });
  });

  return router;
}
