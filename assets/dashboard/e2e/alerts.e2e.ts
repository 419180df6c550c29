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
 *   E2E_MONITORING_OFF  1: the LB's cluster.json says monitoring is off; the panel must say so
 *                     without the page ever asking internal/alerts
 *   LAB               with E2E_MONITORING_OFF, a command whose `monitoring on|off` turns the LB's
 *                     monitoring on and off (e2e/fixture/lab.mjs; lab/lab has none): the page must
 *                     then ask within a refresh of cluster.json saying on, and stop once it says off
 *   CHROME_BIN        Chromium (default /usr/bin/chromium; never downloaded)
 * One of E2E_ALERT, E2E_ALERT_ABSENT and E2E_MONITORING_OFF is required; each runs its own case.
 */
import { strict as assert } from 'node:assert';
import { Page } from 'playwright-core';
import { Browser, ConsoleEntry, launchChromium, watchConsole, watchRequests } from './browser';
import { runLab } from './lab';

const LB_URL = (process.env['LB_URL'] ?? '').replace(/\/+$/, '');
const ALERT = process.env['E2E_ALERT'];
const ABSENT = process.env['E2E_ALERT_ABSENT'];
const MONITORING_OFF = process.env['E2E_MONITORING_OFF'] === '1';
const LAB = process.env['LAB'];
const ALERT_MS = Number(process.env['E2E_ALERT_S'] ?? 60) * 1000;
const SCREENSHOT = process.env['E2E_SCREENSHOT'];
/** ?refresh=2: the page polls every 2 s, so an alert shows within 2 s of Alertmanager firing it. */
const PAGE_URL = `${LB_URL}/?refresh=2`;
const ALERTS_URL = `${LB_URL}/internal/alerts`;
const PANEL = '[data-panel="alerts"]';
const BANNER = '[data-testid="banner"]';

const row = (key: string) => `${PANEL} [data-alert="${key.replace(/["\\]/g, '\\$&')}"]`;

/** The panel's text on one line, for failure messages. */
async function panelText(page: Page): Promise<string> {
  const panel = page.locator(PANEL);
  if ((await panel.count()) === 0) return '(no alerts panel on the page)';
  return (await panel.innerText()).replace(/\s+/g, ' ').trim();
}

/**
 * Waits for the panel's next `n` answers (its data-checked-at, which the page sets each round:
 * from internal/alerts, or from cluster.json while that says monitoring is off).
 */
async function rounds(page: Page, n: number): Promise<void> {
  const checkedAt = async () => Number((await page.locator(PANEL).getAttribute('data-checked-at')) ?? 0);
  for (let i = 0, at = await checkedAt(); i < n; i++, at = await checkedAt()) {
    await page.waitForFunction(
      ({ sel, t }: { sel: string; t: number }) => Number(document.querySelector(sel)?.getAttribute('data-checked-at') ?? 0) > t,
      { sel: PANEL, t: at },
      { timeout: 30_000 },
    );
  }
}

/** Waits, within 30 s, for the panel's data-kind (off, ok, unavailable). */
async function panelKind(page: Page, kind: string): Promise<void> {
  await page
    .waitForFunction(({ sel, k }: { sel: string; k: string }) => document.querySelector(sel)?.getAttribute('data-kind') === k, { sel: PANEL, k: kind }, { timeout: 30_000 })
    .catch(async () => assert.fail(`the alerts panel is not "${kind}" after 30 s; it says: "${await panelText(page)}"`));
}

/**
 * Console errors but the expected ones. Chromium logs "Failed to load resource" for every
 * non-2xx fetch: the gateway errors (502/503/504) of the status URL of the node the alert is
 * about (PiDown's is down) are expected, and internal/alerts' 404 (monitoring off) from a load
 * balancer whose cluster.json does not say whether monitoring is on (rendered before the field):
 * any other asks internal/alerts only with monitoring on.
 */
function unexpectedErrors(errors: readonly ConsoleEntry[], instance: string | null, oldLb: boolean): ConsoleEntry[] {
  const gateway = /^Failed to load resource: the server responded with a status of 50[234]\b/;
  const alertsOff = (e: ConsoleEntry) => oldLb && e.url === ALERTS_URL && /status of 404\b/.test(e.text);
  const nodeDown = (e: ConsoleEntry) =>
    instance !== null && e.url.startsWith(`${LB_URL}/api/nodes/${encodeURIComponent(instance)}/`) && gateway.test(e.text);
  return errors.filter((e) => !alertsOff(e) && !nodeDown(e));
}

