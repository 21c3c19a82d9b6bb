// `kds demo --console --step` watched in a real browser (chromium at 1280x720): the page served by the
// KDC draws the authenticated handshakes (clear hellos, then AES-GCM records), the key and certificate
// revocations with their cascade in the state panel, the insecure control run (a session nobody
// authenticated), and Mallory's refused exchange marked with its code and defence, in the CLI's words.
// The test paces the demo with Enter (--step), so the page is checked after each part of the story;
// the KDC restarts on the same port in the middle and the page must follow it without losing history.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { launchBrowser, openPage } from '../helpers/browser.js';
import { KDS_BIN, REPO_ROOT, kdsEnv, trackChild } from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';

t.setTimeout(180_000);

type Event = { event: string } & Record<string, unknown>;

const WAIT_MS = 60_000;

async function texts(page: Page, selector: string): Promise<string[]> {
  return page.locator(selector).allTextContents();
}

t.test('the demo, drawn live', async (t) => {
  const tmp = tempDir(t, 'kds-console-demo-');
  const shots = process.env.KDS_SCREENSHOT_DIR ?? join(tmp, 'screenshots');
  mkdirSync(shots, { recursive: true });
  const browser = await launchBrowser(t);

  const child = spawn(process.execPath, [KDS_BIN, 'demo', '--console', '--step', '--json'], {
    cwd: REPO_ROOT,
    env: kdsEnv({ TMPDIR: tmp, KDS_CA_PASSPHRASE: undefined }),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  trackChild(child);
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const events: Event[] = [];
  let stderr = '';
  let buffer = '';
  const wake = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buffer += d;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.trim() !== '') events.push(JSON.parse(line) as Event);
    }
    for (const w of [...wake]) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    for (const w of [...wake]) w();
  });
  child.stdin!.on('error', () => {});
  const until = (ok: () => boolean, what: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (!ok()) return;
        wake.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        wake.delete(check);
        reject(new Error(`demo: no ${what} within ${WAIT_MS} ms; stderr: ${stderr.slice(-500)}`));
      }, WAIT_MS);
      wake.add(check);
      check();
    });
  /** Wait for the prompt before step n, then press Enter. */
  const next = async (n: number): Promise<void> => {
    await until(() => stderr.includes(`press Enter for step ${n}:`), `prompt for step ${n}`);
    child.stdin!.write('\n');
  };

  // Steps 1-2: the CA, then the KDC, which prints the console's URL.
  await next(2);
  await until(() => events.some((e) => typeof e.consoleUrl === 'string'), 'console URL');
  const url = events.find((e) => typeof e.consoleUrl === 'string')!.consoleUrl as string;
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+\/console$/, 'a loopback URL, no key in it');
  const { page, problems } = await openPage(browser, url);
  await page.locator('#status[data-status="live"]').waitFor({ timeout: WAIT_MS });

  // Steps 3-10: enrollment, handshakes, keys, messages, a key revoked, a certificate revoked.
  for (let n = 3; n <= 10; n++) await next(n);
  // Step 11 restarts the KDC: before it, everything so far must be on the page.
  await until(() => stderr.includes('press Enter for step 11:'), 'prompt for step 11');
  await page.locator('#changes li[data-what="cert.revoked"]').first().waitFor({ timeout: WAIT_MS });
  const labels = await texts(page, 'g.row[data-kind="message"] .name');
  for (const name of ['client_hello', 'server_hello', 'client_finish', 'ready']) {
    t.ok(labels.includes(name), `a ${name} arrow is drawn`);
  }
  t.ok(
    labels.some((l) => l.startsWith('key.')),
    'requests inside records are drawn by their message type',
  );
  const hello = page.locator('g.row[data-kind="message"]', { hasText: 'client_hello' }).first();
  t.match(
    await hello.textContent(),
    /client_hello\s+\d+ B\s+clear/,
    'the hello travels in clear, with its size',
  );
  t.match(
    (await page.locator('g.row[data-kind="message"]', { hasText: 'ready' }).first().textContent()) ?? '',
    /AES-GCM/,
    'after the handshake, records are AES-GCM',
  );
  t.match(
    await hello.locator('.step').textContent(),
    /DH share/,
    'the handshake step is labelled (DH share)',
  );
  const lanes = await texts(page, '#lanes .lane-name');
  for (const lane of ['alice', 'KDC', 'bob']) t.ok(lanes.includes(lane), `a lifeline for ${lane}`);
  const established = await texts(page, 'g.row[data-kind="established"]');
  t.ok(
    established.some((s) => /alice authenticated \(client, x25519\)/.test(s)),
    "alice's session is shown authenticated, with its group",
  );
  const changes = await texts(page, '#changes li');
  t.ok(
    changes.some((c) => c.startsWith('key.revoked')),
    'the key revocation is in the changes',
  );
  t.ok(
    changes.some((c) => /^key\.cascade bob cascade: certificate \S+ revoked, so [1-9]\d* key/.test(c)),
    "revoking bob's certificate revoked his keys too: the cascade is shown",
  );
  t.ok(
    (await page.locator('#certs li[data-status="revoked"]').count()) >= 1,
    'the state panel lists a revoked certificate',
  );
  t.ok(
    (await page.locator('#keys li[data-status="revoked"]').count()) >= 1,
    'the state panel lists revoked keys',
  );
  t.not(await page.locator('#crl-number').textContent(), '0', 'the CRL number is shown');
  await page.screenshot({ path: join(shots, 'revocations.png') });
  child.stdin!.write('\n');

  // Step 11 ran (KDC restarted in lab mode, Mallory's substitute-dh succeeds): the page followed.
  await next(12);
  await page
    .locator('g.row[data-kind="established"]', { hasText: 'NOT authenticated' })
    .first()
    .waitFor({ timeout: WAIT_MS });
  t.ok(
    (await page.locator('#changes li[data-what="cert.revoked"]').count()) >= 1,
    'the history from before the restart is kept',
  );

  // Step 12 ran: Mallory against the secure mode is refused (the KDC is still up until step 13).
  await until(() => stderr.includes('press Enter for step 13:'), 'prompt for step 13');
  const refused = page.locator('g.row[data-kind="refused"]', {
    hasText: 'refused: bad_signature - transcript signature',
  });
  await refused.first().waitFor({ timeout: WAIT_MS });
  t.match(
    await refused.first().textContent(),
    /server signature over transcript invalid \(possible MITM\)/,
    "the marked arrow explains the refusal in the CLI's words",
  );
  t.ok((await texts(page, '#lanes .lane-name')).includes('Mallory?'), "Mallory's lifeline is drawn");
  await page.screenshot({ path: join(shots, 'mallory-refused.png') });
  // `npm run docs:console` regenerates the screenshot of docs/console.md from this very moment.
  const docsPng = process.env.KDS_CONSOLE_DOCS_PNG;
  if (docsPng !== undefined && docsPng !== '') await page.screenshot({ path: docsPng });

  // The timeline steps back: the picture freezes at an earlier event.
  const before = await page.locator('g.row').count();
  for (let i = 0; i < 5; i++) await page.click('#back');
  t.equal(await page.getAttribute('#live', 'aria-pressed'), 'false', 'stepping back leaves live mode');
  t.ok((await page.locator('g.row').count()) < before, 'fewer rows are drawn at an earlier point');
  t.equal(await page.locator('g.row.current').count(), 1, 'the current event is marked');

  // Large-text mode (a projector) still fits the lanes in 1280 px.
  await page.click('#large');
  t.match(await page.getAttribute('html', 'class'), /\blarge\b/, 'large text is on');
  await page.screenshot({ path: join(shots, 'large-text.png') });
  await page.click('#live');

  child.stdin!.write('\n');
  child.stdin!.end();
  t.equal(await exited, 0, 'the demo still passes every step with the console on');
  for (const file of ['revocations.png', 'mallory-refused.png', 'large-text.png']) {
    const png = readFileSync(join(shots, file));
    t.same([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], `${file} is a PNG`);
  }
  t.same(problems, [], 'no script error, CSP violation or dialog on the page');
});
