import { ChangeDetectionStrategy, Component, computed, input } from '@angular/core';
import { HISTORY_LENGTH } from '../data/history';
import { sparklineGeometry } from '../data/sparkline';
import { Sample } from '../data/types';

const WIDTH = 160;
const HEIGHT = 36;

/** Hand-drawn SVG response-time chart: no chart library, to keep the bundle small. */
@Component({
  selector: 'app-sparkline',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <svg class="sparkline" [attr.viewBox]="'0 0 ' + width + ' ' + height" role="img" [attr.aria-label]="summary()">
      <line class="axis" x1="0" [attr.y1]="height - 1" [attr.x2]="width" [attr.y2]="height - 1" />
      @for (d of geometry().paths; track $index) {
        <path class="line" [attr.d]="d" />
      }
      @for (p of geometry().dots; track $index) {
        <circle class="dot" [attr.cx]="p.x" [attr.cy]="p.y" r="1.8" />
      }
      @for (x of geometry().failures; track $index) {
        <path class="fail" [attr.d]="'M' + (x - 2.5) + ' ' + (height - 8) + ' l5 5 m0 -5 l-5 5'" />
      }
    </svg>
    <span class="spark-caption">{{ caption() }}</span>
  `,
})
export class Sparkline {
  readonly samples = input.required<readonly Sample[]>();
  protected readonly width = WIDTH;
  protected readonly height = HEIGHT;
  protected readonly geometry = computed(() => sparklineGeometry(this.samples(), WIDTH, HEIGHT, HISTORY_LENGTH, 3));

  protected readonly caption = computed(() => {
    const ok = this.samples().filter((s) => s.ms !== null).map((s) => s.ms as number);
    const failed = this.samples().length - ok.length;
    if (this.samples().length === 0) return 'no samples yet';
    const range = ok.length ? `${Math.min(...ok)}–${Math.max(...ok)} ms` : 'no answers';
    return `last ${this.samples().length}: ${range}${failed ? `, ${failed} failed` : ''}`;
  });

  protected readonly summary = computed(() => `Response time history, ${this.caption()}`);
}
