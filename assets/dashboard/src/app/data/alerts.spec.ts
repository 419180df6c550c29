import { strict as assert } from 'node:assert';
import { alertKey, AlertRow, alertsView, AlertsView, asksForAlerts, criticalAlertsLine, formatSince, parseAlerts, withCriticalAlerts } from './alerts';
import { parseClusterConfig } from './cluster-config';
import { FetchOutcome, Overall } from './types';

const AT = Date.parse('2026-12-07T23:30:00Z');

/** One entry as Alertmanager's API v2 returns it. */
function alert(
  labels: Record<string, unknown>,
  over: { summary?: string; startsAt?: string; state?: string } = {},
): Record<string, unknown> {
  return {
    labels,
    annotations: over.summary === undefined ? {} : { summary: over.summary, description: 'more' },
    startsAt: over.startsAt ?? '2026-12-07T23:01:02.123Z',
    endsAt: '2026-12-07T23:35:02.123Z',
    updatedAt: '2026-12-07T23:29:02.123Z',
    fingerprint: 'a1b2c3d4e5f60718',
    status: { state: over.state ?? 'active', silencedBy: [], inhibitedBy: [] },
    receivers: [{ name: 'webhook' }],
  };
}

const ok = (body: unknown): FetchOutcome => ({
  ok: true,
  status: 200,
  body: typeof body === 'string' ? body : JSON.stringify(body),
  elapsedMs: 3,
  at: AT,
});

const failed = (status: number | null, reason: string, body?: string): FetchOutcome => ({
  ok: false,
  status,
  reason,
  ...(body === undefined ? {} : { body }),
  elapsedMs: 3,
  at: AT,
});

function reasonOf(view: AlertsView): string {
  assert.equal(view.kind, 'unavailable', `expected unavailable, got ${JSON.stringify(view)}`);
  return view.kind === 'unavailable' ? view.reason : '';
}

