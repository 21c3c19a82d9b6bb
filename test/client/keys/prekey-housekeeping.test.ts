// Prekey housekeeping (docs/keys.md): the private half of a one-time prekey is deleted from the client
// once the KDC no longer holds its public half (a reservation that expired un-deposited, a renewal that
// dropped the old stock), and never while the KDC still needs it (stock, open reservation, a delivery
// queued for an offline receiver) or while its upload may still be in flight. In-process KDC; Bob's
// clock is moved past PREKEY_UPLOAD_GRACE_MS between sessions (the KDC keeps real time).
import t from 'tap';
import { createCsr } from '../../../shared/pki/csr.js';
import { PREKEY_STOCK, PREKEY_UPLOAD_GRACE_MS } from '../../../shared/keys/prekey.js';
import { readClientHome, writeClientHome } from '../../../client/home.js';
import type { ClientSession } from '../../../client/session.js';
import type { KeySession } from '../../../client/keys/key-client.js';
import { inProcessKdc, relayRequest } from './inproc.js';
import { sqliteOf } from '../../helpers/sqlite-view.js';

t.setTimeout(120_000);

t.test('orphaned prekey privates go on the next session; held and in-flight ones stay', async (t) => {
  const env = await inProcessKdc(t, ['alice', 'bob']);
  const store = sqliteOf(env.kdc.services.store);
  let clock = Date.now();
  const now = (): number => clock;
  /** Bob's next session, his clock past the upload grace since the last one. */
  const nextBob = () => {
    clock += PREKEY_UPLOAD_GRACE_MS + 1;
    return env.open('bob', { now });
  };

  let bob = await env.open('bob', { now });
  t.equal(bob.client.store.prekeyIds().length, PREKEY_STOCK + 1, 'a full stock of privates + last-resort');
  const lastResortId = bob.client.store.prekeyIds().find((id) => bob.client.store.getPrekey(id)!.lastResort);
  t.ok(lastResortId, 'one of them is the last-resort prekey');
  await bob.close();
  const alice = await env.open('alice');

  // 1. A sender reserves one of Bob's prekeys and never deposits.
  const open = await alice.session.request('key.reserve', { peer: 'bob' });
  const openId = open.prekey.id;
  bob = await nextBob();
  t.ok(bob.client.store.getPrekey(openId), 'an open reservation keeps its private');
  t.equal(bob.client.store.prekeyIds().length, PREKEY_STOCK + 2, 'stock + last-resort + the reserved one');
  await bob.close();
  store.deleteStaleReservations(Date.now() + 1); // the reservation expired: the KDC forgot it
  bob = await nextBob();
  t.notOk(bob.client.store.getPrekey(openId), 'the expired reservation: its private is gone');
  t.equal(
    bob.client.store.prekeyIds().length,
    PREKEY_STOCK + 1,
    'only the stock and the last-resort are left',
  );
  t.ok(bob.client.store.getPrekey(lastResortId!), 'the last-resort private is held, so kept');
  await bob.close();

  // 2. Bob is offline while Alice sends him an end-to-end key: the queued delivery holds its prekey.
  const sent = await alice.client.sendKey({ to: 'bob' });
  const usedId = store.getSymKey(sent.serial)!.prekeyId!;
  bob = await nextBob(); // start(): housekeeping runs BEFORE the backlog is fetched
  await bob.client.idle();
  t.notOk(
    bob.events.some((e) => e.event === 'key.rejected'),
    'no delivery rejected',
  );
  t.equal(bob.client.store.getKey(sent.serial)?.state, 'active', 'the queued key decrypted and verified');
  t.notOk(bob.client.store.getPrekey(usedId), 'its private used once, then deleted');
  await bob.close();

  // 3. An upload in flight in one Bob process while another one asks: its privates stay.
  const stillOpen = await alice.session.request('key.reserve', { peer: 'bob' }); // stock short by one
  const stillOpenId = stillOpen.prekey.id;
  let release: () => void = () => {};
  const released = new Promise<void>((r) => (release = r));
  const slowUpload = (s: ClientSession): KeySession => ({
    request: relayRequest(s, async (type, body, forward) => {
      if (type === 'key.prekeys' && (body.prekeys as unknown[]).length > 0) await released;
      return forward();
    }),
    onPush: (type, fn) => s.onPush(type, fn),
  });
  clock += PREKEY_UPLOAD_GRACE_MS + 1;
  const slow = await env.open('bob', { now, wrap: slowUpload, start: false });
  const before = new Set(slow.client.store.prekeyIds());
  const uploading = slow.client.topUpPrekeys();
  while (slow.client.store.prekeyIds().length === before.size) await new Promise((r) => setTimeout(r, 5));
  const inFlight = slow.client.store.prekeyIds().filter((id) => !before.has(id));
  t.equal(inFlight.length, 1, 'one private saved, its upload held back');
  bob = await env.open('bob', { now }); // the other process: same clock, the KDC does not list it yet
  t.ok(bob.client.store.getPrekey(inFlight[0]!), 'a private younger than the grace is kept');
  release();
  t.equal(await uploading, 1);
  await slow.close();
  await bob.close();

  // 4. Renewal: Bob's new certificate (same key); the KDC drops the old stock at his next status query.
  const files = readClientHome(env.home('bob'), undefined);
  const pem = String(files.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const publicPem = String(
    (await import('node:crypto')).createPublicKey(files.privateKey).export({ type: 'spki', format: 'pem' }),
  );
  const renewed = await env.kdc.ca.issueFromCsr(await createCsr('bob', pem, publicPem), {
    name: 'bob',
    actor: 'test',
    renew: true,
  });
  writeClientHome(env.home('bob'), { ...files, certPem: renewed.pem }, undefined);
  const oldStock = bob.client.store.prekeyIds();
  t.ok(oldStock.length >= PREKEY_STOCK, 'privates of the old certificate on disk');
  bob = await nextBob();
  const left = new Set(bob.client.store.prekeyIds());
  t.same(
    oldStock.filter((id) => left.has(id)),
    [stillOpenId],
    'of the old certificate only the private of a still-open reservation is left',
  );
  const fresh = [...left].filter((id) => id !== stillOpenId);
  t.equal(fresh.length, PREKEY_STOCK + 1, 'a fresh stock and a fresh last-resort prekey');
  t.notOk(left.has(lastResortId!), "the old certificate's last-resort private is gone");
  t.ok(
    fresh.every((id) => bob.client.store.getPrekey(id)!.certSerial === renewed.serialHex),
    'signed under the new certificate',
  );
  await bob.close();
  await alice.close();
});
