// `kds demo --console --step` watched in two real browsers at once, Chromium and Firefox ESR, each at
// 1280x720: the page served by the KDC draws the authenticated handshakes (clear hellos, then AES-GCM
// records), the key and certificate revocations with their cascade in the state panel, the insecure
// control run (a session nobody authenticated), and Mallory's refused exchange marked with its code and
// defence, in the CLI's words; large-text (projector) mode on both. The test paces the demo with Enter
// (--step), so the pages are checked after each part of the story; the KDC restarts on the same port in
// the middle and the pages must follow it without losing history. When Mallory starts, the demo prints
// her console's URL too: her view, opened in Chromium beside the KDC's, shows her winning against the
// insecure mode, then, on the same page, the secure mode refusing her, with the defence that did it.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  domPage,
  launchBrowser,
  launchFirefox,
  openFirefoxPage,
  openPage,
  type DomPage,
} from '../helpers/browser.js';
import { KDS_BIN, REPO_ROOT, kdsEnv, trackChild } from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';

t.setTimeout(240_000);

type Event = { event: string } & Record<string, unknown>;

const WAIT_MS = 60_000;

t.test('the demo, drawn live', async (t) => {
  const tmp = tempDir(t, 'kds-console-demo-');
  const shots = process.env.KDS_SCREENSHOT_DIR ?? join(tmp, 'screenshots');
  mkdirSync(shots, { recursive: true });
  const [browser, firefox] = await Promise.all([launchBrowser(t), launchFirefox(t)]);

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
  const chromiumPage = await openPage(browser, url);
  const firefoxPage = await openFirefoxPage(firefox, url);
  const page = chromiumPage.page;
  const pages: DomPage[] = [
    domPage('chromium', chromiumPage.page, chromiumPage.problems),
    domPage('firefox', firefoxPage.page, firefoxPage.problems),
  ];
  for (const p of pages) await p.waitFor('#status[data-status="live"]');

  // Steps 3-10: enrollment, handshakes, keys, messages, a key revoked, a certificate revoked.
  for (let n = 3; n <= 10; n++) await next(n);
  // Step 11 restarts the KDC: before it, everything so far must be on the pages.
  await until(() => stderr.includes('press Enter for step 11:'), 'prompt for step 11');
  for (const p of pages) {
    const b = p.name;
    await p.waitFor('#changes li[data-what="cert.revoked"]');
    // The change rows come with the KDC's events; the panel's lists with its next state tick (500 ms).
    await p.waitFor('#certs li[data-status="revoked"]');
    const labels = await p.texts('g.row[data-kind="message"] .name');
    for (const name of ['client_hello', 'server_hello', 'client_finish', 'ready']) {
      t.ok(labels.includes(name), `${b}: a ${name} arrow is drawn`);
    }
    t.ok(
      labels.some((l) => l.startsWith('key.')),
      `${b}: requests inside records are drawn by their message type`,
    );
    const hello = (await p.texts('g.row[data-kind="message"]', 'client_hello'))[0] ?? '';
    t.match(hello, /client_hello\s+\d+ B\s+clear/, `${b}: the hello travels in clear, with its size`);
    t.match(hello, /DH share/, `${b}: the handshake step is labelled (DH share)`);
    t.match(
      (await p.texts('g.row[data-kind="message"]', 'ready'))[0] ?? '',
      /AES-GCM/,
      `${b}: after the handshake, records are AES-GCM`,
    );
    const lanes = await p.texts('#lanes .lane-name');
    for (const lane of ['alice', 'KDC', 'bob']) t.ok(lanes.includes(lane), `${b}: a lifeline for ${lane}`);
    const established = await p.texts('g.row[data-kind="established"]');
    t.ok(
      established.some((s) => /alice authenticated \(client, x25519\)/.test(s)),
      `${b}: alice's session is shown authenticated, with its group`,
    );
    const changes = await p.texts('#changes li');
    t.ok(
      changes.some((c) => c.startsWith('key.revoked')),
      `${b}: the key revocation is in the changes`,
    );
    t.ok(
      changes.some((c) => /^key\.cascade bob cascade: certificate \S+ revoked, so [1-9]\d* key/.test(c)),
      `${b}: revoking bob's certificate revoked his keys too: the cascade is shown`,
    );
    t.ok((await p.count('#certs li[data-status="revoked"]')) >= 1, `${b}: a revoked certificate is listed`);
    t.ok((await p.count('#keys li[data-status="revoked"]')) >= 1, `${b}: revoked keys are listed`);
    t.not((await p.texts('#crl-number'))[0], '0', `${b}: the CRL number is shown`);
    t.equal(
      await p.evaluate<number>('document.documentElement.clientWidth'),
      1280,
      `${b}: the page is laid out at 1280 px`,
    );
    await p.screenshot(join(shots, `${b}-revocations.png`));
  }
  child.stdin!.write('\n');

  // Step 11 ran (KDC restarted in lab mode, Mallory's substitute-dh succeeds): Mallory's own console,
  // opened late, has her whole run.
  await until(() => stderr.includes('press Enter for step 12:'), 'prompt for step 12');
  const malloryUrl = events.find((e) => typeof e.malloryConsoleUrl === 'string')?.malloryConsoleUrl;
  t.match(malloryUrl, /^http:\/\/127\.0\.0\.1:\d+\/console$/, "Mallory's console: a loopback URL, no key");
  t.not(
    new URL(String(malloryUrl)).port,
    new URL(url).port,
    "on her own port: the KDC's page and hers side by side",
  );
  const malloryOpened = await openPage(browser, String(malloryUrl));
  const mallory = domPage('chromium', malloryOpened.page, malloryOpened.problems);
  await mallory.waitFor('#status[data-status="live"]');
  await mallory.waitFor('#view', { hasText: "Mallory's view" });
  await mallory.waitFor('g.row[data-kind="established"]', { hasText: 'NOT authenticated' });
  await mallory.waitFor('g.row[data-kind="attack"]', { hasText: 'verdict: attack substitute-dh: SUCCEEDED' });
  t.ok(
    (await mallory.texts('g.row[data-kind="message"] .action')).some((a) => a.trim() === 're-encrypted'),
    "Mallory's page: the records she opened and sealed again, in the insecure mode",
  );
  t.ok(
    (await mallory.count('#changes li[data-what="key.stolen"]')) >= 1,
    "Mallory's page: the key she stole, in the changes",
  );
  child.stdin!.write('\n');
  for (const p of pages) {
    await p.waitFor('g.row[data-kind="established"]', { hasText: 'NOT authenticated' });
    t.ok(
      (await p.count('#changes li[data-what="cert.revoked"]')) >= 1,
      `${p.name}: the history from before the restart is kept`,
    );
  }

  // Step 12 ran: Mallory against the secure mode is refused (the KDC is still up until step 13).
  await until(() => stderr.includes('press Enter for step 13:'), 'prompt for step 13');
  const label = 'refused: bad_signature - transcript signature';
  for (const p of pages) {
    const b = p.name;
    await p.waitFor('g.row[data-kind="refused"]', { hasText: label });
    t.match(
      (await p.texts('g.row[data-kind="refused"]', label))[0] ?? '',
      /server signature over transcript invalid \(possible MITM\)/,
      `${b}: the marked arrow explains the refusal in the CLI's words`,
    );
    t.ok((await p.texts('#lanes .lane-name')).includes('Mallory?'), `${b}: Mallory's lifeline is drawn`);
    await p.screenshot(join(shots, `${b}-mallory-refused.png`));
  }
  // Her own page: the same refusal, from where she sits, and the attack's outcome with its defence.
  await mallory.waitFor('g.row[data-kind="refused"]', { hasText: label });
  t.match(
    (await mallory.texts('g.row[data-kind="refused"]', label))[0] ?? '',
    /server signature over transcript invalid/,
    "Mallory's page: the refusal in the CLI's words",
  );
  await mallory.waitFor('g.row[data-kind="attack"] text[data-outcome="defended"]');
  await mallory.waitFor('#attack-outcome[data-outcome="defended"]');
  t.match(
    (await mallory.texts('#attack-outcome'))[0],
    /^DEFENDED - stopped by transcript signature/,
    "Mallory's panel: the attack stopped, and by which defence",
  );
  const malloryLanes = await mallory.texts('#lanes .lane-name');
  for (const lane of ['Mallory', 'KDC'])
    t.ok(malloryLanes.includes(lane), `Mallory's page: a lifeline for ${lane}`);
  t.ok(
    (await mallory.count('g.row[data-kind="attack"]', 'SUCCEEDED')) >= 1,
    "Mallory's page: her insecure-mode success is still in the same picture",
  );
  await mallory.screenshot(join(shots, 'mallory-view-refused.png'));
  // `npm run docs:console` regenerates the screenshot of docs/console.md from this very moment.
  const docsPng = process.env.KDS_CONSOLE_DOCS_PNG;
  if (docsPng !== undefined && docsPng !== '') await page.screenshot({ path: docsPng });

  // The timeline steps back: the picture freezes at an earlier event.
  for (const p of pages) {
    const b = p.name;
    const before = await p.count('g.row');
    for (let i = 0; i < 5; i++) await p.click('#back');
    t.equal(await p.attr('#live', 'aria-pressed'), 'false', `${b}: stepping back leaves live mode`);
    await p.waitFor('#live[aria-pressed="false"]');
    t.ok((await p.count('g.row')) < before, `${b}: fewer rows are drawn at an earlier point`);
    t.equal(await p.count('g.row.current'), 1, `${b}: the current event is marked`);

    // Large-text mode (a projector): bigger letters, and the lanes still fit in 1280 px.
    const small = await p.evaluate<number>(
      'parseFloat(getComputedStyle(document.querySelector("g.row text")).fontSize)',
    );
    await p.click('#large');
    // The page redraws on the next animation frame: the button's state and the class change together.
    await p.waitFor('#large[aria-pressed="true"]');
    t.match(await p.attr('html', 'class'), /\blarge\b/, `${b}: large text is on`);
    const large = await p.evaluate<number>(
      'parseFloat(getComputedStyle(document.querySelector("g.row text")).fontSize)',
    );
    t.ok(large > small * 1.3, `${b}: the diagram's text is larger (${small} -> ${large} px)`);
    // The diagram pane scrolls when many lifelines need more room; the page itself never does.
    t.ok(
      (await p.evaluate<number>('document.documentElement.scrollWidth')) <= 1280,
      `${b}: the page still fits 1280 px (the diagram pane scrolls on its own)`,
    );
    await p.screenshot(join(shots, `${b}-large-text.png`));
    await p.click('#live');
  }

  child.stdin!.write('\n');
  child.stdin!.end();
  t.equal(await exited, 0, 'the demo still passes every step with the console on');
  for (const b of ['chromium', 'firefox'])
    for (const file of ['revocations.png', 'mallory-refused.png', 'large-text.png']) {
      const png = readFileSync(join(shots, `${b}-${file}`));
      t.same([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], `${b}-${file} is a PNG`);
    }
  const malloryPng = readFileSync(join(shots, 'mallory-view-refused.png'));
  t.same([...malloryPng.subarray(1, 4)], [0x50, 0x4e, 0x47], 'mallory-view-refused.png is a PNG');
  for (const p of [...pages, mallory])
    t.same(
      p.problems,
      [],
      `${p === mallory ? "Mallory's page" : p.name}: no script error, CSP violation or dialog`,
    );
});
