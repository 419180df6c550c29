import type { Queryable } from "./pool";

export interface Note {
  id: number;
  title: string;
  body: string;
  createdAt: Date;
}

interface NoteRow {
  id: number;
  title: string;
  body: string;
  created_at: Date;
}

const toNote = (row: NoteRow): Note => ({ id: Number(row.id), title: row.title, body: row.body, createdAt: row.created_at });

const COLUMNS = "id, title, body, created_at";

/** Notes, newest first, and how many there are in all. */
export async function listNotes(db: Queryable, limit: number, offset: number): Promise<{ items: Note[]; total: number }> {
  const rows = await db.query<NoteRow[]>(`SELECT ${COLUMNS} FROM notes ORDER BY id DESC LIMIT ? OFFSET ?`, [limit, offset]);
  const [count] = await db.query<Array<{ total: number }>>("SELECT COUNT(*) AS total FROM notes");
  return { items: rows.map(toNote), total: Number(count?.total ?? 0) };
}

export async function getNote(db: Queryable, id: number): Promise<Note | null> {
  const rows = await db.query<NoteRow[]>(`SELECT ${COLUMNS} FROM notes WHERE id = ?`, [id]);
  return rows.length > 0 ? toNote(rows[0]) : null;
}

/** Inserts a note and returns it as stored. */
export async function createNote(db: Queryable, title: string, body: string): Promise<Note> {
  const result = await db.query<{ insertId: number }>("INSERT INTO notes (title, body) VALUES (?, ?)", [title, body], {
    write: true,
  });
  const note = await getNote(db, Number(result.insertId));
  if (!note) throw new Error(`note ${result.insertId} vanished right after it was inserted`);
  return note;
}

/** True when a note was deleted, false when none had that id. */
export async function deleteNote(db: Queryable, id: number): Promise<boolean> {
  const result = await db.query<{ affectedRows: number }>("DELETE FROM notes WHERE id = ?", [id], { write: true });
  return result.affectedRows > 0;
}
