// Every string the console page draws may have come from the network (a client's name, a claimed
// name in the insecure mode, a request type, a code, an attack's label, a reason). Here each field of
// each kind of event carries markup and script; in a real browser none of it may become an element,
// an attribute or a running script: it must show as the text it is.
import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConsoleAccess } from '../../io/console/access.js';
import { loadConsoleAssets } from '../../io/console/assets.js';
import { ConsoleFeed } from '../../io/console/feed.js';
import { createConsoleRoutes } from '../../io/console/http.js';
import { launchBrowser, openPage } from '../helpers/browser.js';

t.setTimeout(90_000);

const PAYLOADS = [
  '<img src=x onerror="window.__xss=1">',
  '<script>window.__xss=2</script>',
  '"><svg onload="window.__xss=3">',
  "'><iframe src=javascript:window.__xss=4>",
];

t.test('markup in every network-sourced string stays text', async (t) => {
  const feed = new ConsoleFeed('kdc');
  const routes = createConsoleRoutes(feed, new ConsoleAccess('k'), loadConsoleAssets());
  const server = createServer((req, res) => {
    if (!routes.handle(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    routes.close();
    server.closeAllConnections();
    server.close();
  });
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  PAYLOADS.forEach((p, i) => {
    const x = i + 1;
    feed.publish({ kind: 'exchange.open', exchange: x });
    feed.publish({
      kind: 'message',
      exchange: x,
      from: p,
      to: 'kdc',
      name: p,
      bytes: 10,
      sealed: false,
      step: p,
      code: p,
      action: 'changed',
    });
    feed.publish({ kind: 'established', exchange: x, party: p, role: p, group: p });
    feed.publish({
      kind: 'refused',
      exchange: x,
      by: 'kdc',
      peer: p,
      code: p,
      defence: p,
      explanation: p,
      possibleMitm: true,
      phase: 'handshake',
    });
    feed.publish({ kind: 'change', what: p, subject: p, detail: p });
    feed.publish({ kind: 'attack', name: p, outcome: p, detail: p });
  });
  feed.publish({
    kind: 'state',
    state: {
      view: 'kdc',
      sessions: PAYLOADS.map((p, i) => ({ name: p, role: p, exchange: i + 1 })),
      certs: PAYLOADS.map((p) => ({ serial: p, name: p, role: p, status: p })),
      keys: PAYLOADS.map((p) => ({ serial: p, owner: p, peer: p, state: p, reason: p })),
      crlNumber: 1,
      truncated: false,
      labDisabled: PAYLOADS,
      counts: { certsActive: 0, certsRevoked: 0, keysActive: 0, keysRevoked: 0, keysExpired: 0 },
    },
  });

  const browser = await launchBrowser(t);
  const { page, problems } = await openPage(browser, `${base}/console`);
  await page
    .locator('g.row[data-kind="attack"]')
    .nth(PAYLOADS.length - 1)
    .waitFor({ timeout: 30_000 });
  await page
    .locator('#certs li')
    .nth(PAYLOADS.length - 1)
    .waitFor({ timeout: 30_000 });
  // Every exchange in the picker too.
  await page.selectOption('#exchange', { index: 1 });

  t.equal(await page.evaluate('typeof window.__xss'), 'undefined', 'no payload ran');
  t.equal(await page.locator('img, iframe, object, embed').count(), 0, 'no element came from the data');
  t.equal(await page.locator('script').count(), 1, 'the only script is the page’s own');
  t.equal(await page.locator('svg svg').count(), 0, 'no svg element came from the data');
  t.equal(
    await page.locator('[onerror], [onload]').count(),
    0,
    'no event-handler attribute came from the data',
  );
  const text = (await page.locator('body').textContent()) ?? '';
  for (const p of PAYLOADS)
    t.ok(text.includes(p.slice(0, 20)), `${JSON.stringify(p.slice(0, 20))} shows as text`);
  t.ok(
    (await page.locator('#exchange option').allTextContents()).some((o) => o.includes('<img')),
    'the exchange picker shows the name as text',
  );
  t.ok(await page.locator('#lab-disabled').isVisible(), 'the switched-off defences are shown');
  t.match(
    (await page.locator('#lab-disabled').textContent()) ?? '',
    /^MITM lab: defences OFF: /,
    'named as text after a fixed label',
  );
  t.same(problems, [], 'no script error or dialog');
});
