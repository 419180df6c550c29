import { Router } from "express";
import { createNote, deleteNote, getNote, listNotes } from "../db/notes";
import { forRequest, type Database } from "../db/pool";
import { HttpError } from "../errors";
import { createNoteSchema, idParamSchema, listQuerySchema, parse } from "../validation";

/**
 * The notes resource: list, create, get and delete, stored in MariaDB. Each request's statements
 * share one time budget (forRequest), so a request never waits on the database past it.
 */
export function notesRouter(db: Database): Router {
  const router = Router();

  router.get("/", async (req, res) => {
    const { limit, offset } = parse(listQuerySchema, req.query, "query");
    const { items, total } = await listNotes(forRequest(db), limit, offset);
    res.json({ items, total, limit, offset });
  });

  router.post("/", async (req, res) => {
    const { title, body } = parse(createNoteSchema, req.body, "body");
    const note = await createNote(forRequest(db), title, body);
    res.status(201).location(`${req.baseUrl}/${note.id}`).json(note);
  });

  router.get("/:id", async (req, res) => {
    const { id } = parse(idParamSchema, req.params, "id");
    const note = await getNote(forRequest(db), id);
    if (!note) throw new HttpError(404, "NOT_FOUND", `no note with id ${id}`, "id");
    res.json(note);
  });

  router.delete("/:id", async (req, res) => {
    const { id } = parse(idParamSchema, req.params, "id");
    if (!(await deleteNote(forRequest(db), id))) throw new HttpError(404, "NOT_FOUND", `no note with id ${id}`, "id");
    res.status(204).end();
  });

  return router;
}
