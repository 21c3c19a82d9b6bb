// Hostile enrolled peers against real clients on an in-process KDC (docs/security.md "Hostile peers"):
// eve reserving bob's one-time prekeys while bob listens, a certificate revoked by another process
// while its session is live, and a KDC (or relay) that pushes more keys than the KDC may accept.
import t from 'tap';
import { CertificateAuthority } from '../../../server/ca/authority.js';
import { TEST_CA_PASSPHRASE } from '../../helpers/kds-process.js';
import type { ClientSession } from '../../../client/session.js';
import type { KeySession } from '../../../client/keys/key-client.js';
import { inProcessKdc } from './inproc.js';

t.setTimeout(180_000);

type Body = Record<string, unknown>;

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return String((err as { code?: unknown }).code);
  }
}

t.test("ten reservations by eve, then alice's send-key to a listening bob still works", async (t) => {
  const env = await inProcessKdc(t, ['alice', 'bob', 'eve']);
  const bob = await env.open('bob'); // listening: start() stocked his prekeys
  const eve = await env.open('eve');
  const codes: string[] = [];
  for (let i = 0; i < 10; i++) codes.push(await codeOf(eve.session.request('key.reserve', { peer: 'bob' })));
  t.comment(`eve's reservations: ${codes.join(' ')}`);
  const alice = await env.open('alice');
  const sent = await alice.client.sendKey({ to: 'bob' });
  await bob.client.idle();
  for (let i = 0; i < 100 && bob.client.store.getKey(sent.serial)?.state !== 'active'; i++) {
    await new Promise((r) => setTimeout(r, 50));
    await bob.client.idle();
  }
  t.equal(bob.client.store.getKey(sent.serial)?.state, 'active', 'bob received and verified alice\'s key');
});

t.test(
  'a revocation committed by another process: key.create on the live session is refused at once',
  async (t) => {
    const env = await inProcessKdc(t, ['alice', 'bob']);
    const alice = await env.open('alice');
    await env.open('bob');
    t.equal(await codeOf(alice.session.request('key.create', { peer: 'bob' })), 'ok', 'before: accepted');
    // `kds cert revoke alice` run from a shell: its own CA object, its own store connection.
    const offline = await CertificateAuthority.open(env.dataDir, { passphrase: TEST_CA_PASSPHRASE });
    try {
      await offline.revoke({ name: 'alice' }, 'keyCompromise', 'test');
    } finally {
      offline.close();
    }
    const store = env.kdc.services.store;
    const before = store.listSymKeys({ party: 'alice' }).length;
    const code = await codeOf(alice.session.request('key.create', { peer: 'bob' }));
    t.ok(['cert_revoked', 'session_closed'].includes(code), `refused: ${code}`);
    t.equal(store.listSymKeys({ party: 'alice' }).length, before, 'no key created after the revocation');
  },
);

t.test("a KDC pushing more keys from one sender than it may accept: bob's home stays bounded", async (t) => {
  const env = await inProcessKdc(t, ['alice', 'bob']);
  const alice = await env.open('alice');
  const aliceSerial = alice.session.facts.identity.serialHex;
  let inject: ((body: Body) => void) | undefined;
  // A relay in front of bob's session that can push key.delivered notices of its own making (what a
  // KDC that does not enforce the per-pair bound could send), and answers their key.verify itself.
  const relay = (s: ClientSession): KeySession => ({
    request: async (type, body) => {
      if (type === 'key.verify' && String(body.serial).startsWith('f')) {
        return { serial: body.serial, verdict: 'valid', peerVerified: true, state: 'active' };
      }
      if (type === 'key.ack' && (body.ids as number[]).every((d) => d >= 1_000_000)) {
        return { acknowledged: (body.ids as number[]).length };
      }
      return s.request(type, body);
    },
    onPush: (type, fn) => {
      if (type === 'key.delivered') inject = (b) => fn(b, type);
      return s.onPush(type, fn);
    },
  });
  const bob = await env.open('bob', { wrap: relay });
  const now = Date.now();
  const pushed = 300;
  for (let i = 0; i < pushed; i++) {
    inject!({
      d: 1_000_000 + i,
      serial: `f${i.toString(16).padStart(31, '0')}`,
      mode: 'kdc',
      from: 'alice',
      fromCertSerial: aliceSerial,
      to: 'bob',
      toCertSerial: bob.session.facts.identity.serialHex,
      createdAt: now,
      expiresAt: now + 3_600_000,
      key: Buffer.alloc(32, i % 251),
    });
  }
  await bob.client.idle();
  const stored = bob.client.store.listKeys().filter((k) => k.owner === 'alice');
  t.ok(stored.length <= 256, `bob stored a bounded number of alice's keys: ${stored.length} of ${pushed}`);
  t.ok(
    bob.events.some((e) => e.event === 'key.rejected' && e.code === 'quota_exceeded'),
    'the rest were rejected, and said so',
  );
});
