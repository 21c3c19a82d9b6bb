// The state the key inbox (client/keys/key-inbox.ts) reports for a key, which `kds client listen`
// prints, is the one `kds client keys` shows as local: a key past its expiresAt by this client's clock
// is `expired`, even while the KDC (on its own clock) still calls it valid. Here the client's clock is
// 10 minutes fast and the keys live 5 minutes.
import t from 'tap';
import { inProcessKdc } from './inproc.js';

const fast = (): number => Date.now() + 10 * 60_000;

t.test(
  'a key received past its expiry by the local clock is reported expired, as keys shows it',
  async (t) => {
    const env = await inProcessKdc(t, ['alice', 'bob']);
    const bob = await env.open('bob', { now: fast });
    const alice = await env.open('alice');
    const { serial } = await alice.client.sendKey({ to: 'bob', mode: 'kdc', ttlMs: 5 * 60_000 });
    await bob.client.idle();
    const key = bob.events.find((e) => e.event === 'key' && e.serial === serial);
    t.match(key, { event: 'key', verdict: 'valid', state: 'expired' }, 'the KDC says valid; locally expired');
    const listed = (await bob.client.listKeys()).find((k) => k.serial === serial);
    t.match(listed, { state: 'active', local: 'expired' }, 'kds client keys agrees');
    await alice.close();
    await bob.close();
  },
);

t.test('a sent key verified by its receiver after its local expiry is reported expired', async (t) => {
  const env = await inProcessKdc(t, ['alice', 'bob']);
  const alice = await env.open('alice', { now: fast });
  const bob = await env.open('bob');
  const { serial } = await alice.client.sendKey({ to: 'bob', mode: 'kdc', ttlMs: 5 * 60_000 });
  await bob.client.idle();
  for (let i = 0; i < 50 && !alice.events.some((e) => e.event === 'key.verified'); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  await alice.client.idle();
  const verified = alice.events.find((e) => e.event === 'key.verified' && e.serial === serial);
  t.match(verified, { event: 'key.verified', state: 'expired' });
  const listed = (await alice.client.listKeys()).find((k) => k.serial === serial);
  t.equal(listed?.local, 'expired', 'kds client keys agrees');
  await alice.close();
  await bob.close();
});
