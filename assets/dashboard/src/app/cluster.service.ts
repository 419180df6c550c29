import { computed, DestroyRef, inject, Injectable, linkedSignal, signal } from '@angular/core';
import { alertsView, AlertsView, asksForAlerts, withCriticalAlerts } from './data/alerts';
import { effectiveRefreshSeconds, parseClusterConfig, DEFAULT_SETTINGS } from './data/cluster-config';
import { fetchWithTimeout } from './data/fetch-with-timeout';
import { appendSample, pruneHistories } from './data/history';
import { deriveDb, deriveLb, deriveOverall, deriveWebNode, mergeWebNodes, pendingLb } from './data/node-state';
import { deriveReplicas } from './data/replica-state';
import { semiSyncView } from './data/semi-sync';
import { parseTlsStatus, TlsView } from './data/tls-status';
import { ClusterConfig, LbView, ReplicaView, Sample, WebNodeView } from './data/types';

/** The LB's URLs (docs/contracts.md, "The load balancer's URLs"), relative to the page's base href. */
export const URLS = {
  /** With every Pi's address; the management network only. */
  internalConfig: 'internal/cluster.json',
  /** Names only, for anyone: the fallback outside the management network. */
  config: 'cluster.json',
  stubStatus: 'api/lb/stub_status',
  /** A web server's full status (node and database internals); the management network only. */
  node: (name: string) => `api/nodes/${encodeURIComponent(name)}/internal/status`,
  tls: 'tls.json',
  /**
   * Alertmanager's firing alerts (API v2) through the LB; 404 MONITORING_OFF without monitoring;
   * the management network only. Not asked while cluster.json says monitoring is off.
   */
  alerts: 'internal/alerts',
};

/**
 * Polls the LB and every web server on its own clock and timeout, and exposes the result as
 * signals. Each response updates its own node as soon as it arrives, so a slow or dead node
 * never delays the others.
 */
@Injectable({ providedIn: 'root' })
export class ClusterService {
  private readonly search = typeof location === 'undefined' ? '' : location.search;

  readonly config = signal<ClusterConfig | null>(null);
  readonly configError = signal<string | null>(null);
  readonly lb = signal<LbView | null>(null);
  /** The LB's certificate; null until read, or when the LB serves no tls.json (an LB without HTTPS). */
  readonly tls = signal<TlsView | null>(null);
  /** The alerts panel; null until internal/alerts first answers. */
  readonly alerts = signal<AlertsView | null>(null);
  readonly webNodes = signal<WebNodeView[]>([]);
  readonly histories = signal<ReadonlyMap<string, readonly Sample[]>>(new Map());
  readonly lastUpdated = signal<number | null>(null);
  readonly refreshing = signal(false);
  /** Epoch ms when the page started polling, to measure time to first complete render. */
  readonly startedAt = Date.now();

  readonly refreshSeconds = computed(() => effectiveRefreshSeconds(this.config(), this.search));
  readonly db = computed(() => {
    const config = this.config();
    return config ? deriveDb(config.database, this.webNodes()) : null;
  });
  /**
   * Read replicas from the web servers' `db.replication`; none without replicas. Linked to its
   * previous value so a replica's card stays (as unknown) while no web server answers.
   */
  readonly replicas = linkedSignal<readonly WebNodeView[], ReplicaView[]>({
    source: this.webNodes,
    computation: (nodes, previous) => deriveReplicas(nodes, previous?.value ?? []),
  });
  /** The database card's "Writes" line: semi-sync as the freshest web server that reaches it reports. */
  readonly semiSync = computed(() => semiSyncView(this.db()?.db?.replication));
  /** The banner: the nodes' state, made worse (never better) by firing critical alerts. */
  readonly overall = computed(() =>
    withCriticalAlerts(
      deriveOverall({
        configError: this.configError(),
        lb: this.lb(),
        webNodes: this.webNodes(),
        db: this.db(),
        replicas: this.replicas(),
        semiSync: this.semiSync(),
      }),
      this.alerts(),
    ),
  );

  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly inFlight = new Set<string>();
  private stopped = false;

  constructor() {
    inject(DestroyRef).onDestroy(() => this.stop());
  }

  start(): void {
    this.stopped = false;
    this.refresh();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** One polling round now; the next automatic one follows a full interval later. */
  refresh(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => this.refresh(), this.refreshSeconds() * 1000);
    void this.round();
  }

  private timeoutMs(): number {
    return this.config()?.dashboard.requestTimeoutMs ?? DEFAULT_SETTINGS.requestTimeoutMs;
  }