describe('alertsView', () => {
  it('reads the firing alerts: name, instance, severity, summary and start', () => {
    const view = alertsView(ok([alert({ alertname: 'PiDown', instance: 'pi-web2', severity: 'critical' }, { summary: 'pi-web2 is down' })]));
    assert.deepEqual(view, {
      kind: 'ok',
      at: AT,
      alerts: [{ name: 'PiDown', instance: 'pi-web2', severity: 'critical', summary: 'pi-web2 is down', startsAt: Date.parse('2026-12-07T23:01:02.123Z') }],
    });
  });

  it('is an empty list when nothing fires', () => {
    assert.deepEqual(alertsView(ok('[]')), { kind: 'ok', alerts: [], at: AT });
  });

  it('leaves instance, summary and severity out when the alert has none', () => {
    const view = alertsView(ok([alert({ alertname: 'Watchdog' })]));
    assert.equal(view.kind, 'ok');
    const [row] = view.kind === 'ok' ? view.alerts : [];
    assert.equal(row.instance, null);
    assert.equal(row.summary, null);
    assert.equal(row.severity, 'none');
    assert.equal(alertKey(row), 'Watchdog ');
  });

  it('sorts critical first, then warning, then others; the oldest first within one; then by name and instance', () => {
    const body = [
      alert({ alertname: 'Info', instance: 'a', severity: 'info' }, { startsAt: '2026-12-07T20:00:00Z' }),
      alert({ alertname: 'Slow', instance: 'pi-web1', severity: 'warning' }, { startsAt: '2026-12-07T23:10:00Z' }),
      alert({ alertname: 'PiDown', instance: 'pi-web3', severity: 'critical' }, { startsAt: '2026-12-07T23:05:00Z' }),
      alert({ alertname: 'Disk', instance: 'pi-db', severity: 'warning' }, { startsAt: '2026-12-07T22:00:00Z' }),
      alert({ alertname: 'PiDown', instance: 'pi-web2', severity: 'critical' }, { startsAt: '2026-12-07T23:05:00Z' }),
      alert({ alertname: 'DbDown', instance: 'pi-db', severity: 'critical' }, { startsAt: '2026-12-07T23:05:00Z' }),
      alert({ alertname: 'Backup', instance: 'pi-db', severity: 'critical' }, { startsAt: '2026-12-07T23:20:00Z' }),
    ];
    const view = alertsView(ok(body));
    assert.deepEqual(view.kind === 'ok' && view.alerts.map(alertKey), [
      'DbDown pi-db',
      'PiDown pi-web2',
      'PiDown pi-web3',
      'Backup pi-db',
      'Disk pi-db',
      'Slow pi-web1',
      'Info a',
    ]);
  });

  it('skips an entry whose status.state is not "active"', () => {
    const view = alertsView(ok([
      alert({ alertname: 'Silenced', severity: 'critical' }, { state: 'suppressed' }),
      alert({ alertname: 'Firing', severity: 'warning' }),
    ]));
    assert.deepEqual(view.kind === 'ok' && view.alerts.map((a) => a.name), ['Firing']);
  });

  it('is off on 404 MONITORING_OFF', () => {
    const body = '{"error":{"code":"MONITORING_OFF","message":"monitoring is off on this cluster"}}';
    assert.deepEqual(alertsView(failed(404, 'HTTP 404 Not Found', body)), { kind: 'off', at: AT });
  });

  it('is unavailable on another 404, with the status', () => {
    assert.equal(reasonOf(alertsView(failed(404, 'HTTP 404 Not Found', '<html>404</html>'))), 'HTTP 404 Not Found');
  });

  it('is unavailable outside the management network (403), and says so', () => {
    assert.equal(reasonOf(alertsView(failed(403, 'HTTP 403 Forbidden', '<html>403</html>'))), 'only on the management network (HTTP 403)');
  });

  it('is unavailable on a gateway error or a timeout, with the reason', () => {
    assert.equal(reasonOf(alertsView(failed(502, 'HTTP 502 Bad Gateway', ''))), 'HTTP 502 Bad Gateway');
    assert.equal(reasonOf(alertsView(failed(null, 'no answer within 4000 ms'))), 'no answer within 4000 ms');
  });

  it('is unavailable on a body that is not JSON, quoting its start (an LB that serves the page instead)', () => {
    assert.equal(reasonOf(alertsView(ok('<!doctype html><html lang="en"><head><meta charset="utf-8">'))), 'expected JSON, got "<!doctype html><html lang=\\"en\\"><head><me…"');
  });

  it('is unavailable on JSON that is not an array', () => {
    assert.equal(reasonOf(alertsView(ok({ data: [] }))), 'expected an array of alerts, got an object');
    assert.equal(reasonOf(alertsView(ok('null'))), 'expected an array of alerts, got null');
  });

  it('names the entry and the field when an entry is malformed', () => {
    const noName = alert({ instance: 'pi-web2', severity: 'critical' });
    assert.equal(reasonOf(alertsView(ok([alert({ alertname: 'A' }), noName]))), 'alerts[1].labels.alertname: expected a non-empty string, got undefined');
    assert.equal(reasonOf(alertsView(ok([{ ...alert({ alertname: 'A' }), labels: undefined }]))), 'alerts[0].labels: expected an object, got undefined');
    assert.equal(reasonOf(alertsView(ok([alert({ alertname: 'A', severity: 3 })]))), 'alerts[0].labels.severity: expected a string, got 3');
    assert.equal(reasonOf(alertsView(ok([alert({ alertname: 'A' }, { startsAt: 'soon' })]))), 'alerts[0].startsAt: expected an ISO 8601 date, got "soon"');
    assert.equal(reasonOf(alertsView(ok([{ ...alert({ alertname: 'A' }), status: {} }]))), 'alerts[0].status.state: expected a string, got undefined');
    assert.equal(reasonOf(alertsView(ok(['PiDown']))), 'alerts[0]: expected an object, got "PiDown"');
  });
});

describe('parseAlerts', () => {
  it('throws, rather than returning rows, on a malformed entry', () => {
    assert.throws(() => parseAlerts('[{}]'), /^Error: alerts\[0\]\.status: expected an object, got undefined$/);
  });
});

describe('formatSince', () => {
  it('gives the local start time and how long since, in days and hours once past a day', () => {
    const start = new Date(2026, 11, 7, 9, 5, 30).getTime();
    assert.equal(formatSince(start, start + 12 * 60_000 + 29_000), 'since 09:05 (12m 29s)');
    assert.equal(formatSince(start, start + 59_000), 'since 09:05 (59s)');
    assert.equal(formatSince(start, start + (3 * 86400 + 2 * 3600 + 125) * 1000), 'since 09:05 (3d 2h)');
  });

  it('never counts negative time when the Pi\'s clock runs ahead of the browser\'s', () => {
    const start = new Date(2026, 11, 7, 23, 1).getTime();
    assert.equal(formatSince(start, start - 90_000), 'since 23:01 (0s)');
  });
});

