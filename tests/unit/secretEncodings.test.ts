// The e2e's secret-leak check looks for encoded forms of the password too; these prove it
// finds the password inside longer encoded text at any byte offset, so it can fail.
import * as assert from "assert";
import { assertNoSecret, secretEncodings } from "../e2e/checks";

const PASSWORD = "Abc123Xyz789Abc123Xyz789Abc123Xy";

describe("the secret-leak check", () => {
    for (let offset = 0; offset < 6; offset++) {
        it(`finds the password base64-encoded after ${offset} other bytes, in both alphabets`, () => {
            const raw = Buffer.from(`${"k".repeat(offset)}DB_PASSWORD=${PASSWORD}\n`);
            assert.throws(() => assertNoSecret(PASSWORD, raw.toString("base64"), "standard base64"));
            assert.throws(() => assertNoSecret(PASSWORD, raw.toString("base64url"), "url-safe base64"));
        });
    }

    it("finds it plain and hex-encoded", () => {
        assert.throws(() => assertNoSecret(PASSWORD, `x ${PASSWORD} y`, "plain text"));
        assert.throws(() => assertNoSecret(PASSWORD, Buffer.from(`a${PASSWORD}`).toString("hex"), "hex"));
    });

    it("passes text that does not hold it", () => {
        assertNoSecret(PASSWORD, Buffer.from("DB_PASSWORD=something-else\n").toString("base64"), "another secret");
        // No short fragment that could match by chance: every form is at least as long as the password.
        assert.ok(secretEncodings(PASSWORD).every((e) => e.length >= PASSWORD.length));
    });
});
