/**
 * The alerts panel's data: the LB's `internal/alerts` (docs/contracts.md, "The load balancer's
 * URLs"), which passes on Alertmanager's API v2 `GET /api/v2/alerts?active=true&silenced=false&inhibited=false`
 * unchanged while monitoring is on, and answers 404 `MONITORING_OFF` while it is off.
 */
import { formatDuration } from './format';
import { ClusterConfig, FetchOutcome, Overall } from './types';

/** One firing alert, as the panel shows it. */
export interface AlertRow {
  /** `labels.alertname`. */
  name: string;
  /** `labels.instance`; null when the alert has none (a cluster-wide rule). */
  instance: string | null;
  /** `labels.severity`: 'critical' and 'warning' are the stack's rules; 'none' when the label is absent. */
  severity: string;
  /** `annotations.summary`; null when absent. */
  summary: string | null;
  /** `startsAt`, epoch ms. */
  startsAt: number;
}

/** What the panel shows; `at` is when the answer came (epoch ms), for "N min" and the e2e. */
export type AlertsView =
  | { kind: 'off'; at: number }
  | { kind: 'unavailable'; reason: string; at: number }
  | { kind: 'ok'; alerts: AlertRow[]; at: number };

/** The severity when an alert carries no `severity` label. */
export const NO_SEVERITY = 'none';

/** The stack's rules' severity that pages (components/render/alerts.ts); the only one the banner counts. */
export const CRITICAL = 'critical';

/** How many critical alerts the banner's line names before "and N more". */
const BANNER_NAMES = 3;

const SEVERITY_RANK: Readonly<Record<string, number>> = { [CRITICAL]: 0, warning: 1 };

/**
 * Whether a round asks `internal/alerts`: not while cluster.json says monitoring is off (the
 * panel is off without a request, as Chromium logs every 404 as an error); while it says on, or
 * nothing (a load balancer older than the field, or no cluster.json read yet), it does, and a
 * 404 `MONITORING_OFF` still reads as off.
 */
export function asksForAlerts(config: Pick<ClusterConfig, 'monitoring'> | null): boolean {
  return config?.monitoring !== false;
}

/** Turns one poll of `internal/alerts` into the panel's view. Never throws. */
export function alertsView(outcome: FetchOutcome): AlertsView {
  const at = outcome.at;
  if (!outcome.ok) {
    if (outcome.status === 404 && errorCode(outcome.body) === 'MONITORING_OFF') return { kind: 'off', at };
    // nginx denies it outside the management network, as internal/cluster.json.
    if (outcome.status === 403) return { kind: 'unavailable', reason: 'only on the management network (HTTP 403)', at };
    return { kind: 'unavailable', reason: outcome.reason, at };
  }
  try {
    return { kind: 'ok', alerts: parseAlerts(outcome.body), at };
  } catch (err) {
    return { kind: 'unavailable', reason: err instanceof Error ? err.message : String(err), at };
  }
}

/**
 * Reads Alertmanager's v2 alert list, keeps the active ones and sorts them for the panel. Throws
 * naming what was wrong (`alerts[2].labels.alertname: expected a non-empty string, got undefined`).
 */
export function parseAlerts(body: string): AlertRow[] {
  let data: unknown;
  try {
    data = JSON.parse(body);
  } catch {
    // A load balancer without the internal/alerts location serves the page itself (try_files).
    throw new Error(`expected JSON, got ${JSON.stringify(clip(body))}`);
  }
  if (!Array.isArray(data)) throw new Error(`expected an array of alerts, got ${kindOf(data)}`);
  const rows: AlertRow[] = [];
  data.forEach((entry: unknown, i) => {
    const row = readAlert(entry, `alerts[${i}]`);
    if (row) rows.push(row);
  });
  return sortAlerts(rows);
}

/** Critical first, then warning, then the rest; the oldest first within a severity; then name and instance. */
export function sortAlerts(rows: readonly AlertRow[]): AlertRow[] {
  const rank = (s: string) => SEVERITY_RANK[s] ?? 2;
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return [...rows].sort(
    (a, b) =>
      rank(a.severity) - rank(b.severity) ||
      a.startsAt - b.startsAt ||
      cmp(a.name, b.name) ||
      cmp(a.instance ?? '', b.instance ?? ''),
  );
}

