import { strict as assert } from 'node:assert';
import { deriveOverall, deriveLb, deriveWebNode, pendingLb, pendingWebNode } from './node-state';
import {
  deriveReplicas,
  formatReplication,
  readReplication,
  replicaCardState,
  replicaHealth,
} from './replica-state';
import { FetchOutcome, ReplicaStatus, WebNodeView } from './types';

const AT = 1_700_000_000_000;
const MAX_LAG = 5;

/** A replica replicating within the bound, in the read set: the app's `db.replication.replicas[i]`. */
function replica(over: Partial<ReplicaStatus> = {}): ReplicaStatus {
  return {
    name: 'pi-db-r1',
    host: '10.254.0.125',
    reachable: true,
    ioRunning: true,
    sqlRunning: true,
    lagSeconds: 0,
    gtid: '0-1-1042',
    inReadSet: true,
    reads: 10,
    error: null,
    ...over,
  };
}

/** A web server in service that answered, seeing these replicas (null: the cluster has none). */
function web(
  name: string,
  replicas: ReplicaStatus[] | null,
  opts: { generatedAt?: string; cacheAgeMs?: number; maintenance?: boolean } = {},
): WebNodeView {
  const body = {
    node: { name, hostname: name, version: '1.0.0', uptimeSeconds: 1, pid: 1, memory: {}, load: [] },
    requests: { served: 1 },
    db: {
      reachable: true,
      replication: replicas === null ? null : { maxLagSeconds: MAX_LAG, replicas },
      lastBackup: null,
    },
    cache: { hit: true, ageMs: opts.cacheAgeMs ?? 0 },
    generatedAt: opts.generatedAt ?? '2026-11-27T12:00:00.000Z',
  };
  const outcome: FetchOutcome = { ok: true, status: 200, body: JSON.stringify(body), elapsedMs: 5, at: AT };
  return deriveWebNode(pendingWebNode({ name, address: '10.254.0.1', maintenance: opts.maintenance ?? false }), outcome);
}

const downWeb = (name: string) =>
  deriveWebNode(pendingWebNode({ name, address: '10.254.0.2', maintenance: false }), {
    ok: false,
    status: 502,
    reason: 'HTTP 502 Bad Gateway',
    elapsedMs: 1,
    at: AT,
  });

describe('replica state from one view', () => {
  it('is ok (green) when reachable, both threads running and the lag within the bound', () => {
    assert.deepEqual(replicaHealth(replica(), MAX_LAG), { state: 'ok', reason: null });
    assert.equal(replicaCardState('ok'), 'up');
  });

  it('is ok at a lag equal to the bound', () => {
    assert.equal(replicaHealth(replica({ lagSeconds: MAX_LAG }), MAX_LAG).state, 'ok');
  });

  it('is unreachable (red) when the web server cannot reach it', () => {
    const h = replicaHealth(replica({ reachable: false, ioRunning: false, sqlRunning: false, lagSeconds: null }), MAX_LAG);
    assert.deepEqual(h, { state: 'unreachable', reason: 'unreachable' });
    assert.equal(replicaCardState(h.state), 'down');
  });

  it('is stopped (red) when its IO thread is not running, even with a lag', () => {
    const h = replicaHealth(replica({ ioRunning: false, lagSeconds: 0 }), MAX_LAG);
    assert.deepEqual(h, { state: 'stopped', reason: 'IO thread not running' });
    assert.equal(replicaCardState(h.state), 'down');
  });

  it('is stopped (red) when its SQL thread is not running', () => {
    assert.deepEqual(replicaHealth(replica({ sqlRunning: false, lagSeconds: null }), MAX_LAG), {
      state: 'stopped',
      reason: 'SQL thread not running',
    });
    assert.equal(replicaHealth(replica({ ioRunning: false, sqlRunning: false }), MAX_LAG).reason, 'IO and SQL threads not running');
  });

  it('is lagging (red) when its lag is null though both threads run', () => {
    const h = replicaHealth(replica({ lagSeconds: null }), MAX_LAG);
    assert.deepEqual(h, { state: 'lagging', reason: 'lag unknown: the replica reports none' });
    assert.equal(replicaCardState(h.state), 'down');
  });

  it('is lagging (red) when its lag is over the bound', () => {
    assert.deepEqual(replicaHealth(replica({ lagSeconds: 6 }), MAX_LAG), {
      state: 'lagging',
      reason: '6 s behind, over the 5 s bound',
    });
  });
});

