import { strict as assert } from 'node:assert';
import { Clock, fetchWithTimeout, FetchFn } from './fetch-with-timeout';

const clock = (): Clock => {
  let t = 0;
  return { monotonic: () => (t += 5), wall: () => 1_700_000_000_000 };
};

const respond = (status: number, body: string, statusText = ''): FetchFn =>
  async () => new Response(body, { status, statusText });

/** Like a node that accepted the connection and never answered: settles only when aborted. */
const hang: FetchFn = (_url, init) =>
  new Promise((_resolve, reject) => {
    init.signal?.addEventListener('abort', () => reject(new DOMException('The operation was aborted.', 'AbortError')));
  });

describe('fetchWithTimeout', () => {
  it('returns the body and the measured time of a 200', async () => {
    const r = await fetchWithTimeout('x', 1000, respond(200, '{"a":1}'), clock());
    assert.deepEqual(r, { ok: true, status: 200, body: '{"a":1}', elapsedMs: 5, at: 1_700_000_000_000 });
  });

  it('turns nginx 502 for a dead upstream into a result, not an exception', async () => {
    const r = await fetchWithTimeout('x', 1000, respond(502, '<html>502</html>', 'Bad Gateway'), clock());
    assert.equal(r.ok, false);
    assert.equal(r.status, 502);
    assert.equal(!r.ok && r.reason, 'HTTP 502 Bad Gateway');
  });

  it('keeps the body of an error answer, which can say why (an API error code)', async () => {
    const body = '{"error":{"code":"MONITORING_OFF","message":"monitoring is off on this cluster"}}';
    const r = await fetchWithTimeout('x', 1000, respond(404, body, 'Not Found'), clock());
    assert.equal(!r.ok && r.body, body);
  });

  it('gives up after its own timeout and says so', async () => {
    const started = Date.now();
    const r = await fetchWithTimeout('x', 50, hang, clock());
    assert.ok(Date.now() - started < 1000, 'did not wait past the timeout');
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.reason, 'no answer within 50 ms');
    assert.equal(r.status, null);
  });

  it('reports a network failure without throwing', async () => {
    const fail: FetchFn = async () => {
      throw new TypeError('Failed to fetch');
    };
    const r = await fetchWithTimeout('x', 1000, fail, clock());
    assert.equal(!r.ok && r.reason, 'network error: Failed to fetch');
  });

  it('asks the browser not to answer from its cache', async () => {
    let seen: RequestInit | undefined;
    await fetchWithTimeout('x', 1000, async (_u, init) => ((seen = init), new Response('')), clock());
    assert.equal(seen?.cache, 'no-store');
  });

  it('runs slow and fast requests independently', async () => {
    const slow = fetchWithTimeout('slow', 100, hang, clock());
    const fast = await fetchWithTimeout('fast', 100, respond(200, 'ok'), clock());
    assert.equal(fast.ok, true, 'fast answered while slow was still out');
    assert.equal((await slow).ok, false);
  });
});
