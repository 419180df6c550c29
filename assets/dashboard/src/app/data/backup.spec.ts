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
    assert.deepEqual(v.rows[0], { kind: 'full', text: '1h 2m ago, 2.0 KiB (policy 2h 0m)', stale: false, lagging: false });
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

  describe('the binlog stream', () => {
    const stream = (over: Record<string, unknown> = {}) => ({
      state: 'up', file: 'mariadb-bin.000043', bytes: 51234, lagSeconds: 0, maxLagSeconds: 5, message: '', problem: null, ...over,
    });
    const row = (s: unknown) => backupView({ full: kind(), incremental: kind(), binlog: kind(), stream: s })!.rows[3];

    it('has no row while the stream is off', () => {
      assert.equal(backupView({ full: kind(), incremental: kind(), binlog: kind(), stream: null })!.rows.length, 3);
    });

    it('is green while it is up within its bound, with its file, size and lag', () => {
      assert.deepEqual(row(stream()), { kind: 'stream', text: 'up, mariadb-bin.000043 (50.0 KiB), 0s behind (bound 5s)', stale: false, lagging: false });
    });

    it('is amber while it is up but lags past its bound', () => {
      const r = row(stream({ lagSeconds: 12, problem: '12 s behind the database (bound 5 s)' }));
      assert.deepEqual([r.stale, r.lagging, r.text], [false, true, 'up, mariadb-bin.000043 (50.0 KiB), 12s behind (bound 5s)']);
    });

    it('is red while it is down, saying why, or while its report is stale', () => {
      const down = row(stream({ state: 'down', lagSeconds: null, message: 'the database does not answer', problem: 'down: the database does not answer' }));
      assert.deepEqual([down.stale, down.lagging, down.text], [true, false, 'down: the database does not answer']);
      const silent = row(stream({ problem: 'its last report is 901 s old: is pi-cluster-binlog-stream running on the target?' }));
      assert.deepEqual([silent.stale, silent.lagging, silent.text], [true, false, 'its last report is 901 s old: is pi-cluster-binlog-stream running on the target?']);
    });
  });
});
