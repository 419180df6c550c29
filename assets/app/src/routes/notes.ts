import { Router, type Request, type Response } from "express";
import { createNote, deleteNote, getNote, listNotes } from "../db/notes";
import { forRequest, type Database, type RequestDb } from "../db/pool";
import type { ReadRouter } from "../db/readRouter";
import { requestGtid } from "../db/replicas";
import { HttpError } from "../errors";
import { createNoteSchema, idParamSchema, listQuerySchema, parse } from "../validation";

/** On every read: where it was served, a replica's NAME or `primary`. */
export const READ_FROM_HEADER = "X-Pi-Cluster-Read-From";
/** On a write (with replicas): the write's GTID. A read that sends it back sees the write. */
export const GTID_HEADER = "X-Pi-Cluster-Gtid";
/** The same GTID as a cookie, so a browser's next read carries it without any script. */
export const GTID_COOKIE = "pi_cluster_gtid";
/** Long enough for a replica to catch up many times over; after it, reads need no GTID. */
export const GTID_COOKIE_MAX_AGE_MS = 60_000;

/** The GTID a read carries (header, else cookie), when well formed. */
const readGtid = (req: Request): string | null => requestGtid(req.get(GTID_HEADER), req.headers.cookie, GTID_COOKIE);

/** Hands the client its write's GTID, when there is one (replicas configured, and it was read). */
function sendGtid(res: Response, db: RequestDb): void {
  if (db.gtid === null) return;
  res.set(GTID_HEADER, db.gtid);
  res.cookie(GTID_COOKIE, db.gtid, { path: "/", httpOnly: true, sameSite: "lax", maxAge: GTID_COOKIE_MAX_AGE_MS });
}

/**
 * The notes resource: list, create, get and delete, stored in MariaDB. Each request's statements
 * share one time budget (forRequest), so a request never waits on the database past it. Writes go
 * to the primary; reads go where `reads` sends them (a replica or the primary).
 */
export function notesRouter(db: Database, reads: ReadRouter): Router {
  const router = Router();
  const forWrite = () => forRequest(db, undefined, { trackGtid: reads.enabled });

  router.get("/", async (req, res) => {
    const { limit, offset } = parse(listQuerySchema, req.query, "query");
    const { value, from } = await reads.read((q) => listNotes(q, limit, offset), readGtid(req));
    res.set(READ_FROM_HEADER, from).json({ ...value, limit, offset });
  });

  router.post("/", async (req, res) => {
    const { title, body } = parse(createNoteSchema, req.body, "body");
    const q = forWrite();
    const note = await createNote(q, title, body);
    sendGtid(res, q);
    res.status(201).location(`${req.baseUrl}/${note.id}`).json(note);
  });

  router.get("/:id", async (req, res) => {
    const { id } = parse(idParamSchema, req.params, "id");
    const { value: note, from } = await reads.read((q) => getNote(q, id), readGtid(req));
    res.set(READ_FROM_HEADER, from);
    if (!note) throw new HttpError(404, "NOT_FOUND", `no note with id ${id}`, "id");
    res.json(note);
  });

  router.delete("/:id", async (req, res) => {
    const { id } = parse(idParamSchema, req.params, "id");
    const q = forWrite();
    if (!(await deleteNote(q, id))) throw new HttpError(404, "NOT_FOUND", `no note with id ${id}`, "id");
    sendGtid(res, q);
    res.status(204).end();
  });

  return router;
}
