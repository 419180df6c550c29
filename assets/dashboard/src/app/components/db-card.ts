import { ChangeDetectionStrategy, Component, input } from '@angular/core';
import { backupView } from '../data/backup';
import { formatDuration, formatNumber, formatOptional } from '../data/format';
import { formatReplication } from '../data/replica-state';
import { SEMI_SYNC_SYMBOL, semiSyncView } from '../data/semi-sync';
import { DbView } from '../data/types';
import { StateBadge } from './state-badge';

@Component({
  selector: 'app-db-card',
  imports: [StateBadge],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <article class="card" [attr.data-node]="db().name" data-role="db" [attr.data-state]="db().state">
      <header class="card-head">
        <h3>{{ db().name }} <small>database · {{ db().address }}</small></h3>
        <app-state-badge [state]="db().state" />
      </header>
      @if (db().reason) {
        <p class="reason">{{ db().reason }}</p>
      }
      @if (db().db; as d) {
        <dl class="facts">
          <dt>Reachable</dt><dd>{{ d.reachable ? 'yes' : 'no' }}</dd>
          <dt>Version</dt><dd>{{ d.version ?? '—' }}</dd>
          <dt>Uptime</dt><dd>{{ duration(d.uptimeSeconds) }}</dd>
          <dt>Connections</dt><dd>{{ num(d.connections) }}</dd>
          <dt>Queries/s</dt><dd>{{ num(d.queriesPerSecond, 1) }}</dd>
          <dt>Latency</dt><dd>{{ d.latencyMs === null || d.latencyMs === undefined ? '—' : num(d.latencyMs, 1) + ' ms' }}</dd>
          <dt>Replication</dt><dd data-field="replication">{{ replication(d.replication) }}</dd>
          @if (writes(d.replication); as w) {
            <dt>Writes</dt>
            <dd class="semisync" data-field="semiSync" [attr.data-semisync]="w.state" [attr.data-tone]="w.tone">{{ symbol[w.tone] }} {{ w.text }}</dd>
          }
          <dt>Last backup</dt>
          <dd data-field="lastBackup">
            @if (backup(d.lastBackup); as b) {
              <ul class="backups">
                @for (r of b.rows; track r.kind) {
                  <li [attr.data-kind]="r.kind" [attr.data-stale]="r.stale" [class.stale]="r.stale" [class.lagging]="r.lagging">{{ r.stale ? '✗' : r.lagging ? '!' : '✓' }} {{ r.kind }}: {{ r.text }}</li>
                }
                @for (p of b.problems; track p) {
                  <li class="stale" data-kind="problem">✗ {{ p }}</li>
                }
              </ul>
            } @else {
              {{ optional(d.lastBackup) }}
            }
          </dd>
        </dl>
        <p class="checked">as seen by {{ db().reportedBy }}</p>
      }
    </article>
  `,
})
export class DbCard {
  readonly db = input.required<DbView>();
  protected readonly num = formatNumber;
  protected readonly duration = formatDuration;
  protected readonly optional = formatOptional;
  protected readonly backup = backupView;
  protected readonly replication = formatReplication;
  protected readonly writes = semiSyncView;
  protected readonly symbol = SEMI_SYNC_SYMBOL;
}
