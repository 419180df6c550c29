import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { z } from "zod";

/** The app's settings, read from the environment once at start (see docs/contracts.md). */
export interface Config {
  port: number;
  /** The port of the Prometheus metrics listener (METRICS_PORT); null: no metrics listener. */
  metricsPort: number | null;
  nodeName: string;
  version: string;
  db: {
    host: string;
    port: number;
    database: string;
    user: string;
    password: string;
    poolSize: number;
    /** Set: the app connects only over TLS, to a server whose certificate `ca` signed for `serverName`. */
    ssl?: { ca: string; serverName: string };
  };
  /** Allowed CORS origins; empty means same-origin only, ["*"] means any origin. */
  corsOrigins: string[];
  /** The bearer token every API write must carry (a secret). */
  writeToken: string;
  statusCacheMs: number;
  /** The backup target's status.json, as this server sees it; null when backups are not configured. */
  backupStatusFile: string | null;
  /** The read replicas (DB_REPLICAS, in its order; empty: every read goes to the primary) and the lag bound. */
  replication: { replicas: ReplicaSpec[]; maxLagSeconds: number };
}

/** One read replica of DB_REPLICAS: `NAME@HOST:PORT`. NAME is also the name its TLS certificate carries. */
export interface ReplicaSpec {
  name: string;
  host: string;
  port: number;
}

