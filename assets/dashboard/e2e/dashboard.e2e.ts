/**
 * Real-browser end-to-end test of the dashboard behind the load balancer.
 *
 * Env:
 *   LB_URL        the LB, e.g. http://10.254.0.121 (required)
 *   LAB           the lab command (default ../../lab/lab from the dashboard dir)
 *   E2E_NODE      the web server to stop and start (default pi-web2); one in service
 *
 * A web server that cluster.json marks `"maintenance": true` (cordoned) must show as in
 * maintenance, whatever its status URL says, and never count against the banner. A firing
 * critical alert does count (the banner is degraded while one fires): run it with none.
 * With cluster.json's `monitoring.enabled` false, the page must never ask internal/alerts.
 *   E2E_DOWN_S    how long the dashboard may take to show it down (default 20)
 *   E2E_UP_S      how long it may take to come back after `start` (default 90: boot + PM2)
 *   E2E_REPLICA   the read replica to flip (default the first the web servers report). Its cases
 *                 run only when the web servers report read replicas (db.replication), and put it
 *                 in a state with `$LAB replica NAME stopped|lagging|healthy`, which
 *                 e2e/fixture/lab.mjs does (start the stand-in with FIXTURE_REPLICAS=1); it
 *                 must turn red, and green again, within E2E_DOWN_S, as a stopped node does.
 *   CHROME_BIN    Chromium (default /usr/bin/chromium; never downloaded)
 *   E2E_OUTPUT    screenshots and timings (default /work/main/test-output, i.e. <repo>/test-output)
 */
import { strict as assert } from 'node:assert';
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Page } from 'playwright-core';
import { Browser, ConsoleEntry, launchChromium, watchConsole, watchRequests } from './browser';
import { runLab } from './lab';

const DASHBOARD_DIR = resolve(__dirname, '..');
const LB_URL = (process.env['LB_URL'] ?? '').replace(/\/+$/, '');
const LAB = resolve(DASHBOARD_DIR, process.env['LAB'] ?? '../../lab/lab');
const NODE = process.env['E2E_NODE'] ?? 'pi-web2';
const DOWN_MS = Number(process.env['E2E_DOWN_S'] ?? 20) * 1000;
const UP_MS = Number(process.env['E2E_UP_S'] ?? 90) * 1000;
const REPLICA_ENV = process.env['E2E_REPLICA'];
const OUTPUT = resolve(process.env['E2E_OUTPUT'] ?? resolve(DASHBOARD_DIR, '../../test-output'));

interface ClusterJson {
  loadBalancer: { name: string };
  webServers: { name: string; maintenance?: boolean }[];
  database: { name: string };
  /** Absent from a load balancer rendered before the field. */
  monitoring?: { enabled: boolean };
}

const card = (name: string) => `article[data-node="${name}"]`;

async function state(page: Page, selector: string): Promise<string | null> {
  return page.locator(selector).getAttribute('data-state');
}

const lab = (...args: string[]) => runLab(LAB, ...args);

/** The read replicas a web server reports (db.replication.replicas), in config order; none without. */
async function reportedReplicas(web: string): Promise<string[]> {
  const res = await fetch(`${LB_URL}/api/nodes/${encodeURIComponent(web)}/internal/status`);
  assert.equal(res.status, 200, `${web}'s status answered ${res.status}`);
  const body = (await res.json()) as { db: { replication: { replicas: { name: string }[] } | null } };
  return body.db.replication?.replicas.map((r) => r.name) ?? [];
}

/** Flips a replica with the lab, then waits for its card's colour and word and the banner's state; returns ms since the flip. */
async function flipReplica(page: Page, replica: string, to: string, want: { card: string; replica: string; banner: string }): Promise<number> {
  const t0 = Date.now();
  await lab('replica', replica, to);
  await page.waitForFunction(
    ({ n, w }: { n: string; w: { card: string; replica: string; banner: string } }) => {
      const el = document.querySelector(`article[data-role="replica"][data-node="${n}"]`);
      return (
        el?.getAttribute('data-state') === w.card &&
        el.getAttribute('data-replica') === w.replica &&
        document.querySelector('[data-testid="banner"]')?.getAttribute('data-state') === w.banner
      );
    },
    { n: replica, w: want },
    { timeout: DOWN_MS },
  );
  return Date.now() - t0;
}

