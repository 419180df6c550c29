import assert from "node:assert/strict";
import { backoffDelay, classifyFailure, isSafeToRetryWrite, isTransientError, withRetry } from "../../src/db/retry";

const err = (props: Record<string, unknown>) => Object.assign(new Error("boom"), props);

describe("isTransientError", () => {
  for (const code of [
    "ECONNREFUSED",
    "ECONNRESET",
    "ETIMEDOUT",
    "PROTOCOL_CONNECTION_LOST",
    "ER_LOCK_DEADLOCK",
    "ER_LOCK_WAIT_TIMEOUT",
    "ER_CON_COUNT_ERROR",
  ]) {
    it(`treats ${code} as transient`, () => assert.equal(isTransientError(err({ code })), true));
  }

  for (const code of ["ER_PARSE_ERROR", "ER_DUP_ENTRY", "ER_NO_REFERENCED_ROW_2", "ER_ACCESS_DENIED_ERROR", "ER_NO_SUCH_TABLE"]) {
    it(`treats ${code} as permanent`, () => assert.equal(isTransientError(err({ code })), false));
  }

  it("recognises transient MariaDB errors by errno alone", () => {
    assert.equal(isTransientError(err({ errno: 1213 })), true);
    assert.equal(isTransientError(err({ errno: 1040 })), true);
    assert.equal(isTransientError(err({ errno: 1064 })), false);
  });

  it("treats non-errors and errors without a code as permanent", () => {
    assert.equal(isTransientError(undefined), false);
    assert.equal(isTransientError("ECONNREFUSED"), false);
    assert.equal(isTransientError(new Error("ECONNREFUSED")), false);
  });
});

describe("isSafeToRetryWrite", () => {
  it("retries a write whose connection failed before the statement was sent", () => {
    assert.equal(isSafeToRetryWrite(err({ code: "ECONNREFUSED", phase: "connect" })), true);
  });

  it("retries a write the server rolled back (deadlock, lock wait timeout)", () => {
    assert.equal(isSafeToRetryWrite(err({ code: "ER_LOCK_DEADLOCK" })), true);
    assert.equal(isSafeToRetryWrite(err({ code: "ER_LOCK_WAIT_TIMEOUT" })), true);
  });

  it("does not retry a write whose connection was lost mid-statement, as it may have been applied", () => {
    assert.equal(isSafeToRetryWrite(err({ code: "PROTOCOL_CONNECTION_LOST" })), false);
    assert.equal(isSafeToRetryWrite(err({ code: "ECONNRESET" })), false);
  });

  it("never retries a permanent error, even while connecting", () => {
    assert.equal(isSafeToRetryWrite(err({ code: "ER_ACCESS_DENIED_ERROR", phase: "connect" })), false);
  });

  it("retries a write whose idle connection failed its check, as the write was never sent", () => {
    assert.equal(isSafeToRetryWrite(err({ code: "ECONNRESET", phase: "validate" })), true);
    assert.equal(isSafeToRetryWrite(err({ code: "PROTOCOL_SEQUENCE_TIMEOUT", phase: "validate" })), true);
  });

  it("does not retry a write that timed out after it was sent, as it may yet be applied", () => {
    assert.equal(isTransientError(err({ code: "PROTOCOL_SEQUENCE_TIMEOUT" })), true);
    assert.equal(isSafeToRetryWrite(err({ code: "PROTOCOL_SEQUENCE_TIMEOUT" })), false);
  });
});

describe("classifyFailure", () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ["a refused connect", { code: "ECONNREFUSED", phase: "connect" }, "down"],
    ["a connect that timed out", { code: "ETIMEDOUT", phase: "connect" }, "down"],
    ["a server shutting down while connecting", { errno: 1053, phase: "connect" }, "down"],
    ["no connection accepted within the acquire timeout", { code: "POOL_ACQUIRE_TIMEOUT", phase: "connect", poolBusy: false }, "down"],
    ["a reset on an open connection", { code: "ECONNRESET" }, "connection lost"],
    ["a statement timeout", { code: "PROTOCOL_SEQUENCE_TIMEOUT" }, "connection lost"],
    ["a failed check of an idle connection", { code: "PROTOCOL_CONNECTION_LOST", phase: "validate" }, "connection lost"],
    ["a connection killed by the server", { code: "ER_CONNECTION_KILLED" }, "connection lost"],
    ["a full pool", { code: "POOL_ACQUIRE_TIMEOUT", phase: "connect", poolBusy: true }, "other"],
    ["too many connections", { code: "ER_CON_COUNT_ERROR", phase: "connect" }, "other"],
    ["a deadlock", { code: "ER_LOCK_DEADLOCK" }, "other"],
    ["a syntax error", { code: "ER_PARSE_ERROR" }, "other"],
    ["the fast failure while down", { code: "DB_DOWN", phase: "connect" }, "other"],
  ];
  for (const [what, props, expected] of cases) {
    it(`calls ${what} "${expected}"`, () => assert.equal(classifyFailure(err(props)), expected));
  }

  it("calls a non-error \"other\"", () => assert.equal(classifyFailure("ECONNREFUSED"), "other"));
});

