/**
 * Real-browser end-to-end test of the alerts panel: an alert Alertmanager fires shows on the
 * dashboard (through the LB's internal/alerts), or one that should not be there is not.
 *
 * Env:
 *   LB_URL            the LB, e.g. http://10.254.0.121 (required)
 *   E2E_ALERT         the row to wait for, as its data-alert: "<alertname> <instance>", e.g.
 *                     "PiDown pi-web2" (an alert without an instance ends in a space)
 *   E2E_ALERT_S       how long it may take to show, the page polling every 2 s (default 60)
 *   E2E_SCREENSHOT    where to save a full-page PNG once the row shows (optional)
 *   E2E_ALERT_ABSENT  a data-alert value that must NOT be in the panel after a full refresh
 *   CHROME_BIN        Chromium (default /usr/bin/chromium; never downloaded)
 * One of E2E_ALERT and E2E_ALERT_ABSENT is required; each runs its own case.
 */
import { strict as assert } from 'node:assert';
import { Page } from 'playwright-core';
import { Browser, ConsoleEntry, launchChromium, watchConsole } from './browser';

const LB_URL = (process.env['LB_URL'] ?? '').replace(/\/+$/, '');
const ALERT = process.env['E2E_ALERT'];
const ABSENT = process.env['E2E_ALERT_ABSENT'];
const ALERT_MS = Number(process.env['E2E_ALERT_S'] ?? 60) * 1000;
const SCREENSHOT = process.env['E2E_SCREENSHOT'];
/** ?refresh=2: the page polls every 2 s, so an alert shows within 2 s of Alertmanager firing it. */
const PAGE_URL = `${LB_URL}/?refresh=2`;
const PANEL = '[data-panel="alerts"]';

const row = (key: string) => `${PANEL} [data-alert="${key.replace(/["\\]/g, '\\$&')}"]`;

/** The panel's text on one line, for failure messages. */
async function panelText(page: Page): Promise<string> {
  const panel = page.locator(PANEL);
  if ((await panel.count()) === 0) return '(no alerts panel on the page)';
  return (await panel.innerText()).replace(/\s+/g, ' ').trim();
}

/**
 * Console errors but the expected ones. Chromium logs "Failed to load resource" for every
 * non-2xx fetch: internal/alerts' 404 (monitoring off) is one, and so are the gateway errors
 * (502/503/504) of the status URL of the node the alert is about (PiDown's is down).
 */
function unexpectedErrors(errors: readonly ConsoleEntry[], instance: string | null): ConsoleEntry[] {
  const gateway = /^Failed to load resource: the server responded with a status of 50[234]\b/;
  const alertsOff = (e: ConsoleEntry) => e.url === `${LB_URL}/internal/alerts` && /status of 404\b/.test(e.text);
  const nodeDown = (e: ConsoleEntry) =>
    instance !== null && e.url.startsWith(`${LB_URL}/api/nodes/${encodeURIComponent(instance)}/`) && gateway.test(e.text);
  return errors.filter((e) => !alertsOff(e) && !nodeDown(e));
}

describe('alerts panel against the load balancer', function () {
  let browser: Browser | undefined;

  before(async function () {
    assert.ok(LB_URL, 'set LB_URL, e.g. LB_URL=http://10.254.0.121');
    assert.ok(ALERT || ABSENT, 'set E2E_ALERT (a row to wait for, e.g. "PiDown pi-web2") or E2E_ALERT_ABSENT (one that must not show)');
    browser = await launchChromium('dashboard-alerts-e2e-', { width: 1280, height: 900 });
  });

  after(async () => {
    await browser?.close();
  });

  it(`shows the alert "${ALERT ?? '$E2E_ALERT'}" with its severity and summary`, async function () {
    if (!ALERT) return this.skip();
    const page = await browser!.context.newPage();
    const { consoleErrors, pageErrors } = watchConsole(page);
    const t0 = Date.now();
    await page.goto(PAGE_URL, { waitUntil: 'domcontentloaded' });
    const el = page.locator(row(ALERT));
    try {
      await el.waitFor({ state: 'visible', timeout: ALERT_MS });
    } catch {
      assert.fail(`the row data-alert="${ALERT}" did not show within ${ALERT_MS / 1000} s; the alerts panel says: "${await panelText(page)}"`);
    }
    const shownMs = Date.now() - t0;

    // The word, not only the colour, and the same severity as the row's.
    const severity = await el.getAttribute('data-severity');
    const badge = el.locator('.badge');
    assert.ok(await badge.isVisible(), `${ALERT}: no visible severity badge`);
    assert.match(await badge.innerText(), new RegExp(`\\b${severity}\\b`, 'i'), `${ALERT}: the badge does not say ${severity}`);
    const summary = el.locator('.alert-summary');
    assert.ok(await summary.isVisible(), `${ALERT}: no visible summary`);
    assert.notEqual((await summary.innerText()).trim(), '', `${ALERT}: an empty summary`);
    assert.match(await el.locator('.alert-since').innerText(), /^since \d\d:\d\d \((\d+d \d+h|\d+h \d+m|\d+m \d+s|\d+s)\)$/);

    if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT, fullPage: true });
    // A long summary wraps on a phone rather than widening the page.
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `with the alert, the page is ${overflow}px wider than a 390px screen`);
    const space = ALERT.indexOf(' ');
    const instance = space < 0 ? null : ALERT.slice(space + 1) || null;
    assert.deepEqual(pageErrors, [], 'uncaught exceptions in the page');
    assert.deepEqual(unexpectedErrors(consoleErrors, instance), [], 'unexpected console errors');
    process.stdout.write(
      `      "${ALERT}" (${severity}: ${await summary.innerText()}) showed ${shownMs} ms after the page opened` +
        `${SCREENSHOT ? `; screenshot ${SCREENSHOT}` : ''}\n`,
    );
    await page.close();
  });

  it(`does not show the alert "${ABSENT ?? '$E2E_ALERT_ABSENT'}" after a full refresh`, async function () {
    if (!ABSENT) return this.skip();
    const page = await browser!.context.newPage();
    const { consoleErrors, pageErrors } = watchConsole(page);
    await page.goto(PAGE_URL, { waitUntil: 'domcontentloaded' });
    // The first answer, then one more: a whole poll of internal/alerts after the page had one.
    const checkedAt = (after: number) =>
      page.waitForFunction(
        ({ sel, t }: { sel: string; t: number }) => Number(document.querySelector(sel)?.getAttribute('data-checked-at') ?? 0) > t,
        { sel: PANEL, t: after },
        { timeout: 30_000 },
      );
    await checkedAt(0);
    const first = Number(await page.locator(PANEL).getAttribute('data-checked-at'));
    await checkedAt(first);
    const text = await panelText(page);
    assert.equal(await page.locator(row(ABSENT)).count(), 0, `the row data-alert="${ABSENT}" is in the alerts panel: "${text}"`);
    assert.deepEqual(pageErrors, [], 'uncaught exceptions in the page');
    assert.deepEqual(unexpectedErrors(consoleErrors, null), [], 'unexpected console errors');
    process.stdout.write(`      no "${ABSENT}" after a full refresh; the panel says: "${text}"\n`);
    await page.close();
  });
});