describe('readReplication', () => {
  it('is null for no replicas, and for a value that is not the contract shape', () => {
    assert.equal(readReplication(null), null);
    assert.equal(readReplication({ replicas: [] }), null);
    assert.equal(readReplication('on'), null);
  });

  it('reads a mistyped field as the bad case, so it can never look healthier than it is', () => {
    const r = readReplication({ maxLagSeconds: 5, replicas: [{ name: 'r', reachable: 'yes', lagSeconds: '0' }, { host: 'x' }] })!;
    assert.equal(r.replicas.length, 1, 'a replica without a name is dropped');
    assert.equal(r.replicas[0].reachable, false);
    assert.equal(r.replicas[0].lagSeconds, null);
    assert.equal(replicaHealth(r.replicas[0], 5).state, 'unreachable');
  });

  it('summarises replication on the database card, and says "not configured" without replicas, as before', () => {
    assert.equal(formatReplication(null), 'not configured');
    assert.equal(formatReplication({ role: 'primary' }), 'role: primary', 'another shape reads as before');
    assert.equal(formatReplication({ maxLagSeconds: 5, replicas: [replica()] }), '1 read replica, lag bound 5 s');
    assert.equal(formatReplication({ maxLagSeconds: 30, replicas: [replica(), replica({ name: 'b' })] }), '2 read replicas, lag bound 30 s');
  });
});

