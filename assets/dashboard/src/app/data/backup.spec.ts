import { strict as assert } from 'node:assert';
import { backupView } from './backup';

const kind = (over: Record<string, unknown> = {}) => ({ name: 'x.age', ageSeconds: 3725, bytes: 2048, staleAfterSeconds: 7200, stale: false, ...over });

describe('backup freshness on the database card', () => {
  it('shows "not configured" (null) while the app has no backup status', () => {
    assert.equal(backupView(null), null);
    assert.equal(backupView(undefined), null);
  });

  it('gives each kind its age, size and policy, and no problem within it', () => {
    const v = backupView({ full: kind(), incremental: kind(), binlog: kind({ ageSeconds: 30, staleAfterSeconds: 900 }), failures: [], verify: null, error: null })!;
    assert.deepEqual(v.rows[0], { kind: 'full', text: '1h 2m ago, 2.0 KiB (policy 2h 0m)', stale: false });
    assert.equal(v.rows[2].text, '30s ago, 2.0 KiB (policy 15m 0s)');
    assert.deepEqual(v.problems, []);
  });

  it('turns a kind red when it is older than its policy, or missing', () => {
    const v = backupView({ full: kind({ stale: true }), incremental: { name: null, staleAfterSeconds: 7200, stale: true }, binlog: kind() })!;
    assert.deepEqual(v.rows.map((r) => r.stale), [true, true, false]);
    assert.equal(v.rows[1].text, 'none yet (policy 2h 0m)');
  });

  it('lists failed runs, bad checksums and an unreadable status file', () => {
    const v = backupView({
      full: kind(), incremental: kind(), binlog: kind(),
      failures: [{ kind: 'full', at: '2026-11-27T03:00:09Z', message: 'full-x failed' }],
      verify: { at: '2026-11-27T04:00:00Z', files: 9, bad: ['full-y.age'] },
      error: 'cannot read /x: ENOENT',
    })!;
    assert.deepEqual(v.problems, ['cannot read /x: ENOENT', 'full failed at 2026-11-27T03:00:09Z: full-x failed', 'checksum mismatch: full-y.age']);
  });
});
