/**
 * The dashboard's own polling under the stack's default /api/ limits: T tabs in one real
 * browser, from one address, refresh for a while, and no request of theirs gets 429.
 *
 * Env:
 *   LB_URL       the LB, e.g. http://10.254.0.121 (required)
 *   E2E_TABS     tabs (default 10: the bound README "The dashboard's bound" sizes for)
 *   E2E_POLL_S   how long they poll (default 120)
 *   CHROME_BIN   Chromium (default /usr/bin/chromium; never downloaded)
 *   E2E_OUTPUT   where polling-e2e.json goes (default <repo>/test-output)
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BrowserContext } from 'playwright-core';
import { Browser, launchChromium } from './browser';

const LB_URL = (process.env['LB_URL'] ?? '').replace(/\/+$/, '');
const TABS = Number(process.env['E2E_TABS'] ?? 10);
const POLL_MS = Number(process.env['E2E_POLL_S'] ?? 120) * 1000;
const OUTPUT = resolve(process.env['E2E_OUTPUT'] ?? resolve(__dirname, '../../../test-output'));

describe('dashboard polling under the default rate limits', function () {
  let browser: Browser | undefined;
  let context: BrowserContext;

  before(async () => {
    assert.ok(LB_URL, 'LB_URL is required');
    browser = await launchChromium('pi-dash-poll-');
    context = browser.context;
  });

  after(async () => {
    await browser?.close();
  });

  it(`gets no 429 in ${TABS} tabs over ${POLL_MS / 1000} s`, async () => {
    const statuses = new Map<number, number>();
    const limited: string[] = [];
    let api = 0;
    context.on('response', (r) => {
      if (!new URL(r.url()).pathname.startsWith('/api/')) return;
      api++;
      statuses.set(r.status(), (statuses.get(r.status()) ?? 0) + 1);
      if (r.status() === 429) limited.push(r.url());
    });
    const cluster = (await (await fetch(`${LB_URL}/cluster.json`)).json()) as { webServers: unknown[]; dashboard: { refreshSeconds: number } };
    const pages = await Promise.all(Array.from({ length: TABS }, () => context.newPage()));
    // All at once, the worst case for a burst: every tab's first refresh at the same moment.
    await Promise.all(pages.map((p) => p.goto(`${LB_URL}/`, { waitUntil: 'domcontentloaded' })));
    await new Promise((r) => setTimeout(r, POLL_MS));
    const perRefresh = 1 + cluster.webServers.length;
    const expected = TABS * perRefresh * Math.floor(POLL_MS / 1000 / cluster.dashboard.refreshSeconds);
    const figures = { tabs: TABS, seconds: POLL_MS / 1000, apiRequests: api, expectedAtLeast: expected, statuses: Object.fromEntries(statuses) };
    mkdirSync(OUTPUT, { recursive: true });
    writeFileSync(join(OUTPUT, 'polling-e2e.json'), JSON.stringify(figures, null, 2));
    process.stdout.write(`      ${JSON.stringify(figures)}\n`);
    // The tabs did poll, each refresh reaching /api/ (or the check could not fail).
    assert.ok(api >= expected, `only ${api} /api/ requests from ${TABS} tabs, expected at least ${expected}`);
    assert.deepEqual(limited, [], `${limited.length} requests got 429`);
  });
});
