import { strict as assert } from 'node:assert';
import {
  deriveDb,
  deriveLb,
  deriveOverall,
  deriveWebNode,
  mergeWebNodes,
  parseAppStatus,
  pendingLb,
  pendingWebNode,
  webCardState,
} from './node-state';
import { AppStatus, FetchOutcome, WebNodeView } from './types';

const AT = 1_700_000_000_000;

/** The status JSON of docs/contracts.md. */
function status(name: string, db: Partial<AppStatus['db']> = {}, generatedAt = '2026-11-26T23:59:00.000Z'): AppStatus {
  return {
    node: {
      name,
      hostname: name,
      version: '1.0.0',
      uptimeSeconds: 12.3,
      pid: 123,
      memory: { rssBytes: 1, heapUsedBytes: 1, systemTotalBytes: 1, systemFreeBytes: 1 },
      load: [0.1, 0.2, 0.3],
    },
    requests: { served: 42 },
    db: {
      reachable: true,
      host: '10.254.0.124',
      version: '11.8.3-MariaDB',
      latencyMs: 0.8,
      uptimeSeconds: 1000,
      connections: 3,
      queries: 1234,
      queriesPerSecond: 1.2,
      pool: { limit: 10, inUse: 0, free: 1 },
      replication: null,
      lastBackup: null,
      error: null,
      ...db,
    },
    cache: { hit: false, ageMs: 0 },
    generatedAt,
  };
}

const ok = (body: string, elapsedMs = 12): FetchOutcome => ({ ok: true, status: 200, body, elapsedMs, at: AT });
const fail = (reason: string, status: number | null = 502): FetchOutcome => ({ ok: false, status, reason, elapsedMs: 3, at: AT });

const web = (name: string) => pendingWebNode({ name, address: '10.254.0.1', maintenance: false });
/** The same node as cluster.json marks it once the stack cordons it. */
const cordoned = (node: WebNodeView): WebNodeView => ({ ...node, maintenance: true });
const up = (name: string, db: Partial<AppStatus['db']> = {}, generatedAt?: string) =>
  deriveWebNode(web(name), ok(JSON.stringify(status(name, db, generatedAt))));
const down = (name: string) => deriveWebNode(web(name), fail('HTTP 502 Bad Gateway'));

const STUB = 'Active connections: 1 \nserver accepts handled requests\n 5 5 9 \nReading: 0 Writing: 1 Waiting: 0 \n';
const lbUp = () => deriveLb(pendingLb({ name: 'pi-lb', address: '10.254.0.121' }), ok(STUB));
const DB_HOST = { name: 'pi-db', address: '10.254.0.124' };

describe('web server state', () => {
  it('is up with the status and response time when it answers the status JSON', () => {
    const n = up('pi-web1');
    assert.equal(n.state, 'up');
    assert.equal(n.responseMs, 12);
    assert.equal(n.status?.node.hostname, 'pi-web1');
    assert.equal(n.lastUpAt, AT);
  });

  it('is down with the HTTP status when nginx answers 502', () => {
    const n = down('pi-web2');
    assert.equal(n.state, 'down');
    assert.equal(n.reason, 'HTTP 502 Bad Gateway');
    assert.equal(n.status, null);
  });

  it('is down when the request timed out', () => {
    const n = deriveWebNode(web('pi-web2'), fail('no answer within 4000 ms', null));
    assert.equal(n.state, 'down');
    assert.match(n.reason ?? '', /4000 ms/);
  });

  it('is down when a 200 carries something other than the status JSON', () => {
    const n = deriveWebNode(web('pi-web1'), ok('<html>index</html>'));
    assert.equal(n.state, 'down');
    assert.equal(n.responseMs, null);
  });

  it('remembers when it was last up after going down', () => {
    const n = deriveWebNode(up('pi-web1'), { ...fail('HTTP 504 Gateway Time-out', 504), at: AT + 10_000 });
    assert.equal(n.lastUpAt, AT);
    assert.equal(n.checkedAt, AT + 10_000);
  });
});

describe('web server in maintenance', () => {
  it('shows maintenance on its card whatever its status URL reports', () => {
    assert.equal(webCardState(cordoned(up('pi-web2'))), 'maintenance');
    assert.equal(webCardState(cordoned(down('pi-web2'))), 'maintenance');
    assert.equal(webCardState(cordoned(web('pi-web2'))), 'maintenance');
    assert.equal(webCardState(down('pi-web2')), 'down');
  });

  it('keeps what its status URL reports, and stays in maintenance across polls', () => {
    const n = deriveWebNode(cordoned(web('pi-web2')), ok(JSON.stringify(status('pi-web2'))));
    assert.equal(n.maintenance, true);
    assert.equal(n.state, 'up');
    assert.equal(n.status?.node.hostname, 'pi-web2');
    const gone = deriveWebNode(n, fail('HTTP 502 Bad Gateway'));
    assert.equal(gone.maintenance, true);
    assert.equal(gone.state, 'down');
    assert.equal(gone.reason, 'HTTP 502 Bad Gateway');
  });
});

