import { strict as assert } from 'node:assert';
import { effectiveRefreshSeconds, parseClusterConfig, refreshOverride } from './cluster-config';

const CONFIG = {
  version: 1,
  loadBalancer: { name: 'pi-lb', address: '10.254.0.121' },
  webServers: [
    { name: 'pi-web1', address: '10.254.0.122' },
    { name: 'pi-web2', address: '10.254.0.123' },
  ],
  database: { name: 'pi-db', address: '10.254.0.124' },
  dashboard: { refreshSeconds: 7, requestTimeoutMs: 2500 },
};

describe('parseClusterConfig', () => {
  it('reads the documented /cluster.json', () => {
    const c = parseClusterConfig(JSON.stringify(CONFIG));
    assert.deepEqual(c.webServers.map((w) => w.name), ['pi-web1', 'pi-web2']);
    assert.deepEqual(c.dashboard, { refreshSeconds: 7, requestTimeoutMs: 2500 });
  });

  it('falls back to 10 s and 4000 ms without a dashboard section', () => {
    const { dashboard, ...rest } = CONFIG;
    void dashboard;
    assert.deepEqual(parseClusterConfig(JSON.stringify(rest)).dashboard, { refreshSeconds: 10, requestTimeoutMs: 4000 });
  });

  it('ignores a zero or negative refresh', () => {
    const c = parseClusterConfig(JSON.stringify({ ...CONFIG, dashboard: { refreshSeconds: 0, requestTimeoutMs: -1 } }));
    assert.deepEqual(c.dashboard, { refreshSeconds: 10, requestTimeoutMs: 4000 });
  });

  it('rejects text that is not JSON, naming the file', () => {
    assert.throws(() => parseClusterConfig('<html>502</html>'), /cluster.json: not valid JSON/);
  });

  it('rejects a web server without a name, naming the field', () => {
    const bad = { ...CONFIG, webServers: [{ address: '10.254.0.122' }] };
    assert.throws(() => parseClusterConfig(JSON.stringify(bad)), /webServers\[0\]/);
  });

  it('marks a web server in maintenance only when cluster.json says "maintenance": true', () => {
    const cordoned = { ...CONFIG, webServers: [CONFIG.webServers[0], { ...CONFIG.webServers[1], maintenance: true }] };
    assert.deepEqual(parseClusterConfig(JSON.stringify(cordoned)).webServers, [
      { name: 'pi-web1', address: '10.254.0.122', maintenance: false },
      { name: 'pi-web2', address: '10.254.0.123', maintenance: true },
    ]);
  });

  it('accepts an explicit "maintenance": false as in service', () => {
    const c = parseClusterConfig(JSON.stringify({ ...CONFIG, webServers: [{ ...CONFIG.webServers[0], maintenance: false }] }));
    assert.equal(c.webServers[0].maintenance, false);
  });

  it('rejects a maintenance that is not a boolean, naming the field and the value', () => {
    for (const value of ['true', 1, null, {}]) {
      const bad = { ...CONFIG, webServers: [CONFIG.webServers[0], { ...CONFIG.webServers[1], maintenance: value }] };
      assert.throws(
        () => parseClusterConfig(JSON.stringify(bad)),
        { message: `cluster.json: webServers[1].maintenance must be true or false, got ${JSON.stringify(value)}` },
        String(value),
      );
    }
  });

  it('reads whether monitoring runs from monitoring.enabled', () => {
    assert.equal(parseClusterConfig(JSON.stringify({ ...CONFIG, monitoring: { enabled: true } })).monitoring, true);
    assert.equal(parseClusterConfig(JSON.stringify({ ...CONFIG, monitoring: { enabled: false } })).monitoring, false);
  });

  it('takes a cluster.json without "monitoring" (a load balancer older than the field) as unknown, not as off', () => {
    assert.equal(parseClusterConfig(JSON.stringify(CONFIG)).monitoring, null);
  });

  it('rejects a monitoring that is not {"enabled": true|false}, naming the field and the value', () => {
    const cases: [unknown, string][] = [
      [{ enabled: 'false' }, 'cluster.json: monitoring.enabled must be true or false, got "false"'],
      [{ enabled: null }, 'cluster.json: monitoring.enabled must be true or false, got null'],
      [{}, 'cluster.json: monitoring.enabled must be true or false, got none'],
      [true, 'cluster.json: "monitoring" must be an object, got true'],
      [null, 'cluster.json: "monitoring" must be an object, got null'],
    ];
    for (const [monitoring, message] of cases) {
      assert.throws(() => parseClusterConfig(JSON.stringify({ ...CONFIG, monitoring })), { message }, JSON.stringify(monitoring));
    }
  });

  it('rejects duplicate web server names', () => {
    const bad = { ...CONFIG, webServers: [CONFIG.webServers[0], CONFIG.webServers[0]] };
    assert.throws(() => parseClusterConfig(JSON.stringify(bad)), /duplicate/);
  });
});

describe('refresh interval', () => {
  const config = parseClusterConfig(JSON.stringify(CONFIG));

  it('takes ?refresh=N over cluster.json', () => {
    assert.equal(effectiveRefreshSeconds(config, '?refresh=3'), 3);
  });

  it('uses cluster.json when there is no override', () => {
    assert.equal(effectiveRefreshSeconds(config, ''), 7);
  });

  it('uses 10 s before cluster.json has loaded', () => {
    assert.equal(effectiveRefreshSeconds(null, ''), 10);
  });

  it('ignores overrides that are not whole seconds in 1..3600', () => {
    for (const bad of ['?refresh=0', '?refresh=-5', '?refresh=1.5', '?refresh=abc', '?refresh=', '?refresh=99999']) {
      assert.equal(refreshOverride(bad), null, bad);
    }
  });
});