/** Waits, within DOWN_MS, until the replica card's read-set field says `text` (every web server agreeing). */
async function readSetBecomes(page: Page, replica: string, text: string): Promise<void> {
  await page
    .waitForFunction(
      ({ sel, t }: { sel: string; t: string }) => document.querySelector(sel)?.textContent?.trim() === t,
      { sel: `${card(replica)} [data-field="readSet"]`, t: text },
      { timeout: DOWN_MS },
    )
    .catch(async () => {
      assert.equal(await page.locator(`${card(replica)} [data-field="readSet"]`).innerText(), text, `${replica}'s read set after ${DOWN_MS} ms`);
    });
}

/**
 * Waits, within DOWN_MS, until the database card's "Writes" line is in semi-sync `state` (it
 * follows the primary's probe, which each web server caches for STATUS_CACHE_MS); returns its text.
 */
async function semiSyncBecomes(page: Page, db: string, state: string): Promise<string> {
  const sel = `${card(db)} [data-field="semiSync"]`;
  await page
    .waitForFunction(({ sel, st }: { sel: string; st: string }) => document.querySelector(sel)?.getAttribute('data-semisync') === st, { sel, st: state }, { timeout: DOWN_MS })
    .catch(async () => assert.equal(await page.locator(sel).getAttribute('data-semisync'), state, `${db}'s semi-sync after ${DOWN_MS} ms: ${await page.locator(sel).innerText()}`));
  return page.locator(sel).innerText();
}