describe('asksForAlerts', () => {
  const config = (monitoring?: unknown) =>
    parseClusterConfig(
      JSON.stringify({
        loadBalancer: { name: 'pi-lb' },
        webServers: [{ name: 'pi-web1' }],
        database: { name: 'pi-db' },
        ...(monitoring === undefined ? {} : { monitoring }),
      }),
    );

  it('does not ask internal/alerts while cluster.json says monitoring is off', () => {
    assert.equal(asksForAlerts(config({ enabled: false })), false);
  });

  it('asks while cluster.json says monitoring is on', () => {
    assert.equal(asksForAlerts(config({ enabled: true })), true);
  });

  it('asks, as before the field, when cluster.json does not say (an older load balancer), or before any was read', () => {
    assert.equal(asksForAlerts(config()), true);
    assert.equal(asksForAlerts(null), true);
  });

  it('follows the cluster.json of the round: off, then on once a later one says so, and off again', () => {
    assert.deepEqual([false, true, false].map((enabled) => asksForAlerts(config({ enabled }))), [false, true, false]);
  });
});

describe('withCriticalAlerts', () => {
  const healthy: Overall = { state: 'healthy', reasons: ['all nodes up'], maintenance: [] };
  const degraded: Overall = { state: 'degraded', reasons: ['pi-web2 is down (HTTP 502 Bad Gateway)'], maintenance: ['pi-web3'] };
  const down: Overall = { state: 'down', reasons: ['every web server is down'], maintenance: [] };
  const pending: Overall = { state: 'pending', reasons: ['waiting for the first answers'], maintenance: [] };
  const row = (name: string, instance: string | null, severity: string): AlertRow => ({ name, instance, severity, summary: null, startsAt: AT });
  const firing = (...alerts: AlertRow[]): AlertsView => ({ kind: 'ok', alerts, at: AT });
  const piDown = row('PiDown', 'pi-web2', 'critical');

  it('turns a healthy banner degraded while a critical alert fires, naming it', () => {
    assert.deepEqual(withCriticalAlerts(healthy, firing(piDown, row('HighLoad', 'pi-web1', 'warning'))), {
      state: 'degraded',
      reasons: ['1 critical alert: PiDown pi-web2'],
      maintenance: [],
    });
  });

  it('keeps a degraded or down banner as it is, with the critical alerts\' line after the nodes\' reasons', () => {
    const two = firing(piDown, row('DatabaseUnreachable', 'pi-web1', 'critical'));
    assert.deepEqual(withCriticalAlerts(degraded, two), {
      ...degraded,
      reasons: [...degraded.reasons, '2 critical alerts: PiDown pi-web2, DatabaseUnreachable pi-web1'],
    });
    assert.deepEqual(withCriticalAlerts(down, two), { ...down, reasons: [...down.reasons, '2 critical alerts: PiDown pi-web2, DatabaseUnreachable pi-web1'] });
  });

  it('leaves every state as it is with warnings and other severities only', () => {
    const notCritical = firing(row('HighLoad', 'pi-web1', 'warning'), row('Watchdog', null, 'none'), row('Info', 'pi-db', 'info'));
    for (const overall of [healthy, degraded, down, pending]) assert.equal(withCriticalAlerts(overall, notCritical), overall, overall.state);
  });

  it('leaves the banner as it is with no alert firing, with monitoring off, with alerts unavailable, and before the first answer', () => {
    const views: (AlertsView | null)[] = [firing(), { kind: 'off', at: AT }, { kind: 'unavailable', reason: 'HTTP 502 Bad Gateway', at: AT }, null];
    for (const view of views) assert.equal(withCriticalAlerts(healthy, view), healthy, JSON.stringify(view));
  });

  it('does not decide for a banner still waiting for the nodes\' first answers', () => {
    assert.equal(withCriticalAlerts(pending, firing(piDown)), pending);
  });
});

describe('criticalAlertsLine', () => {
  const row = (name: string, instance: string | null): AlertRow => ({ name, instance, severity: 'critical', summary: null, startsAt: AT });

  it('names an alert without an instance by its name alone', () => {
    assert.equal(criticalAlertsLine([row('BackupStale', null)]), '1 critical alert: BackupStale');
  });

  it('names the first three, in the panel\'s order, and counts the rest', () => {
    const rows = ['pi-web1', 'pi-web2', 'pi-web3', 'pi-db', 'pi-lb'].map((i) => row('PiDown', i));
    assert.equal(criticalAlertsLine(rows.slice(0, 3)), '3 critical alerts: PiDown pi-web1, PiDown pi-web2, PiDown pi-web3');
    assert.equal(criticalAlertsLine(rows), '5 critical alerts: PiDown pi-web1, PiDown pi-web2, PiDown pi-web3 and 2 more');
  });
});
