import { ChangeDetectionStrategy, Component, computed, input } from '@angular/core';
import { ReplicaState } from '../data/types';

type AnyState =
  | 'pending'
  | 'up'
  | 'down'
  | 'unknown'
  | 'healthy'
  | 'degraded'
  | 'maintenance'
  | ReplicaState;

/** Colour is never the only signal: every state has a symbol and a word. */
const LABELS: Record<AnyState, { symbol: string; text: string }> = {
  pending: { symbol: '…', text: 'checking' },
  up: { symbol: '✓', text: 'up' },
  down: { symbol: '✕', text: 'down' },
  unknown: { symbol: '?', text: 'unknown' },
  healthy: { symbol: '✓', text: 'healthy' },
  degraded: { symbol: '!', text: 'degraded' },
  maintenance: { symbol: '‖', text: 'maintenance' },
  ok: { symbol: '✓', text: 'ok' },
  lagging: { symbol: '✕', text: 'lagging' },
  stopped: { symbol: '✕', text: 'stopped' },
  unreachable: { symbol: '✕', text: 'unreachable' },
};

@Component({
  selector: 'app-state-badge',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `<span class="badge" [attr.data-state]="state()"
    ><span aria-hidden="true">{{ label().symbol }}</span> {{ label().text }}</span
  >`,
})
export class StateBadge {
  readonly state = input.required<AnyState>();
  protected readonly label = computed(() => LABELS[this.state()]);
}
