// The browsers the console's end-to-end tests drive, both Debian's own builds (no browser download):
// chromium through playwright-core, Firefox ESR through puppeteer-core over WebDriver BiDi (playwright's
// BiDi client needs commands ESR does not have; its own patched Firefox cannot be installed here: see
// docs/architecture.md, "Dependencies"). A test that needs a browser fails when it is missing; it never
// skips (.ci/run installs both).
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { Browser as PuppeteerBrowser, Page as PuppeteerPage } from 'puppeteer-core';

const CHROMIUM = process.env.KDS_CHROMIUM ?? '/usr/bin/chromium';
const FIREFOX = process.env.KDS_FIREFOX ?? '/usr/bin/firefox-esr';

/** The size the console promises to work at (and the screenshots' size). */
const VIEWPORT = { width: 1280, height: 720 } as const;

interface TestLike {
  teardown(fn: () => void | Promise<void>): void;
}

/** A failed request or console error a browser reports while the KDC restarts: not a page problem. */
const RECONNECTING =
  /EventSource|ERR_CONNECTION_REFUSED|net::ERR|can.t establish a connection|was interrupted while the page was loading/;

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
  const context = await browser.newContext({ viewport: { ...VIEWPORT } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !RECONNECTING.test(m.text())) {
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

/** One headless Firefox ESR per test file, driven over WebDriver BiDi; closed at teardown. */
export async function launchFirefox(t: TestLike): Promise<PuppeteerBrowser> {
  if (!existsSync(FIREFOX)) {
    throw new Error(
      `firefox not found at ${FIREFOX}: apt-get install -y firefox-esr (browser tests never skip)`,
    );
  }
  // Loaded here: only the tests that drive Firefox pay for puppeteer's import.
  const { default: puppeteer } = await import('puppeteer-core');
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    // The console's pages are loopback only: nothing of Firefox's own background traffic is wanted.
    extraPrefsFirefox: {
      'app.update.enabled': false,
      'browser.safebrowsing.malware.enabled': false,
      'browser.safebrowsing.phishing.enabled': false,
      'network.captive-portal-service.enabled': false,
      'datareporting.policy.dataSubmissionEnabled': false,
    },
  });
  t.teardown(() => browser.close());
  return browser;
}

/** A 1280x720 Firefox page that records console errors, page errors and dialogs. */
export async function openFirefoxPage(
  browser: PuppeteerBrowser,
  url: string,
): Promise<{ page: PuppeteerPage; problems: string[] }> {
  const page = await browser.newPage();
  await page.setViewport({ ...VIEWPORT });
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !RECONNECTING.test(m.text())) problems.push(`console error: ${m.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${(err as Error).message}`));
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  await page.goto(url);
  return { page, problems };
}

/**
 * The same questions asked of either browser's page, answered by the page's own DOM (one function
 * evaluated in the page), so a test's assertions read the same in Chromium and in Firefox.
 */
export interface DomPage {
  readonly name: 'chromium' | 'firefox';
  readonly problems: string[];
  /** Text of every element matching `selector` (those containing `hasText` only, when given). */
  texts(selector: string, hasText?: string): Promise<string[]>;
  count(selector: string, hasText?: string): Promise<number>;
  attr(selector: string, name: string): Promise<string | null>;
  /** Wait until at least `min` (default 1) elements match. */
  waitFor(selector: string, opts?: { hasText?: string; min?: number; timeoutMs?: number }): Promise<void>;
  click(selector: string): Promise<void>;
  evaluate<T>(expression: string): Promise<T>;
  screenshot(path: string): Promise<void>;
}

/** An expression evaluated in the page: the texts of the matching elements. */
function textsExpression(selector: string, hasText: string | undefined): string {
  const keep = hasText === undefined ? '' : `.filter((s) => s.includes(${JSON.stringify(hasText)}))`;
  return `[...document.querySelectorAll(${JSON.stringify(selector)})].map((e) => e.textContent ?? '')${keep}`;
}

export function domPage(
  name: 'chromium' | 'firefox',
  page: Page | PuppeteerPage,
  problems: string[],
): DomPage {
  // Both libraries evaluate an expression given as a string (the test's tsconfig has no DOM types).
  const run = <T>(expression: string): Promise<T> =>
    (page as unknown as { evaluate(e: string): Promise<T> }).evaluate(expression);
  const self: DomPage = {
    name,
    problems,
    texts: (selector, hasText) => run<string[]>(textsExpression(selector, hasText)),
    count: async (selector, hasText) => (await self.texts(selector, hasText)).length,
    attr: (selector, attribute) =>
      run<string | null>(
        `document.querySelector(${JSON.stringify(selector)})?.getAttribute(${JSON.stringify(attribute)}) ?? null`,
      ),
    async waitFor(selector, opts = {}) {
      const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
      const min = opts.min ?? 1;
      for (;;) {
        if ((await self.count(selector, opts.hasText)) >= min) return;
        if (Date.now() > deadline)
          throw new Error(
            `${name}: no ${min} x ${selector}${opts.hasText === undefined ? '' : ` with ${JSON.stringify(opts.hasText)}`} in time`,
          );
        await new Promise((r) => setTimeout(r, 150));
      }
    },
    click: (selector) => page.click(selector),
    evaluate: run,
    async screenshot(path) {
      await page.screenshot({ path: path as `${string}.png` });
    },
  };
  return self;
}
