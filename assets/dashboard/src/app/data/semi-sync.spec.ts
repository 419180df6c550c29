import { strict as assert } from 'node:assert';
import { deriveDb, deriveOverall, deriveWebNode, pendingLb, pendingWebNode, deriveLb } from './node-state';
import { semiSyncView } from './semi-sync';
import { WebNodeView } from './types';

/** The app's `db.replication.semiSync` with writes protected by the one replica. */
const protectedBy = (clients: number, over: Record<string, unknown> = {}) => ({
  enabled: true,
  active: true,
  clients,
  timeoutMs: 1000,
  waitPoint: 'AFTER_SYNC',
  ackedCommits: 120,
  unackedCommits: 0,
  fallbacks: 0,
  writesProtected: clients > 0,
  ...over,
});
/** `db.replication` with `n` replicas and that semi-sync. */
const replication = (n: number, semiSync: unknown) => ({
  maxLagSeconds: 5,
  semiSync,
  replicas: Array.from({ length: n }, (_, i) => ({ name: `pi-db-read${i + 1}` })),
});

describe('semi-sync line of the database card', () => {
  it('is green, protected, while every replica acks', () => {
    assert.deepEqual(semiSyncView(replication(1, protectedBy(1))), {
      state: 'protected',
      tone: 'up',
      text: 'protected: a replica acks each write (1 of 1 replica acking)',
    });
    assert.equal(semiSyncView(replication(2, protectedBy(2)))?.text, 'protected: a replica acks each write (2 of 2 replicas acking)');
  });

  it('is amber while only some replicas ack: protected, one failure from unprotected', () => {
    assert.deepEqual(semiSyncView(replication(2, protectedBy(1))), {
      state: 'partial',
      tone: 'degraded',
      text: 'protected: a replica acks each write (1 of 2 replicas acking)',
    });
  });

  it('is red, unprotected, when no replica acks or the database fell back to async', () => {
    const red = {
      state: 'unprotected',
      tone: 'down',
      text: 'unprotected: no replica acknowledged, new writes are on the database alone',
    };
    // No replica connected: the next write waits the timeout.
    assert.deepEqual(semiSyncView(replication(1, protectedBy(0))), red);
    // A write waited and the database went on without an ack: async until a replica acks again.
    assert.deepEqual(semiSyncView(replication(1, protectedBy(1, { active: false, writesProtected: false }))), red);
  });

  it('is amber, unprotected, when the stack turned semi-sync off', () => {
    assert.deepEqual(semiSyncView(replication(1, protectedBy(1, { enabled: false, active: false }))), {
      state: 'off',
      tone: 'degraded',
      text: 'unprotected: semi-sync off, replicas follow async',
    });
  });

  it('is unknown without a report, absent without replicas, and never green on a malformed one', () => {
    assert.equal(semiSyncView(replication(1, null))?.state, 'unknown');
    assert.equal(semiSyncView({ maxLagSeconds: 5, replicas: [] })?.state, 'unknown');
    assert.equal(semiSyncView(null), null);
    assert.equal(semiSyncView('replication'), null);
    assert.equal(semiSyncView(replication(1, protectedBy(1, { clients: '1' })))?.state, 'unprotected');
    assert.equal(semiSyncView(replication(1, protectedBy(1, { active: 'yes' })))?.state, 'unprotected');
    assert.equal(semiSyncView(replication(1, protectedBy(1, { enabled: 1 })))?.state, 'off');
  });
});

describe('semi-sync in the banner', () => {
  const AT = 1_700_000_000_000;
  const web = (semiSync: unknown): WebNodeView => {
    const body = {
      node: { name: 'pi-web1', hostname: 'pi-web1', version: '1.0.0', uptimeSeconds: 1, pid: 1, memory: {}, load: [] },
      requests: { served: 1 },
      db: { reachable: true, replication: replication(1, semiSync), lastBackup: null },
      generatedAt: new Date(AT).toISOString(),
    };
    return deriveWebNode(pendingWebNode({ name: 'pi-web1', address: '10.254.0.122', maintenance: false }), {
      ok: true, status: 200, body: JSON.stringify(body), elapsedMs: 5, at: AT,
    });
  };
  const overall = (semiSync: unknown) => {
    const webNodes = [web(semiSync)];
    const db = deriveDb({ name: 'pi-db', address: '10.254.0.124' }, webNodes);
    const lb = deriveLb(pendingLb({ name: 'pi-lb', address: '10.254.0.121' }), {
      ok: true, status: 200, body: 'Active connections: 1\nserver accepts handled requests\n 1 1 1\nReading: 0 Writing: 1 Waiting: 0\n', elapsedMs: 1, at: AT,
    });
    return deriveOverall({ configError: null, lb, webNodes, db, semiSync: semiSyncView(db.db?.replication) });
  };

  it('is degraded, never down, while writes are unprotected: they still succeed', () => {
    assert.deepEqual(overall(protectedBy(0)), {
      state: 'degraded',
      reasons: ['writes to pi-db unprotected: no replica acknowledged, new writes are on the database alone'],
      maintenance: [],
    });
  });

  it('adds nothing while writes are protected, or semi-sync is off by choice', () => {
    assert.equal(overall(protectedBy(1)).state, 'healthy');
    assert.equal(overall(protectedBy(1, { enabled: false, active: false })).state, 'healthy');
  });
});
