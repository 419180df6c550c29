import assert from "node:assert/strict";
import { CircuitBreaker, DatabaseDownError, RECHECK_INTERVAL_MS } from "../../src/db/breaker";

/** A recheck whose outcomes the test decides, one per call. */
function rechecks() {
  const pending: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  return {
    pending,
    run: () => new Promise<void>((resolve, reject) => void pending.push({ resolve, reject })),
  };
}

/** A stand-in for setInterval that runs only when the test says so. */
function fakeTimer() {
  const timer = { intervalMs: 0, running: false, tick: () => undefined as void };
  const every = (ms: number, fn: () => void) => {
    Object.assign(timer, { intervalMs: ms, running: true, tick: fn });
    return () => void (timer.running = false);
  };
  return { timer, every };
}

const refused = Object.assign(new Error("connect ECONNREFUSED 10.0.0.4:3306"), { code: "ECONNREFUSED" });
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("CircuitBreaker", () => {
  it("is up at first and lets requests through", () => {
    const breaker = new CircuitBreaker(async () => undefined);
    assert.equal(breaker.isDown, false);
    breaker.assertUp();
  });

  it("fails requests at once while down, saying for how long and why", () => {
    let now = 10_000;
    const { every } = fakeTimer();
    const breaker = new CircuitBreaker(rechecks().run, undefined, { now: () => now, every });
    breaker.markDown(refused);
    now += 700;
    assert.throws(
      () => breaker.assertUp(),
      (err: unknown) =>
        err instanceof DatabaseDownError &&
        err.code === "DB_DOWN" &&
        err.phase === "connect" &&
        err.message === `the database has been down for 700 ms (connect ECONNREFUSED 10.0.0.4:3306); it is checked again every ${RECHECK_INTERVAL_MS} ms`,
    );
  });

  it("drops idle connections once per outage, not once per failure", () => {
    let drops = 0;
    const { every } = fakeTimer();
    const breaker = new CircuitBreaker(rechecks().run, () => drops++, { every });
    breaker.markDown(refused);
    breaker.markDown(refused);
    assert.equal(drops, 1);
  });

  it("rechecks every interval while down, at most two at once, and is up after the first success", async () => {
    const { timer, every } = fakeTimer();
    const checks = rechecks();
    const breaker = new CircuitBreaker(checks.run, undefined, { every });
    breaker.markDown(refused);
    assert.deepEqual([timer.running, timer.intervalMs, checks.pending.length], [true, 250, 0]);
    timer.tick();
    timer.tick();
    timer.tick();
    assert.equal(checks.pending.length, 2, "a third recheck waits for one of two hung ones");
    checks.pending[0].reject(Object.assign(new Error("connect ETIMEDOUT"), { code: "ETIMEDOUT" }));
    await settle();
    assert.equal(breaker.isDown, true);
    assert.throws(() => breaker.assertUp(), /connect ETIMEDOUT/);
    timer.tick();
    assert.equal(checks.pending.length, 3);
    checks.pending[2].resolve();
    await settle();
    assert.equal(breaker.isDown, false);
    assert.equal(timer.running, false, "no rechecks while up");
    breaker.assertUp();
  });

  it("does not let a recheck from an earlier outage end a later one", async () => {
    const { timer, every } = fakeTimer();
    const checks = rechecks();
    const breaker = new CircuitBreaker(checks.run, undefined, { every });
    breaker.markDown(refused);
    timer.tick();
    timer.tick();
    checks.pending[1].resolve();
    await settle();
    assert.equal(breaker.isDown, false);
    breaker.markDown(refused);
    checks.pending[0].resolve();
    await settle();
    assert.equal(breaker.isDown, true);
  });

  it("after a lost connection rechecks once, and stays up when the server answers", async () => {
    const checks = rechecks();
    const breaker = new CircuitBreaker(checks.run, undefined, { every: fakeTimer().every });
    breaker.suspect();
    breaker.suspect();
    assert.equal(checks.pending.length, 1, "one recheck for a burst of failures");
    assert.equal(breaker.isDown, false, "requests still go through meanwhile");
    checks.pending[0].resolve();
    await settle();
    assert.equal(breaker.isDown, false);
    breaker.suspect();
    assert.equal(checks.pending.length, 2, "a later failure rechecks again");
  });

  it("after a lost connection is down when the recheck fails too", async () => {
    const checks = rechecks();
    const { timer, every } = fakeTimer();
    const breaker = new CircuitBreaker(checks.run, undefined, { every });
    breaker.suspect();
    checks.pending[0].reject(refused);
    await settle();
    assert.equal(breaker.isDown, true);
    assert.equal(timer.running, true);
  });

  it("stops rechecking when stopped", () => {
    const { timer, every } = fakeTimer();
    const checks = rechecks();
    const breaker = new CircuitBreaker(checks.run, undefined, { every });
    breaker.markDown(refused);
    breaker.stop();
    assert.equal(timer.running, false);
    breaker.suspect();
    assert.equal(checks.pending.length, 0);
  });
});