describe('mergeWebNodes', () => {
  const ref = (name: string, maintenance = false) => ({ name, address: `10.254.0.${name.slice(-1)}`, maintenance });

  it('takes maintenance and address from cluster.json and keeps the last probe', () => {
    const [w1, w2] = mergeWebNodes([up('pi-web1'), up('pi-web2')], [ref('pi-web1'), ref('pi-web2', true)]);
    assert.deepEqual([w1.maintenance, w1.address, w1.state], [false, '10.254.0.1', 'up']);
    assert.deepEqual([w2.maintenance, w2.address, w2.state], [true, '10.254.0.2', 'up']);
    assert.equal(w2.status?.node.hostname, 'pi-web2');
  });

  it('takes a server out of maintenance when its cordon is lifted', () => {
    const [w2] = mergeWebNodes([cordoned(up('pi-web2'))], [ref('pi-web2')]);
    assert.equal(w2.maintenance, false);
    assert.equal(webCardState(w2), 'up');
  });

  it('adds a new server as pending, in maintenance if cluster.json says so, and drops a removed one', () => {
    const nodes = mergeWebNodes([up('pi-web1')], [ref('pi-web3', true)]);
    assert.deepEqual(
      nodes.map((n) => [n.name, n.state, n.maintenance]),
      [['pi-web3', 'pending', true]],
    );
  });
});

describe('parseAppStatus', () => {
  it('rejects JSON without a boolean db.reachable', () => {
    assert.equal(parseAppStatus(JSON.stringify({ node: {}, requests: {}, db: {} })), null);
  });
  it('rejects an error body', () => {
    assert.equal(parseAppStatus('{"error":{"code":"x","message":"y"}}'), null);
  });
});

describe('load balancer state', () => {
  it('is up with stub_status figures', () => {
    const lb = lbUp();
    assert.equal(lb.state, 'up');
    assert.equal(lb.stub?.requests, 9);
  });

  it('computes requests per second from the previous sample', () => {
    const next = deriveLb(lbUp(), { ...ok(STUB.replace(' 5 5 9 ', ' 5 5 29 ')), at: AT + 10_000 });
    assert.equal(next.requestsPerSecond, 2);
  });

  it('is down when stub_status is refused (403 from outside the management network)', () => {
    const lb = deriveLb(pendingLb({ name: 'pi-lb', address: '' }), fail('HTTP 403 Forbidden', 403));
    assert.equal(lb.state, 'down');
    assert.equal(lb.reason, 'HTTP 403 Forbidden');
  });
});

describe('database state', () => {
  it('is pending until a web server answers', () => {
    assert.equal(deriveDb(DB_HOST, [web('pi-web1')]).state, 'pending');
  });

  it('is up with the freshest report of a web server that reaches it', () => {
    const db = deriveDb(DB_HOST, [
      up('pi-web1', { connections: 3 }, '2026-11-26T23:59:00.000Z'),
      up('pi-web2', { connections: 4 }, '2026-11-26T23:59:05.000Z'),
    ]);
    assert.equal(db.state, 'up');
    assert.equal(db.reportedBy, 'pi-web2');
    assert.equal(db.db?.connections, 4);
    assert.equal(db.reason, null);
  });

  it('ignores web servers that are down', () => {
    assert.equal(deriveDb(DB_HOST, [down('pi-web1'), up('pi-web2')]).reportedBy, 'pi-web2');
  });

  it('is down with the error when no web server reaches it', () => {
    const db = deriveDb(DB_HOST, [up('pi-web1', { reachable: false, error: 'ECONNREFUSED' })]);
    assert.equal(db.state, 'down');
    assert.equal(db.reason, 'unreachable: ECONNREFUSED');
  });

  it('names the web servers that cannot reach it', () => {
    const db = deriveDb(DB_HOST, [up('pi-web1'), up('pi-web2', { reachable: false })]);
    assert.equal(db.state, 'up');
    assert.equal(db.reason, 'not reachable from pi-web2');
  });

  it('is unknown when every web server is down', () => {
    assert.equal(deriveDb(DB_HOST, [down('pi-web1'), down('pi-web2')]).state, 'unknown');
  });

  it('ignores a server in maintenance that cannot reach it', () => {
    const db = deriveDb(DB_HOST, [up('pi-web1'), cordoned(up('pi-web2', { reachable: false, error: 'ETIMEDOUT' }))]);
    assert.equal(db.state, 'up');
    assert.equal(db.reason, null);
  });

  it('is unknown, not reported by a server in maintenance, when no server in service answers', () => {
    const db = deriveDb(DB_HOST, [down('pi-web1'), cordoned(up('pi-web2'))]);
    assert.equal(db.state, 'unknown');
    assert.equal(db.reportedBy, null);
  });
});