describe('replicas across web servers', () => {
  it('shows no replica card when the web servers report no replication', () => {
    assert.deepEqual(deriveReplicas([web('pi-web1', null), web('pi-web2', null)], []), []);
  });

  it('keeps config order and sums the reads of every web server', () => {
    const r1 = replica();
    const r2 = replica({ name: 'pi-db-r2', host: '10.254.0.126', reads: 3 });
    const views = deriveReplicas([web('pi-web1', [r1, r2]), web('pi-web2', [r1, { ...r2, reads: 4 }])], []);
    assert.deepEqual(views.map((v) => v.name), ['pi-db-r1', 'pi-db-r2']);
    assert.deepEqual(views.map((v) => v.reads), [20, 7]);
    assert.equal(views[1].host, '10.254.0.126');
    assert.equal(views[0].state, 'ok');
    assert.equal(views[0].reason, null);
    assert.deepEqual(views[0].inReadSetOf, ['pi-web1', 'pi-web2']);
    assert.equal(views[0].maxLagSeconds, MAX_LAG);
  });

  it('shows the freshest view of a server that reaches it, by when each server probed', () => {
    // pi-web2's answer is newer, but it comes from a probe 20 s old; pi-web1 probed last.
    const views = deriveReplicas(
      [
        web('pi-web1', [replica({ lagSeconds: 9, gtid: '0-1-2000' })], { generatedAt: '2026-11-27T12:00:00.000Z' }),
        web('pi-web2', [replica({ gtid: '0-1-1000' })], { generatedAt: '2026-11-27T12:00:05.000Z', cacheAgeMs: 20_000 }),
      ],
      [],
    );
    assert.equal(views[0].reportedBy, 'pi-web1');
    assert.equal(views[0].shown?.gtid, '0-1-2000');
    assert.equal(views[0].state, 'lagging');
    assert.equal(views[0].reason, '9 s behind, over the 5 s bound');
  });

  it('turns red when the freshest reaching view is stopped, though an older one was fine', () => {
    const stopped = replica({ ioRunning: false, lagSeconds: null, inReadSet: false, error: 'error reconnecting to master' });
    const views = deriveReplicas(
      [web('pi-web1', [replica()]), web('pi-web2', [stopped], { generatedAt: '2026-11-27T12:00:01.000Z' })],
      [],
    );
    assert.equal(views[0].state, 'stopped');
    assert.equal(replicaCardState(views[0].state), 'down');
    assert.equal(views[0].shown?.error, 'error reconnecting to master');
  });

  it('is unreachable (red) only when no server in service reaches it, with the freshest error', () => {
    const blind = (error: string) => replica({ reachable: false, ioRunning: false, sqlRunning: false, lagSeconds: null, gtid: null, inReadSet: false, error });
    const views = deriveReplicas(
      [
        web('pi-web1', [blind('connect ETIMEDOUT')]),
        web('pi-web2', [blind('connect ECONNREFUSED 10.254.0.125:3306')], { generatedAt: '2026-11-27T12:00:01.000Z' }),
      ],
      [],
    );
    assert.equal(views[0].state, 'unreachable');
    assert.equal(views[0].reason, 'unreachable from pi-web1, pi-web2');
    assert.equal(views[0].shown?.error, 'connect ECONNREFUSED 10.254.0.125:3306');
  });

  it('is degraded (amber), not red, when one server of several cannot reach it', () => {
    const views = deriveReplicas(
      [
        web('pi-web1', [replica()]),
        web('pi-web2', [replica({ reachable: false, lagSeconds: null, inReadSet: false, reads: 0, error: 'connect ETIMEDOUT' })]),
      ],
      [],
    );
    assert.equal(views[0].state, 'degraded');
    assert.equal(replicaCardState(views[0].state), 'degraded');
    assert.equal(views[0].reason, 'not reachable from pi-web2 (connect ETIMEDOUT)');
    assert.equal(views[0].reportedBy, 'pi-web1');
  });

  it('is degraded when healthy but out of the read set of some or every server', () => {
    const out = replica({ inReadSet: false });
    assert.equal(deriveReplicas([web('pi-web1', [out]), web('pi-web2', [out])], [])[0].reason, 'out of the read set');
    const partial = deriveReplicas([web('pi-web1', [replica()]), web('pi-web2', [out])], [])[0];
    assert.equal(partial.state, 'degraded');
    assert.equal(partial.reason, 'out of the read set of pi-web2');
    assert.deepEqual(partial.inReadSetOf, ['pi-web1']);
  });

  it('ignores servers that are down, in maintenance, or report no replication (an older app)', () => {
    const views = deriveReplicas(
      [
        downWeb('pi-web1'),
        web('pi-web2', [replica()]),
        web('pi-web3', [replica({ reachable: false })], { maintenance: true }),
        web('pi-web4', null),
      ],
      [],
    );
    assert.equal(views[0].state, 'ok');
    assert.deepEqual(views[0].reporters, ['pi-web2']);
  });

  it('keeps the known replicas as unknown, without figures, while no server in service answers', () => {
    const known = deriveReplicas([web('pi-web1', [replica()])], []);
    const views = deriveReplicas([downWeb('pi-web1')], known);
    assert.equal(views.length, 1);
    assert.equal(views[0].state, 'unknown');
    assert.equal(views[0].host, '10.254.0.125');
    assert.equal(views[0].shown, null);
    assert.equal(views[0].reads, null);
    assert.equal(replicaCardState('unknown'), 'unknown');
  });
});

describe('overall state with replicas', () => {
  const lb = deriveLb(pendingLb({ name: 'pi-lb', address: '10.254.0.121' }), {
    ok: true,
    status: 200,
    body: 'Active connections: 1 \nserver accepts handled requests\n 5 5 9 \nReading: 0 Writing: 1 Waiting: 0 \n',
    elapsedMs: 1,
    at: AT,
  });
  const overall = (replicas: ReplicaStatus[]) => {
    const webNodes = [web('pi-web1', replicas), web('pi-web2', replicas)];
    return deriveOverall({ configError: null, lb, webNodes, db: null, replicas: deriveReplicas(webNodes, []) });
  };

  it('stays healthy with every replica ok', () => {
    assert.equal(overall([replica()]).state, 'healthy');
  });

  it('is degraded, not down, naming the replica and why, when one is stopped', () => {
    const o = overall([replica({ ioRunning: false, lagSeconds: null, inReadSet: false })]);
    assert.equal(o.state, 'degraded');
    assert.deepEqual(o.reasons, ['replica pi-db-r1 is stopped (IO thread not running)']);
  });

  it('is degraded, not down, when every replica is unreachable', () => {
    const o = overall([replica({ reachable: false }), replica({ name: 'pi-db-r2', reachable: false })]);
    assert.equal(o.state, 'degraded');
    assert.equal(o.reasons.length, 2);
  });
});
