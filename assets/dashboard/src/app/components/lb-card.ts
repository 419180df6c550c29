import { ChangeDetectionStrategy, Component, input } from '@angular/core';
import { formatClock, formatNumber } from '../data/format';
import { TlsView } from '../data/tls-status';
import { LbView } from '../data/types';
import { StateBadge } from './state-badge';

@Component({
  selector: 'app-lb-card',
  imports: [StateBadge],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <article class="card" [attr.data-node]="lb().name" data-role="lb" [attr.data-state]="lb().state"
      [attr.data-checked-at]="lb().checkedAt">
      <header class="card-head">
        <h3>{{ lb().name }} <small>load balancer · {{ lb().address }}</small></h3>
        <app-state-badge [state]="lb().state" />
      </header>
      @if (lb().reason) {
        <p class="reason">{{ lb().reason }}</p>
      }
      @if (lb().stub; as s) {
        <dl class="facts">
          <dt>Active connections</dt><dd>{{ num(s.active) }}</dd>
          <dt>Requests</dt><dd>{{ num(s.requests) }}</dd>
          <dt>Requests/s</dt><dd>{{ num(lb().requestsPerSecond, 1) }}</dd>
          <dt>Accepts / handled</dt><dd>{{ num(s.accepts) }} / {{ num(s.handled) }}</dd>
          <dt>Reading / writing / waiting</dt><dd>{{ s.reading }} / {{ s.writing }} / {{ s.waiting }}</dd>
        </dl>
      }
      @if (tls(); as t) {
        <p class="tls" data-testid="certificate-expiry" [class.tls-warn]="t.warn" [attr.data-days-left]="t.daysLeft">
          Certificate expires {{ t.expiry.slice(0, 10) }} ({{ t.daysLeft }} days)
        </p>
      }
      <p class="checked">checked {{ clock(lb().checkedAt) }}</p>
    </article>
  `,
})
export class LbCard {
  readonly lb = input.required<LbView>();
  /** The HTTPS certificate's expiry, red below TLS_WARN_DAYS. */
  readonly tls = input<TlsView | null>(null);
  protected readonly num = formatNumber;
  protected readonly clock = formatClock;
}
