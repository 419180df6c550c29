import { ChangeDetectionStrategy, Component, computed, input } from '@angular/core';
import { formatMaintenance } from '../data/format';
import { Overall } from '../data/types';
import { StateBadge } from './state-badge';

@Component({
  selector: 'app-overall-banner',
  imports: [StateBadge],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <section class="banner" [attr.data-state]="overall().state" role="status" aria-live="polite" data-testid="banner">
      <h2 class="banner-title">Cluster <app-state-badge [state]="overall().state" /></h2>
      <ul class="reasons">
        @for (r of overall().reasons; track r) {
          <li>{{ r }}</li>
        }
      </ul>
      @if (maintenance()) {
        <p class="banner-maintenance" data-testid="banner-maintenance">
          <span aria-hidden="true">‖</span> {{ maintenance() }}
        </p>
      }
    </section>
  `,
})
export class OverallBanner {
  readonly overall = input.required<Overall>();
  protected readonly maintenance = computed(() => formatMaintenance(this.overall().maintenance));
}
