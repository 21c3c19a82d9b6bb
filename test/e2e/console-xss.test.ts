// Every string the console page draws may have come from the network (a client's name, a claimed
// name in the insecure mode, a certificate's CN, a request type, a code, an attack's label, a reason,
// a close reason Mallory relays). Here each field of each kind of event carries markup and script, on
// the KDC's console and on Mallory's; in Chromium and in Firefox none of it may become an element, an
// attribute or a running script: it must show as the text it is.
import t, { type Test } from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConsoleAccess } from '../../io/console/access.js';
import { loadConsoleAssets } from '../../io/console/assets.js';
import { ConsoleFeed } from '../../io/console/feed.js';
import { createConsoleRoutes } from '../../io/console/http.js';
import type { ConsoleEvent } from '../../shared/console/events.js';
import {
  domPage,
  launchBrowser,
  launchFirefox,
  openFirefoxPage,
  openPage,
  type DomPage,
} from '../helpers/browser.js';

t.setTimeout(150_000);

const PAYLOADS = [
  '<img src=x onerror="window.__xss=1">',
  '<script>window.__xss=2</script>',
  '"><svg onload="window.__xss=3">',
  "'><iframe src=javascript:window.__xss=4>",
];

/** A console server of `view` whose feed carries `PAYLOADS` in every field of every event kind. */
async function hostileConsole(t: Test, view: 'kdc' | 'mallory'): Promise<string> {
  const feed = new ConsoleFeed(view);
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
  PAYLOADS.forEach((p, i) => {
    const x = i + 1;
    feed.publish({ kind: 'exchange.open', exchange: x });
    feed.publish({
      kind: 'message',
      exchange: x,
      from: p,
      to: view === 'mallory' ? 'mallory' : 'kdc',
      name: p,
      bytes: 10,
      sealed: false,
      step: p,
      code: p,
      // What Mallory did is one of a fixed set, but the page takes it from the network all the same.
      action: p as 'changed',
    });
    feed.publish({ kind: 'established', exchange: x, party: p, role: p, group: p });
    feed.publish({
      kind: 'refused',
      exchange: x,
      by: view === 'mallory' ? p : 'kdc',
      peer: view === 'mallory' ? 'mallory' : p,
      code: p,
      defence: p,
      explanation: p,
      possibleMitm: true,
      phase: 'handshake',
    });
    feed.publish({ kind: 'change', what: p, subject: p, detail: p });
    feed.publish({ kind: 'attack', name: p, outcome: p, detail: p });
    feed.publish({ kind: 'attack', name: p, outcome: p, detail: p, exchange: x, defence: p, code: p });
    feed.publish({ kind: 'attack', name: p, outcome: p, detail: p, final: true, defence: p });
    // Numbers only, but the page takes them from the network all the same.
    const notNumber = p as unknown as number;
    feed.publish({ kind: 'undrawn', count: notNumber, total: notNumber, perSecond: notNumber });
  });
  feed.publish({ kind: 'undrawn', count: 280, total: 280, perSecond: 10 });
  const state: Extract<ConsoleEvent, { kind: 'state' }>['state'] = {
    view,
    sessions: PAYLOADS.map((p, i) => ({ name: p, role: p, exchange: i + 1 })),
    certs: PAYLOADS.map((p) => ({ serial: p, name: p, role: p, status: p })),
    keys: PAYLOADS.map((p) => ({ serial: p, owner: p, peer: p, state: p, reason: p })),
    crlNumber: 1,
    truncated: false,
    labDisabled: PAYLOADS,
    counts: { certsActive: 0, certsRevoked: 0, keysActive: 0, keysRevoked: 0, keysExpired: 0 },
    ...(view === 'mallory'
      ? {
          attack: {
            name: PAYLOADS[0]!,
            outcome: PAYLOADS[1]!,
            summary: PAYLOADS[2]!,
            defences: PAYLOADS,
            stolenKeys: 1,
          },
        }
      : {}),
  };
  feed.publish({ kind: 'state', state });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/console`;
}

/** The page `p` shows every payload as text and ran none of it. */
async function checkEscaped(t: Test, p: DomPage, view: 'kdc' | 'mallory'): Promise<void> {
  const b = `${p.name}, ${view}`;
  await p.waitFor('g.row[data-kind="attack"]', { min: PAYLOADS.length * 3 });
  await p.waitFor('#keys li', { min: PAYLOADS.length });
  const undrawn = await p.texts('g.row[data-kind="undrawn"]');
  t.equal(undrawn.length, PAYLOADS.length + 1, `${b}: a row per count of exchanges not drawn`);
  t.ok(
    undrawn
      .slice(0, -1)
      .every(
        (u) =>
          u.trim() === '... 0 more exchanges not drawn (the console draws 0 a second; refusals always) ...',
      ),
    `${b}: a count that is no number is drawn as 0`,
  );
  t.equal(
    undrawn.at(-1)?.trim(),
    '... 280 more exchanges not drawn (the console draws 10 a second; refusals always) ...',
    `${b}: the count of exchanges not drawn`,
  );
  // Every exchange in the picker too.
  await p.evaluate(
    '(() => { const s = document.getElementById("exchange"); s.selectedIndex = 1; s.dispatchEvent(new Event("change")); return true; })()',
  );
  t.equal(await p.evaluate('typeof window.__xss'), 'undefined', `${b}: no payload ran`);
  t.equal(await p.count('img, iframe, object, embed'), 0, `${b}: no element came from the data`);
  t.equal(await p.count('script'), 1, `${b}: the only script is the page’s own`);
  t.equal(await p.count('svg svg'), 0, `${b}: no svg element came from the data`);
  t.equal(await p.count('[onerror], [onload]'), 0, `${b}: no event-handler attribute came from the data`);
  const text = (await p.texts('body'))[0] ?? '';
  for (const payload of PAYLOADS)
    t.ok(text.includes(payload.slice(0, 20)), `${b}: ${JSON.stringify(payload.slice(0, 20))} shows as text`);
  t.ok(
    (await p.texts('#exchange option')).some((o) => o.includes('<img')),
    `${b}: the exchange picker shows the name as text`,
  );
  t.match(
    (await p.texts('#lab-disabled'))[0] ?? '',
    /^MITM lab: defences OFF: /,
    `${b}: the switched-off defences are named as text after a fixed label`,
  );
  if (view === 'mallory') {
    t.equal((await p.texts('#view'))[0], "Mallory's view", `${b}: her view`);
    t.ok(
      ((await p.texts('#attack-name'))[0] ?? '').startsWith(PAYLOADS[0]!),
      `${b}: the attack's label in the panel is text`,
    );
  }
  t.same(p.problems, [], `${b}: no script error or dialog`);
}

t.test('markup in every network-sourced string stays text, in Chromium and Firefox', async (t) => {
  const [chromium, firefox] = await Promise.all([launchBrowser(t), launchFirefox(t)]);
  for (const view of ['kdc', 'mallory'] as const) {
    const url = await hostileConsole(t, view);
    const c = await openPage(chromium, url);
    await checkEscaped(t, domPage('chromium', c.page, c.problems), view);
    const f = await openFirefoxPage(firefox, url);
    await checkEscaped(t, domPage('firefox', f.page, f.problems), view);
  }
});
