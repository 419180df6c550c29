import { ChangeDetectionStrategy, Component, computed, input } from '@angular/core';
import { formatNumber } from '../data/format';
import { replicaCardState } from '../data/replica-state';
import { ReplicaView } from '../data/types';
import { StateBadge } from './state-badge';

/** One MariaDB read replica, combined from every web server's view (see deriveReplicas). */
@Component({
  selector: 'app-replica-card',
  imports: [StateBadge],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <article class="card" [attr.data-node]="replica().name" data-role="replica" [attr.data-state]="cardState()"
      [attr.data-replica]="replica().state">
      <header class="card-head">
        <h3>{{ replica().name }} <small>read replica · {{ replica().host || '—' }}</small></h3>
        <app-state-badge [state]="replica().state" />
      </header>
      @if (replica().reason) {
        <p class="reason">{{ replica().reason }}</p>
      }
      @if (replica().shown; as r) {
        <dl class="facts">
          <dt>Lag</dt>
          <dd data-field="lag">{{ r.lagSeconds === null ? '—' : num(r.lagSeconds) + ' s' }} <small>(bound {{ num(replica().maxLagSeconds) }} s)</small></dd>
          <dt>IO / SQL thread</dt>
          <dd data-field="threads">{{ r.reachable ? running(r.ioRunning) + ' / ' + running(r.sqlRunning) : '—' }}</dd>
          <dt>In read set</dt><dd data-field="readSet">{{ readSet() }}</dd>
          <dt>GTID position</dt><dd data-field="gtid">{{ r.gtid ?? '—' }}</dd>
          <dt>Reads served</dt><dd data-field="reads">{{ num(replica().reads) }}</dd>
        </dl>
        @if (r.error) {
          <p class="replica-error" data-field="error">Error: {{ r.error }}</p>
        }
        <p class="checked">as seen by {{ replica().reportedBy }}</p>
      }
    </article>
  `,
})
export class ReplicaCard {
  readonly replica = input.required<ReplicaView>();
  protected readonly cardState = computed(() => replicaCardState(this.replica().state));
  /** "yes" / "no" for every reporting web server alike, else which of them use it. */
  protected readonly readSet = computed(() => {
    const { inReadSetOf, reporters } = this.replica();
    if (inReadSetOf.length === 0) return 'no';
    if (inReadSetOf.length === reporters.length) return 'yes';
    return `${inReadSetOf.join(', ')} only`;
  });
  protected readonly num = formatNumber;
  protected running(on: boolean): string {
    return on ? 'running' : 'stopped';
  }
}
