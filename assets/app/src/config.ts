import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { z } from "zod";

/** The app's settings, read from the environment once at start (see docs/contracts.md). */
export interface Config {
  port: number;
  nodeName: string;
  version: string;
  db: {
    host: string;
    port: number;
    database: string;
    user: string;
    password: string;
    poolSize: number;
  };
  /** Allowed CORS origins; empty means same-origin only, ["*"] means any origin. */
  corsOrigins: string[];
  statusCacheMs: number;
  /** The backup target's status.json, as this server sees it; null when backups are not configured. */
  backupStatusFile: string | null;
}

function intVar(name: string, min: number, max: number, fallback: number) {
  return z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === "") return fallback;
      const value = raw.trim();
      if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max) {
        ctx.addIssue({ code: "custom", message: `${name}: expected an integer from ${min} to ${max}, got "${raw}"` });
        return z.NEVER;
      }
      return Number(value);
    });
}

function requiredVar(name: string) {
  return z.string({ error: `${name}: required` }).trim().min(1, `${name}: required, got an empty value`);
}

function optionalVar(fallback: string) {
  return z
    .string()
    .optional()
    .transform((raw) => (raw === undefined || raw.trim() === "" ? fallback : raw.trim()));
}

const corsOrigins = z
  .string()
  .optional()
  .transform((raw, ctx) => {
    const origins = (raw ?? "")
      .split(",")
      .map((o) => o.trim())
      .filter((o) => o !== "");
    for (const origin of origins) {
      if (origin === "*") continue;
      let parsed: URL | undefined;
      try {
        parsed = new URL(origin);
      } catch {
        parsed = undefined;
      }
      if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.origin !== origin.replace(/\/$/, "")) {
        ctx.addIssue({
          code: "custom",
          message: `CORS_ORIGINS: expected comma-separated origins like https://host[:port] or *, got "${origin}"`,
        });
        return z.NEVER;
      }
    }
    return origins.map((o) => (o === "*" ? o : o.replace(/\/$/, "")));
  });

const envSchema = z.object({
  PORT: intVar("PORT", 1, 65535, 3000),
  NODE_NAME: optionalVar(os.hostname()),
  DB_HOST: requiredVar("DB_HOST"),
  DB_PORT: intVar("DB_PORT", 1, 65535, 3306),
  DB_NAME: optionalVar("webapp_db"),
  DB_USER: optionalVar("webapp_user"),
  DB_PASSWORD: z.string({ error: "DB_PASSWORD: required" }).min(1, "DB_PASSWORD: required, got an empty value"),
  DB_POOL_SIZE: intVar("DB_POOL_SIZE", 1, 1000, 10),
  CORS_ORIGINS: corsOrigins,
  STATUS_CACHE_MS: intVar("STATUS_CACHE_MS", 0, 3_600_000, 2000),
  BACKUP_STATUS_FILE: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === "") return null;
      if (!raw.trim().startsWith("/")) {
        ctx.addIssue({ code: "custom", message: `BACKUP_STATUS_FILE: expected an absolute path, got "${raw}"` });
        return z.NEVER;
      }
      return raw.trim();
    }),
});

/** Thrown when the environment is invalid; the message lists every bad variable. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** The app version: the `version` field of the app's package.json (one level above src/ and dist/). */
export function appVersion(): string {
  const file = path.join(__dirname, "..", "package.json");
  const pkg = JSON.parse(fs.readFileSync(file, "utf8")) as { version?: unknown };
  if (typeof pkg.version !== "string") throw new ConfigError(`${file}: has no "version" string`);
  return pkg.version;
}

/** Validates the environment. Pure apart from the hostname default and reading package.json. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const result = envSchema.safeParse(env);
  if (!result.success) {
    throw new ConfigError(`invalid environment: ${result.error.issues.map((i) => i.message).join("; ")}`);
  }
  const e = result.data;
  return {
    port: e.PORT,
    nodeName: e.NODE_NAME,
    version: appVersion(),
    db: {
      host: e.DB_HOST,
      port: e.DB_PORT,
      database: e.DB_NAME,
      user: e.DB_USER,
      password: e.DB_PASSWORD,
      poolSize: e.DB_POOL_SIZE,
    },
    corsOrigins: e.CORS_ORIGINS,
    statusCacheMs: e.STATUS_CACHE_MS,
    backupStatusFile: e.BACKUP_STATUS_FILE,
  };
}
