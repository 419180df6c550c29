import { strict as assert } from 'node:assert';
import { sparklineGeometry } from './sparkline';

describe('sparklineGeometry', () => {
  it('puts the newest sample on the right edge and scales to the slowest', () => {
    const g = sparklineGeometry([{ at: 1, ms: 5 }, { at: 2, ms: 10 }], 100, 20, 3, 0);
    assert.deepEqual(g.paths, ['M50 10 L100 0']);
    assert.equal(g.maxMs, 10);
  });

  it('breaks the line at a failed sample and marks it', () => {
    const g = sparklineGeometry(
      [{ at: 1, ms: 4 }, { at: 2, ms: 4 }, { at: 3, ms: null }, { at: 4, ms: 2 }, { at: 5, ms: 4 }],
      40, 10, 5, 0,
    );
    assert.equal(g.paths.length, 2);
    assert.deepEqual(g.failures, [20]);
  });

  it('draws a lone sample as a dot', () => {
    const g = sparklineGeometry([{ at: 1, ms: null }, { at: 2, ms: 3 }], 10, 10, 2, 0);
    assert.deepEqual(g.dots, [{ x: 10, y: 0 }]);
    assert.deepEqual(g.paths, []);
  });

  it('draws nothing but failure marks when every sample failed', () => {
    const g = sparklineGeometry([{ at: 1, ms: null }], 10, 10, 2, 0);
    assert.deepEqual(g, { paths: [], failures: [10], dots: [], maxMs: 1 });
  });
});