describe('alerts panel against the load balancer', function () {
  let browser: Browser | undefined;
  /** cluster.json's `monitoring`: absent from a load balancer rendered before the field. */
  let monitoring: { enabled: boolean } | undefined;
  let monitoringFlipped = false;

  before(async function () {
    assert.ok(LB_URL, 'set LB_URL, e.g. LB_URL=http://10.254.0.121');
    assert.ok(
      ALERT || ABSENT || MONITORING_OFF,
      'set E2E_ALERT (a row to wait for, e.g. "PiDown pi-web2"), E2E_ALERT_ABSENT (one that must not show) or E2E_MONITORING_OFF=1',
    );
    const res = await fetch(`${LB_URL}/cluster.json`);
    assert.equal(res.status, 200, `${LB_URL}/cluster.json answered ${res.status}`);
    ({ monitoring } = (await res.json()) as { monitoring?: { enabled: boolean } });
    browser = await launchChromium('dashboard-alerts-e2e-', { width: 1280, height: 900 });
  });

  after(async () => {
    // Leave the stand-in as we found it even when a step failed half-way.
    if (monitoringFlipped) await runLab(LAB!, 'monitoring', 'off').catch((err) => console.error(`turning monitoring off failed: ${err}`));
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

    // A critical alert makes the banner degraded (or leaves it down), with a line that counts
    // the critical alerts and names the first few; a warning alone leaves it to the nodes.
    if (severity === 'critical') {
      await page
        .waitForFunction(
          (sel: string) => {
            const b = document.querySelector(sel);
            return ['degraded', 'down'].includes(b?.getAttribute('data-state') ?? '') && /\d+ critical alerts?: /.test(b?.textContent ?? '');
          },
          BANNER,
          { timeout: 15_000 },
        )
        .catch(async () => assert.fail(`${ALERT} is critical, but the banner says: "${(await page.locator(BANNER).innerText()).replace(/\s+/g, ' ')}"`));
      const line = await page.locator(`${BANNER} li`, { hasText: / critical alerts?: / }).innerText();
      assert.ok(line.includes(ALERT.trim()) || / and \d+ more$/.test(line), `the banner's line "${line}" does not name ${ALERT}`);
    }

    if (SCREENSHOT) await page.screenshot({ path: SCREENSHOT, fullPage: true });
    // A long summary wraps on a phone rather than widening the page.
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `with the alert, the page is ${overflow}px wider than a 390px screen`);
    const space = ALERT.indexOf(' ');
    const instance = space < 0 ? null : ALERT.slice(space + 1) || null;
    assert.deepEqual(pageErrors, [], 'uncaught exceptions in the page');
    assert.deepEqual(unexpectedErrors(consoleErrors, instance, monitoring === undefined), [], 'unexpected console errors');
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
    await rounds(page, 2);
    const text = await panelText(page);
    assert.equal(await page.locator(row(ABSENT)).count(), 0, `the row data-alert="${ABSENT}" is in the alerts panel: "${text}"`);
    assert.deepEqual(pageErrors, [], 'uncaught exceptions in the page');
    assert.deepEqual(unexpectedErrors(consoleErrors, null, monitoring === undefined), [], 'unexpected console errors');
    process.stdout.write(`      no "${ABSENT}" after a full refresh; the panel says: "${text}"\n`);
    await page.close();
  });

  it(`says "Monitoring is off" without ever asking internal/alerts while cluster.json says so${LAB ? ', and asks once it says on' : ''}`, async function () {
    if (!MONITORING_OFF) return this.skip();
    assert.deepEqual(monitoring, { enabled: false }, `${LB_URL}/cluster.json's "monitoring" is not {"enabled": false}`);
    const page = await browser!.context.newPage();
    const { consoleErrors, pageErrors } = watchConsole(page);
    const asked = watchRequests(page, ALERTS_URL);
    await page.goto(PAGE_URL, { waitUntil: 'domcontentloaded' });
    // Three rounds, each of which re-read cluster.json.
    await rounds(page, 3);
    assert.equal(await page.locator(PANEL).getAttribute('data-kind'), 'off');
    assert.equal(await page.locator(`${PANEL} .alerts-note`).innerText(), 'Monitoring is off');
    assert.deepEqual(asked, [], `the page asked internal/alerts ${asked.length} times in 3 rounds`);
    assert.deepEqual(pageErrors, [], 'uncaught exceptions in the page');
    assert.deepEqual(consoleErrors, [], 'console errors (internal/alerts\'s 404 is one, were it asked)');
    process.stdout.write(`      3 rounds, "Monitoring is off", internal/alerts asked ${asked.length} times\n`);
    if (!LAB) return page.close();

    // An `up` turns monitoring on: the round that reads it in cluster.json asks, and shows the alerts.
    const onAt = Date.now();
    monitoringFlipped = true;
    await runLab(LAB, 'monitoring', 'on');
    await panelKind(page, 'ok');
    assert.ok(asked.length > 0, 'the panel shows alerts, but the page never asked internal/alerts');
    process.stdout.write(`      monitoring on: asked ${asked[0] - onAt} ms after, "${await panelText(page)}"\n`);
    // And off again: the round that reads that asks no more, nor do the next two.
    await runLab(LAB, 'monitoring', 'off');
    monitoringFlipped = false;
    await panelKind(page, 'off');
    const offAt = Date.now();
    const askedWhileOn = asked.length;
    await rounds(page, 2);
    assert.equal(asked.length, askedWhileOn, `the page asked internal/alerts ${asked.length - askedWhileOn} times after cluster.json said off`);
    assert.deepEqual(pageErrors, [], 'uncaught exceptions in the page');
    // A round that read cluster.json just before the switch may still ask, and get the 404.
    const raced = (e: ConsoleEntry) => e.url === ALERTS_URL && /status of 404\b/.test(e.text) && e.at <= offAt;
    assert.deepEqual(consoleErrors.filter((e) => !raced(e)), [], 'console errors');
    await page.close();
  });
});
