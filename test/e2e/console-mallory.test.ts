// Mallory's view (`kds mitm --console`) in a real browser (chromium at 1280x720), Mallory and the KDC
// in this process (test/client/mitm/lab.ts). One attack, substitute-dh, watched on one page: first a
// secure victim, whose refusal the page draws as the red crossed arrow naming the code and the defence,
// with her frames labelled by what she did to them (kept, injected); then the insecure control mode in
// the same picture: the session she holds both ends of, her success, the serial of the key she stole;
// then the attack's verdict when she switches it off.
import t from 'tap';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KdsError } from '../../shared/errors.js';
import { sealMessage } from '../../shared/keys/message.js';
import { domPage, launchBrowser, openPage } from '../helpers/browser.js';
import { tempDir } from '../helpers/tmp.js';
import { mitmLab } from '../client/mitm/lab.js';

t.setTimeout(150_000);

t.test("Mallory's view: her frames, a refusal, then her success in the insecure mode", async (t) => {
  const shots = process.env.KDS_SCREENSHOT_DIR ?? join(tempDir(t, 'kds-console-mallory-'), 'screenshots');
  mkdirSync(shots, { recursive: true });
  const lab = await mitmLab(t, ['alice', 'bob']);
  const browser = await launchBrowser(t);
  const m = await lab.mallory('substitute-dh', { console: true });
  t.match(m.consoleUrl, /^http:\/\/127\.0\.0\.1:\d+\/console$/, 'a loopback URL, no key in it');
  const opened = await openPage(browser, m.consoleUrl!);
  const p = domPage('chromium', opened.page, opened.problems);
  await p.waitFor('#status[data-status="live"]');
  t.equal((await p.texts('#view'))[0], "Mallory's view", 'the page says whose view it is');

  // A secure victim: she cannot sign as the KDC, and alice refuses her.
  const err = (await lab.session('alice', m.url).then(
    () => undefined,
    (e: unknown) => e,
  )) as KdsError;
  t.equal(err?.code, 'bad_signature', 'the victim refused her');
  const label = 'refused: bad_signature - transcript signature';
  await p.waitFor('g.row[data-kind="refused"]', { hasText: label });
  t.match(
    (await p.texts('g.row[data-kind="refused"]', label))[0] ?? '',
    /server signature over transcript invalid/,
    "the refusal in the CLI's words",
  );
  await p.waitFor('g.row[data-kind="attack"] text[data-outcome="defended"]');
  const lanes = await p.texts('#lanes .lane-name');
  for (const lane of ['victim', 'Mallory', 'KDC']) t.ok(lanes.includes(lane), `a lifeline for ${lane}`);
  t.notOk(lanes.includes('Mallory?'), 'on her own console Mallory is no suspicion');
  const actions = await p.texts('g.row[data-kind="message"] .action');
  for (const a of ['kept', 'injected'])
    t.ok(
      actions.some((s) => s.trim() === a),
      `a frame she ${a} is labelled so`,
    );
  t.match(
    (await p.texts('g.row[data-kind="message"]', 'injected')).join('\n'),
    /server_hello\s+\d+ B\s+clear\s+injected/,
    'her own server_hello, with its size, in clear',
  );
  await p.waitFor('#attack-outcome[data-outcome="defended"]');
  t.match(
    (await p.texts('#attack-outcome'))[0],
    /^DEFENDED - stopped by transcript signature/,
    'the panel: the attack is stopped, by which defence',
  );
  t.equal(await p.attr('.kdc-only', 'hidden'), '', "the KDC's certificates and CRL are not in her view");
  await p.screenshot(join(shots, 'mallory-defended.png'));

  // The insecure control mode, same attack, same page: she wins and steals the key alice creates.
  const s = await lab.session('alice', m.url, { insecure: true });
  const created = await s.request('key.create', { peer: 'bob' });
  const key = Buffer.from(created.key as Uint8Array);
  const serial = String(created.serial);
  const sealed = sealMessage(
    key,
    { serial, from: 'alice', to: 'bob', seq: 1 },
    Buffer.from('meet at the old mill', 'utf8'),
  );
  await s.request('msg.send', { to: 'bob', serial, ...sealed }).catch(() => undefined);
  await s.close();
  await p.waitFor('g.row[data-kind="established"]', { hasText: 'NOT authenticated' });
  await p.waitFor('#attack-outcome[data-outcome="succeeded"]');
  await p.waitFor(`#keys li[data-status="stolen"][data-serial="${serial}"]`);
  t.ok(
    (await p.texts('g.row[data-kind="attack"]', 'SUCCEEDED')).length >= 1,
    'her success is a row of the diagram',
  );
  t.ok(
    (await p.texts('g.row[data-kind="message"] .action')).some((a) => a.trim() === 're-encrypted'),
    'records she opened and sealed again',
  );
  t.ok(
    (await p.texts('#changes li[data-what="key.stolen"]')).some((c) => c.includes(serial)),
    'the stolen key, by serial, in the changes',
  );
  t.ok(
    (await p.count('g.row[data-kind="refused"]', label)) >= 1,
    'the secure refusal is still in the same picture',
  );
  const body = (await p.texts('body'))[0] ?? '';
  t.notOk(body.includes(key.toString('hex')), "the page never shows the key's bytes");
  t.notOk(body.includes('meet at the old mill'), 'nor the message she decrypted');
  await p.screenshot(join(shots, 'mallory-succeeded.png'));

  // Switching the attack off ends it: its verdict over both victims.
  await m.switchAttack(undefined);
  await p.waitFor('g.row[data-kind="attack"]', { hasText: 'verdict: attack substitute-dh: SUCCEEDED' });
  t.pass('the verdict row is drawn');

  // Large text for a projector.
  await p.click('#large');
  await p.waitFor('#large[aria-pressed="true"]');
  t.ok((await p.evaluate<number>('document.documentElement.scrollWidth')) <= 1280, 'still fits 1280 px');
  await p.screenshot(join(shots, 'mallory-large-text.png'));
  for (const file of ['mallory-defended.png', 'mallory-succeeded.png', 'mallory-large-text.png']) {
    const png = readFileSync(join(shots, file));
    t.same([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], `${file} is a PNG`);
  }
  t.same(p.problems, [], 'no script error, CSP violation or dialog on the page');
});
