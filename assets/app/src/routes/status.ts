import { Router, type RequestHandler } from "express";
import { queryBackupStatus, readBackupStatus } from "../backup";
import type { Config } from "../config";
import type { Database } from "../db/pool";
import { HttpError } from "../errors";
import { dbStatus, nodeStatus, publicStatus, type ProbeCache, type ReplicasStatus, type Status } from "../status";

export interface StatusDeps {
  config: Config;
  db: Database;
  probes: ProbeCache;
  requestsServed: () => number;
  /** The read replicas as last checked; null without replicas. Default: always null. */
  replication?: () => ReplicasStatus | null;
}

/**
 * The header the load balancer sets on the routes it keeps to the management network, and
 * clears everywhere else (components/render/nginx.ts, INTERNAL_HEADER there).
 */
export const INTERNAL_HEADER = "X-Pi-Cluster-Access";
export const INTERNAL_VALUE = "internal";

/**
 * A second lock behind nginx's allow/deny: a path that slips past nginx's locations (Express
 * matches /INTERNAL/status as /internal/status, nginx's prefixes are case-sensitive) still
 * lacks the header, which the public location clears.
 */
const internalOnly: RequestHandler = (req, _res, next) => {
  if (req.get(INTERNAL_HEADER) === INTERNAL_VALUE) return next();
  next(new HttpError(403, "FORBIDDEN", "the internal status is served only to the management network, through the load balancer's internal routes"));
};

/**
 * `GET /`: the public status; `GET /health`: liveness plus whether the database answers;
 * `GET /internal/status`: the full status (node and database internals).
 */
export function statusRouter({ config, db, probes, requestsServed, replication = () => null }: StatusDeps): Router {
  const router = Router();

  router.get("/", async (_req, res) => {
    const probe = await probes.get();
    res.set("Cache-Control", "no-store").json(publicStatus(config, probe.outcome));
  });

  router.get("/internal/status", internalOnly, async (_req, res) => {
    const probe = await probes.get();
    // A file when BACKUP_STATUS_FILE names one, else what the backup tool publishes in the DB.
    const lastBackup = config.backupStatusFile ? readBackupStatus(config.backupStatusFile) : probe.outcome.ok ? await queryBackupStatus(db) : null;
    const status: Status = {
      node: nodeStatus(config),
      requests: { served: requestsServed() },
      db: dbStatus(db.host, probe.outcome, probe.queriesPerSecond, db.stats(), lastBackup, replication()),
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
