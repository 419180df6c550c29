import { strict as assert } from 'node:assert';
import { parseStubStatus, requestRate } from './stub-status';

// Verbatim shape of nginx's stub_status output, trailing spaces included.
const SAMPLE = 'Active connections: 291 \nserver accepts handled requests\n 16630948 16630948 31070465 \nReading: 6 Writing: 179 Waiting: 106 \n';

describe('parseStubStatus', () => {
  it('reads every figure of nginx stub_status text', () => {
    assert.deepEqual(parseStubStatus(SAMPLE), {
      active: 291,
      accepts: 16630948,
      handled: 16630948,
      requests: 31070465,
      reading: 6,
      writing: 179,
      waiting: 106,
    });
  });

  it('accepts CRLF line ends', () => {
    assert.equal(parseStubStatus(SAMPLE.replace(/\n/g, '\r\n'))?.requests, 31070465);
  });

  it('returns null for an nginx HTML error page', () => {
    assert.equal(parseStubStatus('<html><head><title>502 Bad Gateway</title></head></html>'), null);
  });

  it('returns null when a line is missing', () => {
    assert.equal(parseStubStatus('Active connections: 1 \nReading: 0 Writing: 1 Waiting: 0 \n'), null);
  });
});

describe('requestRate', () => {
  const stub = (requests: number) => ({ active: 1, accepts: 1, handled: 1, requests, reading: 0, writing: 1, waiting: 0 });

  it('is null for the first sample', () => {
    assert.equal(requestRate(null, { stub: stub(10), at: 1000 }), null);
  });

  it('divides the request delta by the elapsed seconds', () => {
    assert.equal(requestRate({ stub: stub(100), at: 0 }, { stub: stub(150), at: 10_000 }), 5);
  });

  it('is null when the counters went back (nginx restarted)', () => {
    assert.equal(requestRate({ stub: stub(100), at: 0 }, { stub: stub(3), at: 10_000 }), null);
  });
});
