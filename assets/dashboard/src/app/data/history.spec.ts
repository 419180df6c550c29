import { strict as assert } from 'node:assert';
import { appendSample, HISTORY_LENGTH, pruneHistories } from './history';
import { Sample } from './types';

describe('response-time history', () => {
  it('keeps 30 samples per node', () => {
    assert.equal(HISTORY_LENGTH, 30);
  });

  it('appends without changing the input', () => {
    const before: Sample[] = [{ at: 1, ms: 5 }];
    const after = appendSample(before, { at: 2, ms: null });
    assert.deepEqual(after, [{ at: 1, ms: 5 }, { at: 2, ms: null }]);
    assert.equal(before.length, 1);
  });

  it('drops the oldest samples beyond the limit', () => {
    let h: Sample[] = [];
    for (let i = 0; i < 45; i++) h = appendSample(h, { at: i, ms: i });
    assert.equal(h.length, HISTORY_LENGTH);
    assert.equal(h[0].at, 15);
    assert.equal(h[h.length - 1].at, 44);
  });

  it('forgets nodes that left the cluster', () => {
    const h = new Map<string, Sample[]>([
      ['pi-web1', [{ at: 1, ms: 1 }]],
      ['pi-web3', [{ at: 1, ms: 1 }]],
    ]);
    assert.deepEqual([...pruneHistories(h, ['pi-web1', 'pi-web2']).keys()], ['pi-web1']);
  });
});
