import type { ErrorRequestHandler, RequestHandler } from "express";
import { RECHECK_INTERVAL_MS } from "./db/breaker";
import { isTransientError } from "./db/retry";
import { describeError } from "./status";

/**
 * Retry-After on a database 503, in whole seconds: a down database is rechecked every
 * RECHECK_INTERVAL_MS, so by then the app knows again whether it answers.
 */
export const DB_RETRY_AFTER_SECONDS = Math.max(1, Math.ceil(RECHECK_INTERVAL_MS / 1000));

/** An error that becomes `{"error": {code, message, field?}}` with its HTTP status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    /** Sent as the Retry-After header, in seconds. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export const notFound: RequestHandler = (req, _res, next) => {
  next(new HttpError(404, "NOT_FOUND", `no route for ${req.method} ${req.path}`));
};

/** Errors from express.json (body-parser) by their `type`. */
const BODY_ERRORS: Record<string, { status: number; code: string; message: string }> = {
  "entity.too.large": { status: 413, code: "PAYLOAD_TOO_LARGE", message: "request body is larger than the limit" },
  "entity.parse.failed": { status: 400, code: "INVALID_JSON", message: "request body is not valid JSON" },
  "encoding.unsupported": { status: 415, code: "UNSUPPORTED_ENCODING", message: "request body encoding is not supported" },
  "charset.unsupported": { status: 415, code: "UNSUPPORTED_CHARSET", message: "request body charset is not supported" },
  "request.aborted": { status: 400, code: "REQUEST_ABORTED", message: "request body was aborted" },
};

/** Maps any error to the contract's JSON error; database outages become 503. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  const type = (err as { type?: unknown } | null)?.type;
  if (typeof type === "string" && BODY_ERRORS[type]) {
    const known = BODY_ERRORS[type];
    const limit = (err as { limit?: unknown }).limit;
    const message = type === "entity.too.large" && typeof limit === "number" ? `${known.message} (${limit} bytes)` : known.message;
    return new HttpError(known.status, known.code, message);
  }
  if (isTransientError(err)) {
    return new HttpError(503, "DB_UNAVAILABLE", "the database is unavailable, try again later", undefined, DB_RETRY_AFTER_SECONDS);
  }
  return new HttpError(500, "INTERNAL", "internal server error");
}

export function errorHandler(log: (message: string) => void): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const httpError = toHttpError(err);
    if (httpError.status >= 500) {
      // During an outage every request may be a 503: one line each, not a stack trace each.
      const detail = httpError.status === 503 ? describeError(err) : err instanceof Error ? err.stack ?? err.message : String(err);
      log(`${req.method} ${req.originalUrl} -> ${httpError.status}: ${detail}`);
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body: { code: string; message: string; field?: string } = { code: httpError.code, message: httpError.message };
    if (httpError.field !== undefined) body.field = httpError.field;
    if (httpError.retryAfterSeconds !== undefined) res.set("Retry-After", String(httpError.retryAfterSeconds));
    res.status(httpError.status).json({ error: body });
  };
}