/** "since 23:01 (12m 29s)", "since 23:01 (3d 2h)": local wall clock, and how long up to `now`. */
export function formatSince(startsAt: number, now: number): string {
  const d = new Date(startsAt);
  const hhmm = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  return `since ${hhmm} (${formatDuration(Math.max(0, (now - startsAt) / 1000))})`;
}

/** The row's `data-alert`: "<alertname> <instance>", the instance empty when there is none. */
export function alertKey(row: AlertRow): string {
  return `${row.name} ${row.instance ?? ''}`;
}

/**
 * The banner with the panel's firing critical alerts: they make a healthy cluster degraded, and
 * add their line ("2 critical alerts: PiDown pi-web2, DbDown pi-db") to a degraded or down one,
 * which keeps its state: never better than the node cards say. Warnings and other severities,
 * and a panel that is off, unavailable or not answered yet, change nothing; nor does anything
 * while the banner waits for the nodes' first answers.
 */
export function withCriticalAlerts(overall: Overall, alerts: AlertsView | null): Overall {
  const critical = alerts?.kind === 'ok' ? alerts.alerts.filter((a) => a.severity === CRITICAL) : [];
  if (critical.length === 0 || overall.state === 'pending') return overall;
  const line = criticalAlertsLine(critical);
  // A healthy banner's one reason, "all nodes up", gives way to the line: the cards still show it.
  return overall.state === 'healthy'
    ? { ...overall, state: 'degraded', reasons: [line] }
    : { ...overall, reasons: [...overall.reasons, line] };
}

/** "1 critical alert: PiDown pi-web2"; past BANNER_NAMES, "5 critical alerts: A, B, C and 2 more", in the panel's order. */
export function criticalAlertsLine(rows: readonly AlertRow[]): string {
  const names = rows.slice(0, BANNER_NAMES).map((r) => alertKey(r).trim());
  const more = rows.length - names.length;
  return `${rows.length} critical alert${rows.length === 1 ? '' : 's'}: ${names.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
}

/** An active alert's row, or null for one whose status.state is not "active" (suppressed, unprocessed). */
function readAlert(entry: unknown, at: string): AlertRow | null {
  const alert = record(entry, at);
  const status = record(alert['status'], `${at}.status`);
  const state = status['state'];
  if (typeof state !== 'string') throw new Error(`${at}.status.state: expected a string, got ${kindOf(state)}`);
  if (state !== 'active') return null;
  const labels = record(alert['labels'], `${at}.labels`);
  const name = labels['alertname'];
  if (typeof name !== 'string' || name === '') {
    throw new Error(`${at}.labels.alertname: expected a non-empty string, got ${kindOf(name)}`);
  }
  const annotations = alert['annotations'] === undefined ? {} : record(alert['annotations'], `${at}.annotations`);
  const startsAt = alert['startsAt'];
  const startsMs = typeof startsAt === 'string' ? Date.parse(startsAt) : NaN;
  if (Number.isNaN(startsMs)) throw new Error(`${at}.startsAt: expected an ISO 8601 date, got ${kindOf(startsAt)}`);
  return {
    name,
    instance: optionalString(labels, 'instance', `${at}.labels`),
    severity: optionalString(labels, 'severity', `${at}.labels`) ?? NO_SEVERITY,
    summary: optionalString(annotations, 'summary', `${at}.annotations`),
    startsAt: startsMs,
  };
}

function record(value: unknown, at: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${at}: expected an object, got ${kindOf(value)}`);
  }
  return value as Record<string, unknown>;
}

function optionalString(obj: Record<string, unknown>, key: string, at: string): string | null {
  const v = obj[key];
  if (v === undefined) return null;
  if (typeof v !== 'string') throw new Error(`${at}.${key}: expected a string, got ${kindOf(v)}`);
  return v;
}

/** `{"error":{"code":...}}`, the LB's JSON errors; null for anything else. */
function errorCode(body: string | undefined): string | null {
  try {
    const code = (JSON.parse(body ?? '') as { error?: { code?: unknown } } | null)?.error?.code;
    return typeof code === 'string' ? code : null;
  } catch {
    return null;
  }
}

function kindOf(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return JSON.stringify(v);
}

function clip(text: string): string {
  const t = text.trim();
  return t.length > 40 ? `${t.slice(0, 40)}…` : t;
}
