import { ChangeDetectionStrategy, Component, inject, OnInit } from '@angular/core';
import { ClusterService } from './cluster.service';
import { AlertsPanel } from './components/alerts-panel';
import { formatClock } from './data/format';
import { DbCard } from './components/db-card';
import { LbCard } from './components/lb-card';
import { OverallBanner } from './components/overall-banner';
import { ReplicaCard } from './components/replica-card';
import { WebNodeCard } from './components/web-node-card';

@Component({
  selector: 'app-root',
  imports: [OverallBanner, AlertsPanel, LbCard, WebNodeCard, DbCard, ReplicaCard],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <header class="top">
      <h1>pi-cluster</h1>
      <div class="controls">
        <p class="updated" data-testid="last-updated" [attr.data-last-updated]="cluster.lastUpdated()">
          Last update <time>{{ clock(cluster.lastUpdated()) }}</time> · every {{ cluster.refreshSeconds() }} s
        </p>
        <button type="button" class="refresh" (click)="cluster.refresh()" [attr.aria-busy]="cluster.refreshing()">
          Refresh now
        </button>
      </div>
    </header>
    <main>
      <app-overall-banner [overall]="cluster.overall()" />
      <app-alerts-panel [view]="cluster.alerts()" />
      <div class="grid">
        @if (cluster.lb(); as lb) {
          <app-lb-card [lb]="lb" [tls]="cluster.tls()" />
        }
        @for (node of cluster.webNodes(); track node.name) {
          <app-web-node-card [node]="node" [history]="cluster.histories().get(node.name) ?? []" />
        }
        @if (cluster.db(); as db) {
          <app-db-card [db]="db" />
        }
        @for (replica of cluster.replicas(); track replica.name) {
          <app-replica-card [replica]="replica" />
        }
      </div>
    </main>
  `,
})
export class App implements OnInit {
  protected readonly cluster = inject(ClusterService);
  protected readonly clock = formatClock;

  ngOnInit(): void {
    this.cluster.start();
  }
}
