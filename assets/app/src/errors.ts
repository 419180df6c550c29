import type { ErrorRequestHandler, RequestHandler } from "express";
import { isTransientError } from "./db/retry";

/** An error that becomes `{"error": {code, message, field?}}` with its HTTP status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
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
  if (isTransientError(err) || (err as { code?: unknown } | null)?.code === "POOL_ACQUIRE_TIMEOUT") {
    return new HttpError(503, "DB_UNAVAILABLE", "the database is unavailable, try again later");
  }
  return new HttpError(500, "INTERNAL", "internal server error");
}

export function errorHandler(log: (message: string) => void): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const httpError = toHttpError(err);
    if (httpError.status >= 500) {
      log(`${req.method} ${req.originalUrl} -> ${httpError.status}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body: { code: string; message: string; field?: string } = { code: httpError.code, message: httpError.message };
    if (httpError.field !== undefined) body.field = httpError.field;
    res.status(httpError.status).json({ error: body });
  };
}
