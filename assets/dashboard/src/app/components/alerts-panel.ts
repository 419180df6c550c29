import { ChangeDetectionStrategy, Component, computed, input } from '@angular/core';
import { alertKey, AlertsView, formatSince } from '../data/alerts';

/** Colour is never the only signal: each severity has a symbol and its word. */
const SEVERITY_SYMBOL: Readonly<Record<string, string>> = { critical: '✕', warning: '!' };

/** Alertmanager's firing alerts through the LB's internal/alerts, right under the banner. */
@Component({
  selector: 'app-alerts-panel',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <section class="alerts" data-panel="alerts" aria-labelledby="alerts-title"
      [attr.data-kind]="view()?.kind ?? 'pending'" [attr.data-worst]="worst()" [attr.data-checked-at]="view()?.at">
      <h2 id="alerts-title" class="alerts-title">
        Alerts
        @if (count(); as n) {
          <small>{{ n }} firing</small>
        }
      </h2>
      @switch (view()?.kind) {
        @case ('off') {
          <p class="alerts-note">Monitoring is off</p>
        }
        @case ('unavailable') {
          <p class="alerts-note">Alerts unavailable: {{ reason() }}</p>
        }
        @case ('ok') {
          @if (rows().length === 0) {
            <p class="alerts-note">No alerts firing</p>
          } @else {
            <ul class="alert-list">
              @for (a of rows(); track key(a)) {
                <li class="alert" [attr.data-alert]="key(a)" [attr.data-severity]="a.severity">
                  <span class="badge" [attr.data-severity]="a.severity"
                    ><span aria-hidden="true">{{ symbol(a.severity) }}</span> {{ a.severity }}</span
                  >
                  <strong class="alert-name">{{ a.name }}</strong>
                  @if (a.instance) {
                    <span class="alert-instance">{{ a.instance }}</span>
                  }
                  @if (a.summary) {
                    <span class="alert-summary">{{ a.summary }}</span>
                  }
                  <time class="alert-since" [attr.datetime]="iso(a.startsAt)">{{ since(a.startsAt) }}</time>
                </li>
              }
            </ul>
          }
        }
        @default {
          <p class="alerts-note">Checking…</p>
        }
      }
    </section>
  `,
})
export class AlertsPanel {
  readonly view = input.required<AlertsView | null>();
  protected readonly key = alertKey;
  protected readonly rows = computed(() => {
    const v = this.view();
    return v?.kind === 'ok' ? v.alerts : [];
  });
  protected readonly count = computed(() => this.rows().length);
  /** The first row's severity (they come sorted), for the panel's edge colour. */
  protected readonly worst = computed(() => this.rows()[0]?.severity ?? null);
  protected readonly reason = computed(() => {
    const v = this.view();
    return v?.kind === 'unavailable' ? v.reason : '';
  });

  protected symbol(severity: string): string {
    return SEVERITY_SYMBOL[severity] ?? 'i';
  }

  protected since(startsAt: number): string {
    return formatSince(startsAt, this.view()?.at ?? startsAt);
  }

  protected iso(ms: number): string {
    return new Date(ms).toISOString();
  }
}
