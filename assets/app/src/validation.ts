import { z } from "zod";
import { HttpError } from "./errors";

export const TITLE_MAX = 200;
export const BODY_MAX = 10_000;
export const LIMIT_MAX = 100;
export const LIMIT_DEFAULT = 20;

/** Length in characters (code points), as MariaDB counts a utf8mb4 VARCHAR, not UTF-16 units. */
const length = (s: string): number => [...s].length;

const describe = (value: unknown): string => {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  return typeof value === "object" ? "an object" : `${typeof value} ${String(value)}`;
};

// Each field schema starts with z.unknown().optional() so that a missing key reaches the
// transform (zod 4 reports "expected nonoptional" otherwise) and gets our own message.

/** A non-negative integer from a query string or path segment, within [min, max]. */
function integer(min: number, max: number, fallback?: number) {
  const expected = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
  return z.unknown().optional().transform((raw, ctx): number => {
    if (raw === undefined && fallback !== undefined) return fallback;
    if (typeof raw === "string" && /^[0-9]{1,16}$/.test(raw)) {
      const value = Number(raw);
      if (value >= min && value <= max) return value;
    }
    ctx.addIssue({ code: "custom", message: `expected ${expected}, got ${describe(raw)}` });
    return z.NEVER;
  });
}

export const listQuerySchema = z.object({
  limit: integer(1, LIMIT_MAX, LIMIT_DEFAULT),
  offset: integer(0, Number.MAX_SAFE_INTEGER, 0),
});

export const idParamSchema = z.object({ id: integer(1, Number.MAX_SAFE_INTEGER) });

function text(min: number, max: number, trim: boolean) {
  return z.unknown().optional().transform((raw, ctx): string => {
    if (typeof raw !== "string") {
      ctx.addIssue({ code: "custom", message: `expected a string of ${min} to ${max} characters, got ${describe(raw)}` });
      return z.NEVER;
    }
    const value = trim ? raw.trim() : raw;
    const n = length(value);
    if (n < min || n > max) {
      ctx.addIssue({ code: "custom", message: `expected ${min} to ${max} characters, got ${n}` });
      return z.NEVER;
    }
    return value;
  });
}

export const createNoteSchema = z.object(
  {
    title: text(1, TITLE_MAX, true),
    body: z.unknown().optional().transform((raw, ctx): string => {
      if (raw === undefined) return "";
      const parsed = text(0, BODY_MAX, false).safeParse(raw);
      if (parsed.success) return parsed.data;
      ctx.addIssue({ code: "custom", message: parsed.error.issues[0].message });
      return z.NEVER;
    }),
  },
  {
    error: (issue) =>
      issue.input === undefined
        ? 'expected a JSON object with "title" and "body", got nothing (send it with Content-Type: application/json)'
        : `expected a JSON object with "title" and "body", got ${describe(issue.input)}`,
  },
);

/**
 * Parses `input` or throws a 400 whose message names the field and what was expected, e.g.
 * `title: expected 1 to 200 characters, got 0`. `where` names a failure of the input as a whole.
 */
export function parse<S extends z.ZodType>(schema: S, input: unknown, where: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({
    field: issue.path.length > 0 ? issue.path.map(String).join(".") : where,
    message: issue.message,
  }));
  const message = issues.map((i) => `${i.field}: ${i.message}`).join("; ");
  throw new HttpError(400, "VALIDATION_ERROR", message, issues[0].field);
}
