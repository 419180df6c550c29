import { strict as assert } from 'node:assert';
import { parseTlsStatus, TLS_WARN_DAYS } from './tls-status';

const NOW = Date.parse('2026-11-27T09:00:00Z');

describe('parseTlsStatus', () => {
  it('reads the expiry and the whole days left, and does not warn a year ahead', () => {
    assert.deepEqual(parseTlsStatus('{"certificateExpiry":"2027-11-27T09:00:00Z"}\n', NOW), {
      expiry: '2027-11-27T09:00:00Z',
      daysLeft: 365,
      warn: false,
    });
  });

  it(`warns below ${TLS_WARN_DAYS} days, and at or past expiry`, () => {
    assert.equal(parseTlsStatus('{"certificateExpiry":"2026-12-11T09:00:00Z"}', NOW).warn, false);
    assert.equal(parseTlsStatus('{"certificateExpiry":"2026-12-11T08:59:59Z"}', NOW).warn, true);
    const expired = parseTlsStatus('{"certificateExpiry":"2026-11-20T09:00:00Z"}', NOW);
    assert.equal(expired.daysLeft, -7);
    assert.equal(expired.warn, true);
  });

  it('names the field when the body is not what the load balancer writes', () => {
    assert.throws(() => parseTlsStatus('<html>', NOW), /tls\.json: expected JSON/);
    assert.throws(() => parseTlsStatus('{"certificateExpiry":"soon"}', NOW), /certificateExpiry: expected an ISO 8601 date, got "soon"/);
    assert.throws(() => parseTlsStatus('{}', NOW), /certificateExpiry: expected an ISO 8601 date, got undefined/);
  });
});
