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
  const r = reservationOf({
    serial: 'ab'.repeat(16),
    expiresAt: 1234,
    peer: 'bob',
    peerCert: bin(3, 1),
    prekey: { id: 'cd'.repeat(8), publicKey: bin(32, 2), signature: bin(256, 3) },
  });
  t.equal(r.serial, 'ab'.repeat(16));
  t.equal(r.expiresAt, 1234);
  t.equal(r.peer, 'bob');
  t.same([...r.peerCert], [1, 1, 1]);
  t.equal(r.prekey.id, 'cd'.repeat(8));
  t.equal(Buffer.from(r.prekey.publicKey).toString('hex'), '02'.repeat(32));
  t.equal(r.prekey.signature.length, 256);
  t.throws(() => reservationOf({ serial: 's', expiresAt: 1, peer: 'bob', peerCert: 'x', prekey: {} }), {
    name: 'InputError',
    code: 'malformed',
  });
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