function intVar<F extends number | null>(name: string, min: number, max: number, fallback: F) {
  return z
    .string()
    .optional()
    .transform((raw, ctx): number | F => {
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

/**
 * The bearer token for writes: RFC 6750's token68 characters, so it fits an Authorization
 * header as it is. The messages never show the value: it is a secret.
 */
export const MIN_WRITE_TOKEN_LENGTH = 16;
const writeToken = z
  .string({ error: "API_WRITE_TOKEN: required (the bearer token API writes must carry)" })
  .min(MIN_WRITE_TOKEN_LENGTH, `API_WRITE_TOKEN: expected at least ${MIN_WRITE_TOKEN_LENGTH} characters`)
  .regex(/^[A-Za-z0-9\-._~+/]+=*$/, "API_WRITE_TOKEN: expected letters, digits and -._~+/ only (a bearer token), with no spaces");

/** A host name as the stack names hosts (pi-db-read1), or a DNS name made of such labels. */
const HOST_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const DNS_NAME = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/**
 * Parses DB_REPLICAS: comma-separated `NAME@HOST:PORT` entries, e.g.
 * `pi-db-read1@10.254.0.127:3306,pi-db-read2@10.254.0.128:3306`. Empty or unset: no replicas.
 * Returns the error message for the first bad entry instead of throwing, for the schema below.
 */
export function parseReplicas(raw: string | undefined): ReplicaSpec[] | { error: string } {
  const entries = (raw ?? "")
    .split(",")
    .map((e) => e.trim())
    .filter((e) => e !== "");
  const replicas: ReplicaSpec[] = [];
  const expected = "expected comma-separated NAME@HOST:PORT entries such as pi-db-read1@10.254.0.127:3306";
  for (const entry of entries) {
    const match = /^([^@\s]+)@([^:\s]+):([0-9]+)$/.exec(entry);
    if (!match) return { error: `DB_REPLICAS: ${expected}, got "${entry}"` };
    const [, name, host, portText] = match;
    const port = Number(portText);
    if (!HOST_NAME.test(name)) return { error: `DB_REPLICAS: expected NAME to be a host name of a-z, 0-9 and -, got "${name}" in "${entry}"` };
    const ipLike = /^[0-9.]+$/.test(host);
    if (ipLike ? net.isIPv4(host) === false : !DNS_NAME.test(host)) {
      return { error: `DB_REPLICAS: expected HOST to be an IPv4 address or a host name, got "${host}" in "${entry}"` };
    }
    if (port < 1 || port > 65535) return { error: `DB_REPLICAS: expected PORT from 1 to 65535, got "${portText}" in "${entry}"` };
    if (replicas.some((r) => r.name === name)) return { error: `DB_REPLICAS: replica name "${name}" appears twice (in "${entry}")` };
    if (replicas.some((r) => r.host === host && r.port === port)) return { error: `DB_REPLICAS: address ${host}:${port} appears twice (in "${entry}")` };
    replicas.push({ name, host, port });
  }
  return replicas;
}

const dbReplicas = z
  .string()
  .optional()
  .transform((raw, ctx) => {
    const parsed = parseReplicas(raw);
    if ("error" in parsed) {
      ctx.addIssue({ code: "custom", message: parsed.error });
      return z.NEVER;
    }
    return parsed;
  });

/** The PEM certificates in a file's text, each from its BEGIN line to its END line. */
export function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
}

/**
 * DB_SSL_CA: the path of the CA file MariaDB's certificate is checked against. Read here, once:
 * a file that is set but unreadable stops the app at start, rather than let it run in plain text
 * or fail on every request.
 */
const dbSslCa = z
  .string()
  .optional()
  .transform((raw, ctx) => {
    if (raw === undefined || raw.trim() === "") return undefined;
    const file = raw.trim();
    let pem: string;
    try {
      pem = fs.readFileSync(file, "utf8");
    } catch (e) {
      ctx.addIssue({ code: "custom", message: `DB_SSL_CA: cannot read the CA file "${file}" (${(e as NodeJS.ErrnoException).code ?? String(e)})` });
      return z.NEVER;
    }
    // With replicas the file is a bundle: the primary's CA and every replica's, concatenated.
    const begins = pem.split("-----BEGIN CERTIFICATE-----").length - 1;
    const certificates = pemCertificates(pem).length;
    if (certificates === 0) {
      ctx.addIssue({ code: "custom", message: `DB_SSL_CA: expected a PEM certificate (or several, concatenated) in "${file}"` });
      return z.NEVER;
    }
    if (begins !== certificates) {
      ctx.addIssue({ code: "custom", message: `DB_SSL_CA: "${file}" has ${begins} BEGIN CERTIFICATE lines but ${certificates} complete certificates (a truncated bundle?)` });
      return z.NEVER;
    }
    return pem;
  });

/** METRICS_PORT's lowest value: the app runs unprivileged, so it cannot bind below 1024. */
const METRICS_PORT_MIN = 1024;

const envSchema = z.object({
  PORT: intVar("PORT", 1, 65535, 3000),
  METRICS_PORT: intVar("METRICS_PORT", METRICS_PORT_MIN, 65535, null),
  NODE_NAME: optionalVar(os.hostname()),
  DB_HOST: requiredVar("DB_HOST"),
  DB_PORT: intVar("DB_PORT", 1, 65535, 3306),
  DB_NAME: optionalVar("webapp_db"),
  DB_USER: optionalVar("webapp_user"),
  DB_PASSWORD: z.string({ error: "DB_PASSWORD: required" }).min(1, "DB_PASSWORD: required, got an empty value"),
  DB_POOL_SIZE: intVar("DB_POOL_SIZE", 1, 1000, 10),
  CORS_ORIGINS: corsOrigins,
  STATUS_CACHE_MS: intVar("STATUS_CACHE_MS", 0, 3_600_000, 2000),
  API_WRITE_TOKEN: writeToken,
  DB_SSL_CA: dbSslCa,
  DB_SSL_SERVERNAME: optionalVar(""),
  DB_REPLICAS: dbReplicas,
  DB_REPLICA_MAX_LAG_SECONDS: intVar("DB_REPLICA_MAX_LAG_SECONDS", 0, 3600, 5),
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
  // Node.js checks an IP address only against the name "localhost" on a socket mysql2 opened,
  // so with an IP DB_HOST the certificate's DNS name is what the app verifies.
  const serverName = e.DB_SSL_SERVERNAME || e.DB_HOST;
  if (e.DB_SSL_CA !== undefined && net.isIP(serverName)) {
    throw new ConfigError(`invalid environment: DB_SSL_SERVERNAME: required with DB_SSL_CA when DB_HOST is an IP address ("${e.DB_HOST}"): the DNS name in the database's certificate, such as pi-db`);
  }
  if (e.METRICS_PORT === e.PORT) {
    throw new ConfigError(`invalid environment: METRICS_PORT: expected a port other than PORT (${e.PORT}), got "${e.METRICS_PORT}"`);
  }
  return {
    port: e.PORT,
    metricsPort: e.METRICS_PORT,
    nodeName: e.NODE_NAME,
    version: appVersion(),
    db: {
      host: e.DB_HOST,
      port: e.DB_PORT,
      database: e.DB_NAME,
      user: e.DB_USER,
      password: e.DB_PASSWORD,
      poolSize: e.DB_POOL_SIZE,
      ...(e.DB_SSL_CA !== undefined ? { ssl: { ca: e.DB_SSL_CA, serverName } } : {}),
    },
    corsOrigins: e.CORS_ORIGINS,
    statusCacheMs: e.STATUS_CACHE_MS,
    writeToken: e.API_WRITE_TOKEN,
    backupStatusFile: e.BACKUP_STATUS_FILE,
    replication: { replicas: e.DB_REPLICAS, maxLagSeconds: e.DB_REPLICA_MAX_LAG_SECONDS },
  };
}
