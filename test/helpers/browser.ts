// The browser the console's end-to-end tests drive: Debian's chromium through playwright-core (no
// browser download). A test that needs it fails when it is missing; it never skips (.ci/run installs it).
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

const CHROMIUM = process.env.KDS_CHROMIUM ?? '/usr/bin/chromium';

interface TestLike {
  teardown(fn: () => void | Promise<void>): void;
}

/** One headless chromium per test file (launching is the expensive part), closed at teardown. */
export async function launchBrowser(t: TestLike): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `chromium not found at ${CHROMIUM}: apt-get install -y chromium (browser tests never skip)`,
    );
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
  t.teardown(() => browser.close());
  return browser;
}

/** A 1280x720 page that records console errors, failed requests, CSP violations and dialogs. */
export async function openPage(browser: Browser, url: string): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !/EventSource|ERR_CONNECTION_REFUSED|net::ERR/.test(m.text())) {
      problems.push(`console error: ${m.text()}`);
    }
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  await page.goto(url);
  return { page, problems };
}
