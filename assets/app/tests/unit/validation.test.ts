import assert from "node:assert/strict";
import { HttpError } from "../../src/errors";
import { createNoteSchema, idParamSchema, listQuerySchema, parse } from "../../src/validation";

function rejection(fn: () => unknown): HttpError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof HttpError, `expected an HttpError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected a validation error");
}

describe("validation", () => {
  describe("list query", () => {
    it("defaults to limit 20, offset 0", () => {
      assert.deepEqual(parse(listQuerySchema, {}, "query"), { limit: 20, offset: 0 });
    });

    it("accepts limit 1 and 100 and any offset >= 0", () => {
      assert.deepEqual(parse(listQuerySchema, { limit: "1", offset: "0" }, "query"), { limit: 1, offset: 0 });
      assert.deepEqual(parse(listQuerySchema, { limit: "100", offset: "12345" }, "query"), { limit: 100, offset: 12345 });
    });

    for (const bad of ["0", "101", "-1", "1.5", "abc", "", " 5"]) {
      it(`rejects limit=${JSON.stringify(bad)} naming the field and the range`, () => {
        const e = rejection(() => parse(listQuerySchema, { limit: bad }, "query"));
        assert.equal(e.status, 400);
        assert.equal(e.field, "limit");
        assert.match(e.message, /^limit: expected an integer from 1 to 100, got /);
      });
    }

    it("rejects a repeated parameter", () => {
      const e = rejection(() => parse(listQuerySchema, { offset: ["1", "2"] }, "query"));
      assert.equal(e.field, "offset");
      assert.equal(e.message, "offset: expected an integer >= 0, got an array");
    });
  });

  describe("id", () => {
    it("accepts a positive integer", () => assert.deepEqual(parse(idParamSchema, { id: "42" }, "id"), { id: 42 }));

    for (const bad of ["0", "abc", "1e3", "99999999999999999"]) {
      it(`rejects id ${bad}`, () => {
        const e = rejection(() => parse(idParamSchema, { id: bad }, "id"));
        assert.equal(e.field, "id");
        assert.match(e.message, /^id: expected an integer >= 1/);
      });
    }
  });

  describe("new note", () => {
    it("trims the title and defaults the body to empty", () => {
      assert.deepEqual(parse(createNoteSchema, { title: "  Hello  " }, "body"), { title: "Hello", body: "" });
    });

    it("keeps the body as sent", () => {
      assert.deepEqual(parse(createNoteSchema, { title: "t", body: "  line\n" }, "body"), { title: "t", body: "  line\n" });
    });

    it("counts characters, not UTF-16 units: 200 emoji fit in a title", () => {
      const title = "\u{1F600}".repeat(200);
      assert.equal(parse(createNoteSchema, { title }, "body").title, title);
      const e = rejection(() => parse(createNoteSchema, { title: title + "x" }, "body"));
      assert.equal(e.message, "title: expected 1 to 200 characters, got 201");
    });

    it("rejects a missing title", () => {
      const e = rejection(() => parse(createNoteSchema, { body: "b" }, "body"));
      assert.equal(e.field, "title");
      assert.equal(e.message, "title: expected a string of 1 to 200 characters, got nothing");
    });

    it("rejects a blank title", () => {
      const e = rejection(() => parse(createNoteSchema, { title: "   " }, "body"));
      assert.equal(e.message, "title: expected 1 to 200 characters, got 0");
    });

    it("rejects a non-string title", () => {
      const e = rejection(() => parse(createNoteSchema, { title: 5 }, "body"));
      assert.equal(e.message, "title: expected a string of 1 to 200 characters, got number 5");
    });

    it("rejects a body over 10000 characters", () => {
      assert.equal(parse(createNoteSchema, { title: "t", body: "b".repeat(10000) }, "body").body.length, 10000);
      const e = rejection(() => parse(createNoteSchema, { title: "t", body: "b".repeat(10001) }, "body"));
      assert.equal(e.field, "body");
      assert.equal(e.message, "body: expected 0 to 10000 characters, got 10001");
    });

    it("rejects a null body", () => {
      const e = rejection(() => parse(createNoteSchema, { title: "t", body: null }, "body"));
      assert.equal(e.message, "body: expected a string of 0 to 10000 characters, got null");
    });

    it("rejects a request without a JSON object, hinting at the content type", () => {
      assert.match(rejection(() => parse(createNoteSchema, undefined, "body")).message, /^body: .*Content-Type: application\/json/);
      assert.equal(rejection(() => parse(createNoteSchema, [1], "body")).message, 'body: expected a JSON object with "title" and "body", got an array');
    });

    it("reports every bad field, naming the first", () => {
      const e = rejection(() => parse(createNoteSchema, { title: "", body: 3 }, "body"));
      assert.equal(e.field, "title");
      assert.equal(e.message, "title: expected 1 to 200 characters, got 0; body: expected a string of 0 to 10000 characters, got number 3");
    });
  });
});
