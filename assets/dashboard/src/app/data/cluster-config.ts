import { ClusterConfig, DashboardSettings, HostRef, WebServerRef } from './types';

/** Used when `/cluster.json` has no `dashboard` section; the stack renders the same values. */
export const DEFAULT_SETTINGS: DashboardSettings = { refreshSeconds: 10, requestTimeoutMs: 4000 };

const MIN_REFRESH_SECONDS = 1;
const MAX_REFRESH_SECONDS = 3600;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function hostRef(v: unknown, field: string): HostRef {
  if (!isRecord(v) || typeof v['name'] !== 'string' || v['name'] === '') {
    throw new Error(`cluster.json: ${field} needs a non-empty "name"`);
  }
  return { name: v['name'], address: typeof v['address'] === 'string' ? v['address'] : '' };
}

/** `maintenance` is absent for a server in service; when present it must be a boolean. */
function webServerRef(v: unknown, field: string): WebServerRef {
  const host = hostRef(v, field);
  const maintenance = (v as Record<string, unknown>)['maintenance'];
  if (maintenance !== undefined && typeof maintenance !== 'boolean') {
    throw new Error(`cluster.json: ${field}.maintenance must be true or false, got ${JSON.stringify(maintenance)}`);
  }
  return { ...host, maintenance: maintenance ?? false };
}

/** `monitoring.enabled`; null when cluster.json has no `monitoring` (an LB older than the field). */
function monitoringEnabled(v: unknown): boolean | null {
  if (v === undefined) return null;
  if (!isRecord(v)) throw new Error(`cluster.json: "monitoring" must be an object, got ${JSON.stringify(v)}`);
  const enabled = v['enabled'];
  if (typeof enabled !== 'boolean') {
    throw new Error(`cluster.json: monitoring.enabled must be true or false, got ${enabled === undefined ? 'none' : JSON.stringify(enabled)}`);
  }
  return enabled;
}

function positive(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : fallback;
}

/** Validates `/cluster.json`; throws with the offending field so the banner can say what is wrong. */
export function parseClusterConfig(text: string): ClusterConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error('cluster.json: not valid JSON');
  }
  if (!isRecord(raw)) throw new Error('cluster.json: expected an object');
  if (!Array.isArray(raw['webServers'])) throw new Error('cluster.json: "webServers" must be an array');
  const webServers = raw['webServers'].map((w, i) => webServerRef(w, `webServers[${i}]`));
  const names = new Set(webServers.map((w) => w.name));
  if (names.size !== webServers.length) throw new Error('cluster.json: duplicate web server names');
  const dash = isRecord(raw['dashboard']) ? raw['dashboard'] : {};
  return {
    version: typeof raw['version'] === 'number' ? raw['version'] : 1,
    loadBalancer: hostRef(raw['loadBalancer'], 'loadBalancer'),
    webServers,
    database: hostRef(raw['database'], 'database'),
    dashboard: {
      refreshSeconds: positive(dash['refreshSeconds'], DEFAULT_SETTINGS.refreshSeconds),
      requestTimeoutMs: positive(dash['requestTimeoutMs'], DEFAULT_SETTINGS.requestTimeoutMs),
    },
    monitoring: monitoringEnabled(raw['monitoring']),
  };
}

/** `?refresh=N` (whole seconds, 1..3600) wins over `cluster.json`; anything else is ignored. */
export function refreshOverride(search: string): number | null {
  const value = new URLSearchParams(search).get('refresh');
  if (value === null || !/^\d+$/.test(value)) return null;
  const n = Number(value);
  return n >= MIN_REFRESH_SECONDS && n <= MAX_REFRESH_SECONDS ? n : null;
}

export function effectiveRefreshSeconds(config: ClusterConfig | null, search: string): number {
  return refreshOverride(search) ?? config?.dashboard.refreshSeconds ?? DEFAULT_SETTINGS.refreshSeconds;
}