  private async round(): Promise<void> {
    this.refreshing.set(true);
    // Poll the nodes we already know right away, in parallel with re-reading cluster.json
    // (which picks up a scale-out or scale-in for the next rounds).
    const known = this.config();
    const config = this.loadConfig();
    // After cluster.json, which says whether there is anything to ask (monitoring on or off);
    // not awaited: a slow Alertmanager never holds up the node cards or this round's end.
    void config.then(() => this.pollAlerts());
    const tasks: Promise<void>[] = [config, this.loadTls()];
    if (known) tasks.push(this.pollLb(), ...known.webServers.map((w) => this.pollWeb(w.name)));
    await Promise.all(tasks);
    if (!known && this.config()) {
      const fresh = this.config()!;
      await Promise.all([this.pollLb(), ...fresh.webServers.map((w) => this.pollWeb(w.name))]);
    }
    this.refreshing.set(false);
  }

  private async loadConfig(): Promise<void> {
    // The internal view first; refused (outside the management network) or missing (a load
    // balancer not yet updated), the public one, whose hosts have no addresses.
    const outcome = await this.once('config', async () => {
      const internal = await fetchWithTimeout(URLS.internalConfig, this.timeoutMs());
      return internal.ok ? internal : fetchWithTimeout(URLS.config, this.timeoutMs());
    });
    if (!outcome) return;
    if (!outcome.ok) {
      this.configError.set(outcome.reason);
      this.touch(outcome.at);
      return;
    }
    try {
      this.applyConfig(parseClusterConfig(outcome.body));
      this.configError.set(null);
    } catch (err) {
      this.configError.set(err instanceof Error ? err.message : String(err));
    }
    this.touch(outcome.at);
  }

  private applyConfig(config: ClusterConfig): void {
    const previousRefresh = this.refreshSeconds();
    this.config.set(config);
    this.webNodes.set(mergeWebNodes(this.webNodes(), config.webServers));
    this.histories.set(pruneHistories(this.histories(), config.webServers.map((w) => w.name)));
    const lb = this.lb();
    this.lb.set(lb ? { ...lb, ...config.loadBalancer } : pendingLb(config.loadBalancer));
    if (this.refreshSeconds() !== previousRefresh && this.timer !== null && !this.stopped) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.refresh(), this.refreshSeconds() * 1000);
    }
  }

  /** A static file, like cluster.json: never rate limited. Its failure only hides the expiry. */
  private async loadTls(): Promise<void> {
    const outcome = await this.once('tls', () => fetchWithTimeout(URLS.tls, this.timeoutMs()));
    if (!outcome) return;
    try {
      this.tls.set(outcome.ok ? parseTlsStatus(outcome.body, outcome.at) : null);
    } catch {
      this.tls.set(null);
    }
  }

  private async pollAlerts(): Promise<void> {
    if (!asksForAlerts(this.config())) return this.alerts.set({ kind: 'off', at: Date.now() });
    const outcome = await this.once('alerts', () => fetchWithTimeout(URLS.alerts, this.timeoutMs()));
    if (outcome) this.alerts.set(alertsView(outcome));
  }

  private async pollLb(): Promise<void> {
    const outcome = await this.once('lb', () => fetchWithTimeout(URLS.stubStatus, this.timeoutMs()));
    const lb = this.lb();
    if (!outcome || !lb) return;
    this.lb.set(deriveLb(lb, outcome));
    this.touch(outcome.at);
  }

  private async pollWeb(name: string): Promise<void> {
    const outcome = await this.once(`web:${name}`, () => fetchWithTimeout(URLS.node(name), this.timeoutMs()));
    if (!outcome) return;
    // The node may have left the cluster while its request was out.
    const current = this.webNodes().find((n) => n.name === name);
    if (!current) return;
    const next = deriveWebNode(current, outcome);
    this.webNodes.update((nodes) => nodes.map((n) => (n.name === name ? next : n)));
    this.histories.update((h) => {
      const copy = new Map(h);
      copy.set(name, appendSample(h.get(name) ?? [], { at: outcome.at, ms: next.responseMs }));
      return copy;
    });
    this.touch(outcome.at);
  }

  /** Skips a request whose previous one is still out (possible with `?refresh=1`). */
  private async once<T>(key: string, run: () => Promise<T>): Promise<T | null> {
    if (this.inFlight.has(key)) return null;
    this.inFlight.add(key);
    try {
      return await run();
    } finally {
      this.inFlight.delete(key);
    }
  }

  private touch(at: number): void {
    this.lastUpdated.set(Math.max(at, this.lastUpdated() ?? 0));
  }
}
