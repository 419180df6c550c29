import crypto from "node:crypto";
import type { RequestHandler } from "express";
import { HttpError } from "./errors";

/** The methods that change data; every other one (GET, HEAD, OPTIONS) stays public. */
export const WRITE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

// Both sides hashed first: timingSafeEqual needs equal lengths, and comparing digests
// leaks neither the token's length nor how much of a guess matched.
const digest = (text: string): Buffer => crypto.createHash("sha256").update(text, "utf8").digest();

/**
 * Lets a write through only with `Authorization: Bearer <token>`. A refusal is 401 with
 * `WWW-Authenticate: Bearer` (RFC 6750) and a message saying what is missing or wrong,
 * never what was sent.
 */
export function requireWriteToken(token: string): RequestHandler {
  const expected = digest(token);
  return (req, res, next) => {
    if (!WRITE_METHODS.has(req.method)) return next();
    const refuse = (message: string, error?: "invalid_request" | "invalid_token") => {
      res.set("WWW-Authenticate", `Bearer realm="pi-cluster"${error ? `, error="${error}"` : ""}`);
      next(new HttpError(401, "UNAUTHORIZED", message));
    };
    const header = req.get("authorization");
    if (header === undefined) {
      return refuse(`${req.method} needs an Authorization: Bearer <token> header (the stack output apiWriteToken); this request has none`);
    }
    // The scheme is case-insensitive (RFC 7235); the token is not.
    const match = /^Bearer +([^ ]+) *$/i.exec(header);
    if (!match) return refuse("Authorization: expected the Bearer scheme and a token, as in 'Bearer <token>'", "invalid_request");
    if (!crypto.timingSafeEqual(digest(match[1]), expected)) return refuse("Authorization: the bearer token is not the API's write token", "invalid_token");
    next();
  };
}
