// shared/keys/wire.ts: the key messages' bodies as the exchange functions' inputs.
import t from 'tap';
import { e2eDeliveryOf, kdcDeliveryOf, reservationOf, wireBytes } from '../../../shared/keys/wire.js';

const bin = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);

t.test('wireBytes: a view of the same bytes; anything else is malformed', (t) => {
  const backing = new Uint8Array([9, 1, 2, 3, 9]);
  const view = wireBytes(backing.subarray(1, 4));
  t.same([...view], [1, 2, 3]);
  backing[2] = 7;
  t.equal(view[1], 7, 'no copy: msgpackr hands out views and the exchange reads them once');
  for (const bad of ['0102', 12, null, undefined, [1, 2], { 0: 1 }]) {
    t.throws(() => wireBytes(bad), { name: 'InputError', code: 'malformed' });
  }
  t.end();
});

t.test('reservationOf maps every field of a key.reserve reply', (t) => {
  // The reply is typed by its response schema (the channel validated it): bin fields arrive as Buffers
  // (the codec refuses msgpack extensions, so msgpackr decodes bin only), read without a copy.
  const reply = {
    serial: 'ab'.repeat(16),
    createdAt: 1000,
    expiresAt: 1234,
    peer: 'bob',
    peerCert: Buffer.from(bin(3, 1)),
    prekey: { id: 'cd'.repeat(8), publicKey: Buffer.from(bin(32, 2)), signature: Buffer.from(bin(256, 3)) },
  };
  const r = reservationOf(reply);
  t.same(r, {
    serial: 'ab'.repeat(16),
    expiresAt: 1234,
    peer: 'bob',
    peerCert: reply.peerCert,
    prekey: reply.prekey,
  });
  t.equal(r.peerCert, reply.peerCert, 'the same bytes, not a copy');
  t.equal(r.prekey.publicKey, reply.prekey.publicKey);
  t.notOk('lastResort' in r.prekey, 'absent unless the KDC said so');
  const lastResort = reservationOf({ ...reply, prekey: { ...reply.prekey, lastResort: true } });
  t.equal(lastResort.prekey.lastResort, true);
  t.notOk('lastResort' in reservationOf({ ...reply, prekey: { ...reply.prekey, lastResort: false } }).prekey);
  t.end();
});

t.test('deliveries: kdc and e2e bodies', (t) => {
  const common = { serial: 'ef'.repeat(16), from: 'alice', to: 'bob', toCertSerial: '01', expiresAt: 99 };
  const k = kdcDeliveryOf({ ...common, mode: 'kdc', fromCertSerial: '02', key: bin(32, 4) });
  t.same(
    { ...k, key: Buffer.from(k.key).toString('hex') },
    { ...common, fromCertSerial: '02', key: '04'.repeat(32) },
  );
  const e = e2eDeliveryOf({
    ...common,
    mode: 'e2e',
    fromCert: bin(2, 5),
    prekeyId: 'aa'.repeat(8),
    ephemeral: bin(32, 6),
    signature: bin(256, 7),
    ciphertext: bin(60, 8),
  });
  t.equal(e.prekeyId, 'aa'.repeat(8));
  t.equal(e.from, 'alice');
  t.equal(e.expiresAt, 99);
  t.same([e.fromCert.length, e.ephemeral[0], e.signature[0], e.ciphertext.length], [2, 6, 7, 60]);
  t.throws(
    () => e2eDeliveryOf({ ...common, mode: 'e2e' }),
    { code: 'malformed' },
    'an e2e body without its bytes is malformed',
  );
  t.end();
});
