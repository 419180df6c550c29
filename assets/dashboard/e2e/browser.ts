/**
 * What the real-browser tests share: system Chromium with the same flags, in a fresh profile,
 * and the page's console errors.
 *
 * Env: CHROME_BIN   Chromium (default /usr/bin/chromium; never downloaded)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BrowserContext, chromium, ConsoleMessage, Page } from 'playwright-core';

export const CHROME_BIN = process.env['CHROME_BIN'] ?? '/usr/bin/chromium';

/** Headless, no sandbox (root), and no traffic of Chromium's own. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Browser {
  context: BrowserContext;
  /** Closes Chromium and removes its profile. */
  close(): Promise<void>;
}

/** A fresh profile per run: no cache, cookies or service worker from an earlier run. */
export async function launchChromium(prefix: string, viewport?: { width: number; height: number }): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), prefix));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROME_BIN,
      headless: true,
      args: CHROMIUM_ARGS,
      ...(viewport ? { viewport } : {}),
    });
    return {
      context,
      close: async () => {
        await context.close();
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
}

export interface ConsoleEntry {
  at: number;
  type: string;
  text: string;
  url: string;
}

/** Records the page's console errors and uncaught exceptions into the arrays it returns. */
export function watchConsole(page: Page): { consoleErrors: ConsoleEntry[]; pageErrors: string[] } {
  const consoleErrors: ConsoleEntry[] = [];
  const pageErrors: string[] = [];
  page.on('console', (msg: ConsoleMessage) => {
    if (msg.type() === 'error') {
      consoleErrors.push({ at: Date.now(), type: msg.type(), text: msg.text(), url: msg.location().url });
    }
  });
  page.on('pageerror', (err) => pageErrors.push(String(err)));
  return { consoleErrors, pageErrors };
}

/** When (epoch ms) the page asked `url`, each request as it leaves, whatever its answer. */
export function watchRequests(page: Page, url: string): number[] {
  const asked: number[] = [];
  page.on('request', (r) => {
    if (r.url() === url) asked.push(Date.now());
  });
  return asked;
}