describe('dashboard against the load balancer', function () {
  let browser: Browser | undefined;
  let page: Page;
  let cluster: ClusterJson;
  let others: string[];
  let inService: string[];
  let inMaintenance: string[];
  let replicas: string[];
  let replica: string | undefined;
  let nodeStopped = false;
  let replicaFlipped = false;
  let consoleErrors: ConsoleEntry[] = [];
  let pageErrors: string[] = [];
  let alertsAsked: number[] = [];
  const timings: Record<string, number> = {};

  before(async function () {
    mkdirSync(OUTPUT, { recursive: true });
    assert.ok(LB_URL, 'set LB_URL, e.g. LB_URL=http://10.254.0.121');
    try {
      accessSync(LAB, constants.X_OK);
    } catch {
      assert.fail(`LAB=${LAB} is not an executable file; set LAB to the lab command`);
    }
    const res = await fetch(`${LB_URL}/cluster.json`);
    assert.equal(res.status, 200, `${LB_URL}/cluster.json answered ${res.status}`);
    cluster = (await res.json()) as ClusterJson;
    const names = cluster.webServers.map((w) => w.name);
    assert.ok(names.includes(NODE), `${NODE} is not in cluster.json (${names.join(', ')})`);
    inService = cluster.webServers.filter((w) => w.maintenance !== true).map((w) => w.name);
    inMaintenance = cluster.webServers.filter((w) => w.maintenance === true).map((w) => w.name);
    assert.ok(inService.includes(NODE), `${NODE} is in maintenance in cluster.json; set E2E_NODE to one of ${inService.join(', ')}`);
    others = inService.filter((n) => n !== NODE);

    browser = await launchChromium('dashboard-e2e-', { width: 1280, height: 900 });
    page = browser.context.pages()[0] ?? (await browser.context.newPage());
    ({ consoleErrors, pageErrors } = watchConsole(page));
    alertsAsked = watchRequests(page, `${LB_URL}/internal/alerts`);
  });

  after(async function () {
    // Leave the lab as we found it even when a step failed half-way.
    if (nodeStopped) await lab('start', NODE).catch((err) => console.error(`restart of ${NODE} failed: ${err}`));
    if (replicaFlipped && replica) {
      await lab('replica', replica, 'healthy').catch((err) => console.error(`making ${replica} healthy failed: ${err}`));
    }
    await browser?.close();
    writeFileSync(
      join(OUTPUT, 'dashboard-e2e.json'),
      JSON.stringify({ lbUrl: LB_URL, node: NODE, replica: replica ?? null, timings, consoleErrors, pageErrors }, null, 2) + '\n',
    );
    console.log(`      timings (ms): ${JSON.stringify(timings)}`);
  });

  it('renders every node up (or in maintenance where cluster.json says so) and every read replica ok, with a healthy banner', async function () {
    const t0 = Date.now();
    await page.goto(`${LB_URL}/`, { waitUntil: 'domcontentloaded' });
    await page.locator('[data-testid="banner"]').waitFor({ timeout: 15_000 });
    timings['firstRenderMs'] = Date.now() - t0;
    await page.waitForFunction(
      ({ up, maintenance }: { up: string[]; maintenance: string[] }) => {
        const state = (n: string) => document.querySelector(`article[data-node="${n}"]`)?.getAttribute('data-state');
        return up.every((n) => state(n) === 'up') && maintenance.every((n) => state(n) === 'maintenance');
      },
      { up: inService, maintenance: inMaintenance },
      { timeout: 30_000 },
    );
    timings['allNodesUpMs'] = Date.now() - t0;

    // Asked once the web servers answer (the first may be booting when the run starts).
    replicas = await reportedReplicas(inService[0]);
    replica = REPLICA_ENV ?? replicas[0];
    if (REPLICA_ENV) {
      assert.ok(replicas.includes(REPLICA_ENV), `E2E_REPLICA=${REPLICA_ENV} is not among the replicas ${inService[0]} reports (${replicas.join(', ') || 'none'})`);
    }
    await page.waitForFunction(
      (names: string[]) =>
        names.every((n) => document.querySelector(`article[data-role="replica"][data-node="${n}"]`)?.getAttribute('data-state') === 'up'),
      replicas,
      { timeout: 15_000 },
    );

    await page.waitForFunction(
      () => document.querySelector('[data-testid="banner"]')?.getAttribute('data-state') === 'healthy',
      undefined,
      { timeout: 15_000 },
    );
    assert.equal(await state(page, card(cluster.loadBalancer.name)), 'up');
    assert.equal(await state(page, card(cluster.database.name)), 'up');
    // The word, not only the colour.
    for (const n of inService) assert.match(await page.locator(`${card(n)} .card-head .badge`).innerText(), /up/i);
    for (const n of inMaintenance) {
      assert.match(await page.locator(`${card(n)} .card-head .badge`).innerText(), /maintenance/i);
    }
    assert.match(await page.locator('[data-testid="banner"] .badge').innerText(), /healthy/i);
    // One card per replica, in config order, and none (the database card as before) without.
    const replicaCards = page.locator('article[data-role="replica"]');
    assert.deepEqual(await replicaCards.evaluateAll((els) => els.map((e) => e.getAttribute('data-node'))), replicas);
    for (const r of replicas) assert.match(await page.locator(`${card(r)} .card-head .badge`).innerText(), /ok/i);
    if (replicas.length === 0) {
      assert.equal(await page.locator(`${card(cluster.database.name)} [data-field="replication"]`).innerText(), 'not configured');
      assert.equal(await page.locator(`${card(cluster.database.name)} [data-field="semiSync"]`).count(), 0);
    } else {
      // Every replica acks: each write is on a replica before the database answers it.
      const n = replicas.length;
      assert.equal(await semiSyncBecomes(page, cluster.database.name, 'protected'), `✓ protected: a replica acks each write (${n} of ${n} ${n === 1 ? 'replica' : 'replicas'} acking)`);
    }
    const banner = page.locator('[data-testid="banner-maintenance"]');
    if (inMaintenance.length === 0) assert.equal(await banner.count(), 0);
    else assert.match(await banner.innerText(), new RegExp(`${inMaintenance.length} servers? in maintenance: ${inMaintenance.join(', ')}`));
    await page.screenshot({ path: join(OUTPUT, 'dashboard-1-all-up.png'), fullPage: true });
  });

  it('refreshes from the keyboard', async function () {
    const before = Number(await page.locator('[data-testid="last-updated"]').getAttribute('data-last-updated'));
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent?.trim()), 'Refresh now');
    await page.waitForTimeout(50);
    await page.keyboard.press('Enter');
    await page.waitForFunction(
      (b: number) => Number(document.querySelector('[data-testid="last-updated"]')?.getAttribute('data-last-updated')) > b,
      before,
      { timeout: 5_000 },
    );
  });

  it('fits a phone screen without sideways scrolling', async function () {
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await page.screenshot({ path: join(OUTPUT, 'dashboard-1-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
    assert.ok(overflow <= 0, `page is ${overflow}px wider than a 390px screen`);
  });

  it(`shows ${NODE} down and the banner degraded while the others keep updating`, async function () {
    const stoppedAt = Date.now();
    nodeStopped = true;
    await lab('stop', NODE);
    await page.waitForFunction(
      (n: string) =>
        document.querySelector(`article[data-node="${n}"]`)?.getAttribute('data-state') === 'down' &&
        document.querySelector('[data-testid="banner"]')?.getAttribute('data-state') === 'degraded',
      NODE,
      { timeout: DOWN_MS },
    );
    timings['downShownMs'] = Date.now() - stoppedAt;
    assert.match(await page.locator(`${card(NODE)} .card-head .badge`).innerText(), /down/i);
    assert.match(await page.locator('[data-testid="banner"]').innerText(), new RegExp(`${NODE} is down`));

    // The others were checked after the stop and are still up: a dead node holds nobody up.
    await page.waitForFunction(
      ({ names, since }: { names: string[]; since: number }) =>
        names.every((n) => {
          const el = document.querySelector(`article[data-node="${n}"]`);
          return el?.getAttribute('data-state') === 'up' && Number(el.getAttribute('data-checked-at')) > since;
        }),
      { names: others, since: stoppedAt },
      { timeout: DOWN_MS },
    );
    await page.screenshot({ path: join(OUTPUT, 'dashboard-2-node-down.png'), fullPage: true });
  });

  it(`shows ${NODE} up again after it boots`, async function () {
    const startedAt = Date.now();
    await lab('start', NODE);
    nodeStopped = false;
    await page.waitForFunction(
      (n: string) =>
        document.querySelector(`article[data-node="${n}"]`)?.getAttribute('data-state') === 'up' &&
        document.querySelector('[data-testid="banner"]')?.getAttribute('data-state') === 'healthy',
      NODE,
      { timeout: UP_MS, polling: 500 },
    );
    timings['upAgainMs'] = Date.now() - startedAt;
    await page.screenshot({ path: join(OUTPUT, 'dashboard-3-node-back.png'), fullPage: true });
  });

  it('turns a read replica red within one refresh when it stops replicating, and green again', async function () {
    if (!replica) return this.skip();
    const r = replica;
    replicaFlipped = true;
    const t0 = Date.now();
    timings['replicaStoppedShownMs'] = await flipReplica(page, r, 'stopped', { card: 'down', replica: 'stopped', banner: 'degraded' });
    assert.match(await page.locator(`${card(r)} .card-head .badge`).innerText(), /stopped/i);
    assert.match(await page.locator(`${card(r)} .reason`).innerText(), /\bIO (and SQL )?threads? not running/);
    // Each web server reports its own read set from its own status, which it caches for a
    // moment (STATUS_CACHE_MS): the card can be red from one server's fresh view while another
    // still says "in the read set". Every server's must follow within the same bound.
    await readSetBecomes(page, r, 'no');
    assert.match(await page.locator(`${card(r)} [data-field="lag"]`).innerText(), /^— \(bound \d+ s\)$/);
    // Degraded, not down: the banner names the replica, and every web server stays up.
    assert.match(await page.locator('[data-testid="banner"]').innerText(), new RegExp(`replica ${r} is stopped`));
    for (const n of inService) assert.equal(await state(page, card(n)), 'up');
    // Its IO thread stopped, it acks nothing: with no other replica writes are unprotected (red,
    // and in the banner), else protected by fewer replicas (amber).
    const db = cluster.database.name;
    if (replicas.length === 1) {
      assert.match(await semiSyncBecomes(page, db, 'unprotected'), /^✗ unprotected: no replica acknowledged, new writes are on the database alone$/);
      assert.match(await page.locator('[data-testid="banner"]').innerText(), new RegExp(`writes to ${db} unprotected: no replica acknowledged`));
    } else {
      assert.match(await semiSyncBecomes(page, db, 'partial'), new RegExp(`^! protected: a replica acks each write \\(${replicas.length - 1} of ${replicas.length} replicas acking\\)$`));
    }
    timings['replicaStoppedSemiSyncShownMs'] = Date.now() - t0;
    await page.screenshot({ path: join(OUTPUT, 'dashboard-4-replica-stopped.png'), fullPage: true });

    timings['replicaBackMs'] = await flipReplica(page, r, 'healthy', { card: 'up', replica: 'ok', banner: 'healthy' });
    replicaFlipped = false;
    await readSetBecomes(page, r, 'yes');
    await semiSyncBecomes(page, db, 'protected');
  });

  it('turns a read replica red within one refresh when its lag goes over the bound', async function () {
    if (!replica) return this.skip();
    const r = replica;
    replicaFlipped = true;
    timings['replicaLaggingShownMs'] = await flipReplica(page, r, 'lagging', { card: 'down', replica: 'lagging', banner: 'degraded' });
    assert.match(await page.locator(`${card(r)} .card-head .badge`).innerText(), /lagging/i);
    const [lag, bound] = (await page.locator(`${card(r)} [data-field="lag"]`).innerText()).match(/\d+/g)!.map(Number);
    assert.ok(lag > bound, `the card shows a lag of ${lag} s, not over its ${bound} s bound`);
    await page.screenshot({ path: join(OUTPUT, 'dashboard-5-replica-lagging.png'), fullPage: true });

    timings['replicaLagBackMs'] = await flipReplica(page, r, 'healthy', { card: 'up', replica: 'ok', banner: 'healthy' });
    replicaFlipped = false;
  });

  it('logged no console errors but the stopped node\'s failed status requests, and never asked internal/alerts with monitoring off', function () {
    // Chromium logs "Failed to load resource: the server responded with a status of 502 (Bad
    // Gateway)" for every non-2xx fetch, and the app cannot suppress it. That is expected only
    // for the status URLs of NODE and of servers in maintenance (one may be cordoned because it
    // is dead), and only as a gateway error from nginx (502/503/504); anything else (another
    // URL, another status, any uncaught exception) fails the test. With monitoring off the
    // dashboard does not ask internal/alerts at all; only a load balancer whose cluster.json
    // does not say (rendered before the field) is asked, and answers 404 MONITORING_OFF.
    const nodeUrls = [NODE, ...inMaintenance].map((n) => `${LB_URL}/api/nodes/${n}/`);
    const expected = /^Failed to load resource: the server responded with a status of 50[234]\b/;
    const oldLb = cluster.monitoring === undefined;
    const alertsOff = (e: ConsoleEntry) => oldLb && e.url === `${LB_URL}/internal/alerts` && /status of 404\b/.test(e.text);
    const unexpected = consoleErrors.filter((e) => !(nodeUrls.some((u) => e.url.startsWith(u)) && expected.test(e.text)) && !alertsOff(e));
    assert.deepEqual(pageErrors, [], 'uncaught exceptions in the page');
    assert.deepEqual(unexpected, [], 'unexpected console errors');
    if (cluster.monitoring?.enabled === false) {
      assert.equal(alertsAsked.length, 0, `cluster.json says monitoring is off, yet the page asked internal/alerts ${alertsAsked.length} times`);
    }
  });
});