describe("withRetry", () => {
  it("doubles the delay after each failure", () => {
    assert.deepEqual([1, 2, 3].map((a) => backoffDelay(a, 100)), [100, 200, 400]);
  });

  it("makes 3 attempts on a transient error, backing off 100 then 200 ms, then rethrows it", async () => {
    const sleeps: number[] = [];
    let calls = 0;
    const failure = err({ code: "ECONNREFUSED" });
    await assert.rejects(
      withRetry(
        async () => {
          calls++;
          throw failure;
        },
        { sleep: async (ms) => void sleeps.push(ms) },
      ),
      (e) => e === failure,
    );
    assert.equal(calls, 3);
    assert.deepEqual(sleeps, [100, 200]);
  });

  it("returns the first success after transient failures", async () => {
    let calls = 0;
    const result = await withRetry(
      async (attempt) => {
        calls++;
        if (attempt < 3) throw err({ code: "ER_LOCK_DEADLOCK" });
        return "done";
      },
      { sleep: async () => undefined },
    );
    assert.equal(result, "done");
    assert.equal(calls, 3);
  });

  it("does not retry a syntax or constraint error", async () => {
    for (const code of ["ER_PARSE_ERROR", "ER_DUP_ENTRY"]) {
      let calls = 0;
      const sleeps: number[] = [];
      await assert.rejects(
        withRetry(
          async () => {
            calls++;
            throw err({ code });
          },
          { sleep: async (ms) => void sleeps.push(ms) },
        ),
        { code },
      );
      assert.equal(calls, 1, code);
      assert.deepEqual(sleeps, [], code);
    }
  });

  it("honours the attempts, base delay and retryable options", async () => {
    const sleeps: number[] = [];
    let calls = 0;
    await assert.rejects(
      withRetry(
        async () => {
          calls++;
          throw err({ code: "CUSTOM" });
        },
        { attempts: 4, baseDelayMs: 10, retryable: () => true, sleep: async (ms) => void sleeps.push(ms) },
      ),
    );
    assert.equal(calls, 4);
    assert.deepEqual(sleeps, [10, 20, 40]);
  });

  it("makes no retry whose backoff would end at or after the deadline", async () => {
    let now = 1000;
    const sleeps: number[] = [];
    let calls = 0;
    const run = (deadline: number) =>
      withRetry(
        async () => {
          calls++;
          now += 50;
          throw err({ code: "ECONNREFUSED" });
        },
        { deadline, now: () => now, sleep: async (ms) => void (sleeps.push(ms), (now += ms)) },
      );
    // Attempt 1 ends at 1050, its 100 ms backoff at 1150; attempt 2 ends at 1200, and a 200 ms backoff would end at 1400.
    await assert.rejects(run(1400), { code: "ECONNREFUSED" });
    assert.deepEqual([calls, sleeps], [2, [100]]);
    now = 1000;
    calls = 0;
    sleeps.length = 0;
    await assert.rejects(run(1401), { code: "ECONNREFUSED" });
    assert.deepEqual([calls, sleeps], [3, [100, 200]]);
  });

  it("really waits between attempts with the default sleep", async () => {
    const started = Date.now();
    let calls = 0;
    await assert.rejects(
      withRetry(
        async () => {
          calls++;
          throw err({ code: "ECONNRESET" });
        },
        { baseDelayMs: 20 },
      ),
    );
    assert.equal(calls, 3);
    assert.ok(Date.now() - started >= 55, `waited only ${Date.now() - started} ms`);
  });
});
