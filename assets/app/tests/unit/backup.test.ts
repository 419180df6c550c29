import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { backupStatus, readBackupStatus } from "../../src/backup";

// What the target's receiver writes (assets/backup/pi-cluster-backup.sh, write_status).
const raw = {
  generatedAt: "2026-11-27T12:00:00Z",
  full: { name: "full-20261127T030000Z.xb.zst.age", at: "2026-11-27T03:00:00Z", ageSeconds: 32400, bytes: 1817589 },
  incremental: { name: "inc-20261127T110000Z-of-20261127T030000Z.xb.zst.age", at: "2026-11-27T11:00:00Z", ageSeconds: 3600, bytes: 1697269 },
  binlog: { name: "binlog-20261127T115900Z-0042-mariadb-bin.000043.zst.age", at: "2026-11-27T11:59:00Z", ageSeconds: 60, bytes: 2002 },
  lastSuccess: { full: "2026-11-27T03:00:02Z", incremental: "2026-11-27T11:00:01Z", binlog: "2026-11-27T11:59:00Z" },
  staleAfterSeconds: { full: 93600, incremental: 7200, binlog: 900 },
  retentionDays: 30,
  failures: [],
  verify: null,
};
const at = (iso: string) => Date.parse(iso);

describe("lastBackup from the target's status.json", () => {
  it("gives each kind's age at read time, and no problem within the policy", () => {
    const s = backupStatus(raw, at("2026-11-27T12:05:00Z"));
    assert.equal(s.full.ageSeconds, 9 * 3600 + 300);
    assert.equal(s.incremental.ageSeconds, 3900);
    assert.equal(s.binlog.bytes, 2002);
    assert.deepEqual([s.full.stale, s.incremental.stale, s.binlog.stale, s.problem], [false, false, false, false]);
  });

  it("turns a kind stale past its policy, counting the binlog from the shipper's last success", () => {
    const s = backupStatus(raw, at("2026-11-27T13:30:00Z"));
    assert.equal(s.incremental.stale, true, "2.5 h after the last incremental");
    assert.equal(s.binlog.stale, true, "91 min after the shipper's last success");
    assert.equal(s.full.stale, false);
    assert.equal(s.problem, true);
    // A quiet database: the newest binlog is old, but the shipper succeeded a minute ago.
    const quiet = backupStatus({ ...raw, lastSuccess: { ...raw.lastSuccess, binlog: "2026-11-27T13:29:00Z" } }, at("2026-11-27T13:30:00Z"));
    assert.equal(quiet.binlog.stale, false);
  });

  it("reports failed runs and files that fail their checksum as a problem", () => {
    const now = at("2026-11-27T12:05:00Z");
    const failed = backupStatus({ ...raw, failures: [{ kind: "full", at: "2026-11-27T03:00:09Z", message: "full-... failed" }] }, now);
    assert.equal(failed.problem, true);
    assert.deepEqual(failed.failures, [{ kind: "full", at: "2026-11-27T03:00:09Z", message: "full-... failed" }]);
    const bad = backupStatus({ ...raw, verify: { at: "2026-11-27T04:00:00Z", files: 9, bad: ["full-20261127T030000Z.xb.zst.age"] } }, now);
    assert.equal(bad.problem, true);
    assert.deepEqual(bad.verify?.bad, ["full-20261127T030000Z.xb.zst.age"]);
  });

  it("shows no backup yet as stale", () => {
    const s = backupStatus({ full: null, incremental: null, binlog: null }, at("2026-11-27T12:00:00Z"));
    assert.equal(s.full.name, null);
    assert.equal(s.full.stale, true);
    assert.equal(s.problem, true);
  });

  describe("the binlog stream", () => {
    // What assets/backup/pi-cluster-binlog-stream.sh writes to .stream.json, carried in status.json.
    const stream = {
      state: "up", series: "s1x0123abcd", file: "mariadb-bin.000043", bytes: 51234, at: "2026-11-27T12:04:59Z",
      lagSeconds: 0, maxLagSeconds: 5, checkedAt: "2026-11-27T12:04:59Z", message: "",
    };
    const now = at("2026-11-27T12:05:00Z");
    const withStream = (over: Record<string, unknown>) => backupStatus({ ...raw, stream: { ...stream, ...over } }, now);

    it("passes the stream's report through, with its age, and no problem while it is up and within its bound", () => {
      const s = withStream({});
      assert.deepEqual(s.stream, { ...stream, reportAgeSeconds: 1, problem: null });
      assert.equal(s.problem, false);
      assert.equal(withStream({ lagSeconds: 5 }).problem, false, "at the bound is within it");
    });

    it("is a problem when the stream is down, and says why", () => {
      const s = withStream({ state: "down", lagSeconds: null, message: "the database does not answer: connect timeout" });
      assert.equal(s.stream?.problem, "down: the database does not answer: connect timeout");
      assert.equal(s.problem, true);
    });

    it("is a problem when the stream lags past its bound", () => {
      const s = withStream({ lagSeconds: 6 });
      assert.equal(s.stream?.problem, "6 s behind the database (bound 5 s)");
      assert.equal(s.problem, true);
    });

    it("is a problem when its report is older than the binlog's policy: the service stopped writing it", () => {
      const s = backupStatus({ ...raw, stream }, at("2026-11-27T12:20:00Z"));
      assert.match(s.stream?.problem ?? "", /^its last report is 901 s old: is pi-cluster-binlog-stream running on the target\?$/);
      assert.equal(withStream({ checkedAt: undefined }).stream?.problem, "its last report is missing: is pi-cluster-binlog-stream running on the target?");
    });

    it("is null, and no problem, when the stream is off (status.json carries none)", () => {
      assert.equal(backupStatus(raw, now).stream, null);
      assert.equal(backupStatus({ ...raw, stream: null }, now).problem, false);
    });
  });

  it("is null without BACKUP_STATUS_FILE, and says why when the file cannot be read", () => {
    assert.equal(readBackupStatus(null), null);
    const missing = readBackupStatus("/nonexistent/status.json");
    assert.equal(missing?.problem, true);
    assert.match(missing?.error ?? "", /cannot read \/nonexistent\/status\.json: ENOENT/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pi-backup-status-"));
    const file = path.join(dir, "status.json");
    fs.writeFileSync(file, JSON.stringify(raw));
    assert.equal(readBackupStatus(file, at("2026-11-27T12:05:00Z"))?.full.name, raw.full.name);
    fs.rmSync(dir, { recursive: true });
  });
});
