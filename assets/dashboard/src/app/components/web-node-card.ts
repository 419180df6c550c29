import { ChangeDetectionStrategy, Component, computed, input } from '@angular/core';
import { formatBytes, formatClock, formatDuration, formatNumber } from '../data/format';
import { webCardState } from '../data/node-state';
import { Sample, WebNodeView } from '../data/types';
import { Sparkline } from './sparkline';
import { StateBadge } from './state-badge';

@Component({
  selector: 'app-web-node-card',
  imports: [StateBadge, Sparkline],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <article class="card" [attr.data-node]="node().name" data-role="web" [attr.data-state]="cardState()"
      [attr.data-probe]="node().state" [attr.data-checked-at]="node().checkedAt">
      <header class="card-head">
        <h3>{{ node().name }} <small>web server · {{ node().address }}</small></h3>
        <app-state-badge [state]="cardState()" />
      </header>
      @if (node().maintenance) {
        <p class="maintenance-note" data-testid="maintenance-note">
          Cordoned: out of the load balancer's round-robin. Its own status URL:
          <strong>{{ probeText[node().state] }}</strong>.
        </p>
      }
      @if (node().reason) {
        <p class="reason">{{ node().reason }}</p>
        <p class="checked">last up {{ clock(node().lastUpAt) }}</p>
      }
      @if (node().status; as s) {
        <dl class="facts">
          <dt>Response time</dt><dd>{{ node().responseMs }} ms</dd>
          <dt>Hostname</dt><dd>{{ s.node.hostname }}</dd>
          <dt>App version</dt><dd>{{ s.node.version }}</dd>
          <dt>Uptime</dt><dd>{{ duration(s.node.uptimeSeconds) }}</dd>
          <dt>Memory (RSS / heap)</dt><dd>{{ bytes(s.node.memory.rssBytes) }} / {{ bytes(s.node.memory.heapUsedBytes) }}</dd>
          <dt>System memory free</dt>
          <dd>{{ bytes(s.node.memory.systemFreeBytes) }} of {{ bytes(s.node.memory.systemTotalBytes) }}</dd>
          <dt>Load (1/5/15 min)</dt><dd>{{ loadText(s.node.load) }}</dd>
          <dt>Requests served</dt><dd>{{ num(s.requests.served) }}</dd>
          <dt>DB pool in use / free</dt>
          <dd>
            @if (s.db.pool; as p) {
              {{ p.inUse }} / {{ p.free }} <small>(limit {{ p.limit }})</small>
            } @else {
              —
            }
          </dd>
          <dt>Database</dt><dd>{{ s.db.reachable ? 'reachable' : 'unreachable' }}</dd>
        </dl>
      }
      <div class="history">
        <span class="history-label">Response time</span>
        <app-sparkline [samples]="history()" />
      </div>
      <p class="checked">checked {{ clock(node().checkedAt) }}</p>
    </article>
  `,
})
export class WebNodeCard {
  readonly node = input.required<WebNodeView>();
  readonly history = input.required<readonly Sample[]>();
  protected readonly cardState = computed(() => webCardState(this.node()));
  protected readonly probeText = { pending: 'no answer yet', up: 'up', down: 'down' } as const;
  protected readonly num = formatNumber;
  protected readonly bytes = formatBytes;
  protected readonly duration = formatDuration;
  protected readonly clock = formatClock;
  protected loadText(load: readonly number[]): string {
    return load.map((l) => formatNumber(l, 2)).join(' / ') || '—';
  }
}