describe('overall state', () => {
  const overall = (webNodes: WebNodeView[], extra: { configError?: string; lb?: ReturnType<typeof lbUp> } = {}) =>
    deriveOverall({
      configError: extra.configError ?? null,
      lb: extra.lb ?? lbUp(),
      webNodes,
      db: deriveDb(DB_HOST, webNodes),
    });

  it('is healthy when every node is up', () => {
    assert.deepEqual(overall([up('pi-web1'), up('pi-web2')]), { state: 'healthy', reasons: ['all nodes up'], maintenance: [] });
  });

  it('is degraded, naming the node and why, when one web server is down', () => {
    assert.deepEqual(overall([up('pi-web1'), down('pi-web2')]), {
      state: 'degraded',
      reasons: ['pi-web2 is down (HTTP 502 Bad Gateway)'],
      maintenance: [],
    });
  });

  it('is down when every web server is down', () => {
    const o = overall([down('pi-web1'), down('pi-web2')]);
    assert.equal(o.state, 'down');
    assert.equal(o.reasons[0], 'every web server is down');
  });

  it('is down when the database is unreachable', () => {
    const o = overall([up('pi-web1', { reachable: false, error: 'timeout' })]);
    assert.equal(o.state, 'down');
    assert.match(o.reasons[0], /database pi-db is unreachable: timeout/);
  });

  it('is pending while any node has not answered yet', () => {
    assert.equal(overall([up('pi-web1'), web('pi-web2')]).state, 'pending');
  });

  it('is down when cluster.json never loaded', () => {
    const o = deriveOverall({ configError: 'HTTP 502 Bad Gateway', lb: null, webNodes: [], db: null });
    assert.deepEqual(o, { state: 'down', reasons: ['cannot load /cluster.json: HTTP 502 Bad Gateway'], maintenance: [] });
  });

  it('is down when the LB stops answering after it had loaded', () => {
    const lb = deriveLb(lbUp(), fail('no answer within 4000 ms', null));
    const o = overall([up('pi-web1')], { lb, configError: 'no answer within 4000 ms' });
    assert.equal(o.state, 'down');
  });

  it('stays healthy with a server in maintenance that is down, and lists it apart from the reasons', () => {
    assert.deepEqual(overall([up('pi-web1'), cordoned(down('pi-web2'))]), {
      state: 'healthy',
      reasons: ['all nodes in service up'],
      maintenance: ['pi-web2'],
    });
  });

  it('does not wait for the first answer of a server in maintenance', () => {
    assert.equal(overall([up('pi-web1'), cordoned(web('pi-web2'))]).state, 'healthy');
  });

  it('is degraded only by servers in service', () => {
    assert.deepEqual(overall([up('pi-web1'), down('pi-web2'), cordoned(down('pi-web3'))]), {
      state: 'degraded',
      reasons: ['pi-web2 is down (HTTP 502 Bad Gateway)'],
      maintenance: ['pi-web3'],
    });
  });

  it('is down when every server in service is down, though one in maintenance answers', () => {
    const o = overall([down('pi-web1'), cordoned(up('pi-web2'))]);
    assert.equal(o.state, 'down');
    assert.equal(o.reasons[0], 'every web server in service is down');
    assert.deepEqual(o.maintenance, ['pi-web2']);
  });

  it('is down when every web server is in maintenance', () => {
    const o = overall([cordoned(up('pi-web1')), cordoned(up('pi-web2'))]);
    assert.equal(o.state, 'down');
    assert.equal(o.reasons[0], 'no web server in service: every one is in maintenance');
  });

  it('is degraded when only stub_status is unavailable', () => {
    const lb = deriveLb(lbUp(), fail('HTTP 403 Forbidden', 403));
    assert.equal(overall([up('pi-web1')], { lb }).state, 'degraded');
  });
});
