// The end-to-end key exchange as pure functions (shared/keys): a full exchange between two real
// identities, and every substitution a relay could make failing with a signature error.
import t from 'tap';
import fc from 'fast-check';
import { generateRsaKeyPair, type RsaKeyPair } from '../../../shared/crypto/rsa.js';
import { parseCertificate } from '../../../shared/pki/x509.js';
import { generatePrekey, verifyPrekey } from '../../../shared/keys/prekey.js';
import {
  acceptKdcKey,
  runReceiverExchange,
  runSenderExchange,
  verifyTranscriptSignature,
  type E2eDelivery,
  type Reservation,
} from '../../../shared/keys/exchange.js';
import { e2eTranscriptHash, kdcTranscriptHash, signedContent } from '../../../shared/keys/transcript.js';
import { ciphertextDigest, kdcKeyDigest, keyFingerprint } from '../../../shared/keys/digest.js';
import { newKeySerial } from '../../../shared/keys/serial.js';
import { makeCa, issue, DAY } from '../pki/pki-fixtures.js';

const [caKeys, otherCaKeys, aliceKeys, bobKeys, malloryKeys] = (await Promise.all(
  [0, 1, 2, 3, 4].map(() => generateRsaKeyPair(2048)),
)) as [RsaKeyPair, RsaKeyPair, RsaKeyPair, RsaKeyPair, RsaKeyPair];
const ca = await makeCa('kds test root', caKeys);
const otherCa = await makeCa('kds test root', otherCaKeys);
const caCert = parseCertificate(ca.certPem);
const aliceCert = parseCertificate(await issue(ca, 'client', 'alice', aliceKeys.publicKeyPem));
const bobCert = parseCertificate(await issue(ca, 'client', 'bob', bobKeys.publicKeyPem));
const malloryCert = parseCertificate(await issue(ca, 'client', 'mallory', malloryKeys.publicKeyPem));
const fakeBobCert = parseCertificate(await issue(otherCa, 'client', 'bob', malloryKeys.publicKeyPem));
const expiredBobCert = parseCertificate(
  await issue(ca, 'client', 'bob', bobKeys.publicKeyPem, {
    notBefore: Date.now() - 10 * DAY,
    notAfter: Date.now() - DAY,
  }),
);

const alice = { name: 'alice', certSerial: aliceCert.serialHex, privateKey: aliceKeys.privateKeyPem };
const bob = { name: 'bob', certSerial: bobCert.serialHex, privateKey: bobKeys.privateKeyPem };

async function bobPrekey() {
  const p = await generatePrekey({ name: 'bob', certSerial: bobCert.serialHex }, bobKeys.privateKeyPem);
  return {
    signed: { id: p.id, publicKey: p.publicKey, signature: p.signature },
    own: { id: p.id, certSerial: bobCert.serialHex, publicKey: p.publicKey, privateKey: p.privateKey },
  };
}

function reservationFor(prekey: Reservation['prekey'], over: Partial<Reservation> = {}): Reservation {
  return {
    serial: newKeySerial(),
    expiresAt: Date.now() + DAY,
    peer: 'bob',
    peerCert: bobCert.der,
    prekey,
    ...over,
  };
}

async function exchange() {
  const pk = await bobPrekey();
  const reservation = reservationFor(pk.signed);
  const sent = await runSenderExchange(alice, reservation, { ca: caCert });
  const delivery: E2eDelivery = {
    serial: reservation.serial,
    from: 'alice',
    fromCert: aliceCert.der,
    to: 'bob',
    toCertSerial: bobCert.serialHex,
    prekeyId: pk.signed.id,
    ephemeral: sent.deposit.ephemeral,
    signature: sent.deposit.signature,
    ciphertext: sent.deposit.ciphertext,
    expiresAt: reservation.expiresAt,
  };
  return { pk, reservation, sent, delivery };
}

t.test('a full end-to-end exchange gives both sides the same key and matching transcripts', async (t) => {
  const { pk, sent, delivery, reservation } = await exchange();
  const got = await runReceiverExchange(bob, delivery, pk.own, { ca: caCert });
  t.ok(got.key.equals(sent.key), 'same AES key');
  t.equal(got.key.length, 32);
  t.ok(got.digest.equals(sent.digest), 'same digest');
  t.ok(got.transcriptHash.equals(sent.transcriptHash), 'same transcript hash');
  t.equal(got.senderCertSerial, aliceCert.serialHex);
  t.equal(sent.peerCertSerial, bobCert.serialHex);
  t.equal(sent.deposit.ciphertext.length, 60, 'nonce + key + tag');
  t.ok(ciphertextDigest(sent.deposit.ciphertext).equals(sent.digest));
  // What the KDC checks: Alice's signature at deposit and Bob's at verification, from its own record.
  const th = e2eTranscriptHash({
    serial: reservation.serial,
    sender: { name: 'alice', certSerial: aliceCert.serialHex },
    receiver: { name: 'bob', certSerial: bobCert.serialHex },
    prekeyId: pk.signed.id,
    prekeyPublic: pk.signed.publicKey,
    ephemeralPublic: sent.deposit.ephemeral,
    expiresAt: reservation.expiresAt,
  });
  t.doesNotThrow(() =>
    verifyTranscriptSignature('sender', th, sent.digest, sent.deposit.signature, aliceCert.publicKeyPem),
  );
  t.doesNotThrow(() =>
    verifyTranscriptSignature('receiver', th, got.digest, got.signature, bobCert.publicKeyPem),
  );
  // Roles are domain-separated: Alice's signature is not a receiver signature, and vice versa.
  t.throws(
    () =>
      verifyTranscriptSignature('receiver', th, sent.digest, sent.deposit.signature, aliceCert.publicKeyPem),
    { code: 'bad_signature' },
  );
  t.throws(() => verifyTranscriptSignature('sender', th, got.digest, got.signature, bobCert.publicKeyPem), {
    code: 'bad_signature',
  });
  t.equal(keyFingerprint(sent.key).length, 16);
  t.not(
    keyFingerprint(sent.key),
    sent.key.toString('hex').slice(0, 16),
    'the fingerprint is not a prefix of the key',
  );
});

t.test('relay substitutions towards Alice fail with bad_signature', async (t) => {
  const pk = await bobPrekey();
  // Mallory's own prekey, signed by Mallory: wrong key for Bob's certificate.
  const mp = await generatePrekey({ name: 'bob', certSerial: bobCert.serialHex }, malloryKeys.privateKeyPem);
  const swappedPrekey = { id: pk.signed.id, publicKey: mp.publicKey, signature: pk.signed.signature };
  await t.rejects(
    runSenderExchange(alice, reservationFor(swappedPrekey), { ca: caCert }),
    { code: 'bad_signature' },
    'prekey public swapped',
  );
  await t.rejects(
    runSenderExchange(
      alice,
      reservationFor({ id: mp.id, publicKey: mp.publicKey, signature: mp.signature }),
      { ca: caCert },
    ),
    { code: 'bad_signature' },
    'prekey signed by another key',
  );
  await t.rejects(
    runSenderExchange(alice, reservationFor(pk.signed, { peerCert: malloryCert.der }), { ca: caCert }),
    { code: 'bad_signature' },
    "another user's certificate",
  );
  await t.rejects(
    runSenderExchange(alice, reservationFor(pk.signed, { peerCert: fakeBobCert.der }), { ca: caCert }),
    { code: 'bad_signature' },
    'a certificate for bob from another CA',
  );
  await t.rejects(
    runSenderExchange(alice, reservationFor(pk.signed, { peerCert: Buffer.from('garbage') }), { ca: caCert }),
    { code: 'bad_signature' },
    'garbage certificate',
  );
  await t.rejects(
    runSenderExchange(alice, reservationFor(pk.signed, { peerCert: expiredBobCert.der }), { ca: caCert }),
    { code: 'peer_unavailable' },
    'expired peer certificate',
  );
  const flipped = Buffer.from(pk.signed.signature);
  flipped[10]! ^= 1;
  await t.rejects(
    runSenderExchange(alice, reservationFor({ ...pk.signed, signature: flipped }), { ca: caCert }),
    { code: 'bad_signature' },
    'flipped prekey signature',
  );
  await t.rejects(
    runSenderExchange(alice, reservationFor({ ...pk.signed, id: 'ffffffffffffffff' }), { ca: caCert }),
    { code: 'bad_signature' },
    'prekey id changed',
  );
});

t.test('relay substitutions towards Bob fail with bad_signature and yield no key', async (t) => {
  const { pk, delivery } = await exchange();
  const mallory = await exchange(); // another, valid exchange whose values a relay could splice in
  const cases: [string, Partial<E2eDelivery>][] = [
    ['ephemeral', { ephemeral: mallory.delivery.ephemeral }],
    ['ciphertext', { ciphertext: mallory.delivery.ciphertext }],
    ['signature', { signature: mallory.delivery.signature }],
    ['sender certificate', { fromCert: malloryCert.der }],
    ['sender name', { from: 'mallory', fromCert: malloryCert.der }],
    ['serial', { serial: newKeySerial() }],
    ['expiry', { expiresAt: delivery.expiresAt + 1 }],
    ['receiver name', { to: 'carol' }],
  ];
  for (const [what, change] of cases) {
    await t.rejects(
      runReceiverExchange(bob, { ...delivery, ...change }, pk.own, { ca: caCert }),
      { code: 'bad_signature' },
      what,
    );
  }
  await t.rejects(
    runReceiverExchange(bob, delivery, { ...pk.own, certSerial: malloryCert.serialHex }, { ca: caCert }),
    { code: 'bad_signature' },
    'receiver cert serial differs from the one Alice saw',
  );
  await t.rejects(
    runReceiverExchange(bob, delivery, mallory.pk.own, { ca: caCert }),
    { code: 'bad_signature' },
    'another prekey',
  );
  // Alice signed honestly but the blob was corrupted AND re-signed by someone else: still refused.
  const sent2 = await runReceiverExchange(bob, delivery, pk.own, { ca: caCert });
  t.equal(sent2.key.length, 32, 'the untouched delivery still opens');
});

t.test('prekey signatures bind name, certificate serial, id and key', async (t) => {
  const owner = { name: 'bob', certSerial: bobCert.serialHex };
  const p = await generatePrekey(owner, bobKeys.privateKeyPem);
  t.equal(p.publicKey.length, 32);
  t.equal(p.privateKey.length, 32);
  t.match(p.id, /^[0-9a-f]{16}$/);
  t.doesNotThrow(() => verifyPrekey(owner, p, bobCert.publicKeyPem));
  t.throws(() => verifyPrekey({ ...owner, name: 'bobby' }, p, bobCert.publicKeyPem), {
    code: 'bad_signature',
  });
  t.throws(() => verifyPrekey({ ...owner, certSerial: malloryCert.serialHex }, p, bobCert.publicKeyPem), {
    code: 'bad_signature',
  });
  t.throws(() => verifyPrekey(owner, p, malloryCert.publicKeyPem), { code: 'bad_signature' });
});

t.test('a KDC-generated key: the receiver signature verifies over the KDC transcript', async (t) => {
  const serial = newKeySerial();
  const key = Buffer.alloc(32, 7);
  const expiresAt = Date.now() + DAY;
  const r = await acceptKdcKey(bob, {
    serial,
    from: 'alice',
    fromCertSerial: aliceCert.serialHex,
    to: 'bob',
    toCertSerial: bobCert.serialHex,
    key,
    expiresAt,
  });
  t.ok(r.digest.equals(kdcKeyDigest(serial, key)));
  const th = kdcTranscriptHash({
    serial,
    sender: { name: 'alice', certSerial: aliceCert.serialHex },
    receiver: { name: 'bob', certSerial: bobCert.serialHex },
    digest: r.digest,
    expiresAt,
  });
  t.ok(th.equals(r.transcriptHash));
  t.doesNotThrow(() =>
    verifyTranscriptSignature('receiver', th, r.digest, r.signature, bobCert.publicKeyPem),
  );
  t.not(
    kdcKeyDigest(newKeySerial(), key).toString('hex'),
    r.digest.toString('hex'),
    'the digest depends on the serial',
  );
  await t.rejects(
    acceptKdcKey(bob, {
      serial,
      from: 'alice',
      fromCertSerial: aliceCert.serialHex,
      to: 'carol',
      toCertSerial: bobCert.serialHex,
      key,
      expiresAt,
    }),
    { code: 'bad_signature' },
  );
  await t.rejects(
    acceptKdcKey(bob, {
      serial,
      from: 'alice',
      fromCertSerial: aliceCert.serialHex,
      to: 'bob',
      toCertSerial: bobCert.serialHex,
      key: Buffer.alloc(31),
      expiresAt,
    }),
    { code: 'malformed' },
  );
});

t.test('transcript: every field changes the hash; the encoding is injective', async (t) => {
  const base = {
    serial: newKeySerial(),
    sender: { name: 'alice', certSerial: 'aa' },
    receiver: { name: 'bob', certSerial: 'bb' },
    prekeyId: '0011223344556677',
    prekeyPublic: Buffer.alloc(32, 1),
    ephemeralPublic: Buffer.alloc(32, 2),
    expiresAt: 1_700_000_000_000,
  };
  const h = e2eTranscriptHash(base).toString('hex');
  t.not(
    e2eTranscriptHash({ ...base, sender: { name: 'alic', certSerial: 'eaa' } }).toString('hex'),
    h,
    'shifted boundary',
  );
  t.not(
    e2eTranscriptHash({ ...base, sender: base.receiver, receiver: base.sender }).toString('hex'),
    h,
    'swapped roles',
  );
  t.not(
    e2eTranscriptHash({
      ...base,
      prekeyPublic: base.ephemeralPublic,
      ephemeralPublic: base.prekeyPublic,
    }).toString('hex'),
    h,
    'swapped keys',
  );
  t.throws(() => e2eTranscriptHash({ ...base, ephemeralPublic: Buffer.alloc(31) }), { code: 'malformed' });
  t.throws(() => e2eTranscriptHash({ ...base, serial: 'XYZ' }), { code: 'malformed' });
  t.throws(() => e2eTranscriptHash({ ...base, expiresAt: -1 }), { code: 'malformed' });
  t.not(
    signedContent('sender', Buffer.alloc(32), Buffer.alloc(32)).toString('hex'),
    signedContent('receiver', Buffer.alloc(32), Buffer.alloc(32)).toString('hex'),
  );
  fc.assert(
    fc.property(
      fc.record({
        sender: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,10}$/),
        receiver: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,10}$/),
        a: fc.uint8Array({ minLength: 32, maxLength: 32 }),
        b: fc.uint8Array({ minLength: 32, maxLength: 32 }),
        expiresAt: fc.nat(),
      }),
      fc.nat({ max: 4 }),
      (v, which) => {
        const input = {
          ...base,
          sender: { name: v.sender, certSerial: 'aa' },
          receiver: { name: v.receiver, certSerial: 'bb' },
          prekeyPublic: v.a,
          ephemeralPublic: v.b,
          expiresAt: v.expiresAt,
        };
        const changed = { ...input };
        if (which === 0) changed.sender = { name: `${v.sender}x`, certSerial: 'aa' };
        if (which === 1) changed.receiver = { name: `${v.receiver}x`, certSerial: 'bb' };
        if (which === 2) changed.prekeyPublic = Uint8Array.from(v.a, (x, i) => (i === 0 ? x ^ 1 : x));
        if (which === 3) changed.ephemeralPublic = Uint8Array.from(v.b, (x, i) => (i === 31 ? x ^ 0x80 : x));
        if (which === 4) changed.expiresAt = v.expiresAt + 1;
        return !e2eTranscriptHash(input).equals(e2eTranscriptHash(changed));
      },
    ),
    { numRuns: 200 },
  );
});

t.test('last-resort prekey: its own signature label, so the flag a sender sees is authentic', async (t) => {
  const owner = { name: 'bob', certSerial: bobCert.serialHex };
  const last = await generatePrekey(owner, bobKeys.privateKeyPem, { lastResort: true });
  t.equal(last.lastResort, true);
  const signed = { id: last.id, publicKey: last.publicKey, signature: last.signature };
  t.doesNotThrow(() => verifyPrekey(owner, { ...signed, lastResort: true }, bobCert.publicKeyPem));
  t.throws(
    () => verifyPrekey(owner, signed, bobCert.publicKeyPem),
    { code: 'bad_signature', message: 'signature verification failed' },
    'a last-resort prekey passed off as a one-time one',
  );
  const oneTime = await bobPrekey();
  t.throws(
    () => verifyPrekey(owner, { ...oneTime.signed, lastResort: true }, bobCert.publicKeyPem),
    { code: 'bad_signature' },
    'a one-time prekey passed off as the last-resort one',
  );
  // The exchange runs as with a one-time prekey, twice on the same prekey (it is not consumed).
  const own = {
    id: last.id,
    certSerial: bobCert.serialHex,
    publicKey: last.publicKey,
    privateKey: last.privateKey,
  };
  for (let i = 0; i < 2; i++) {
    const r = reservationFor({ ...signed, lastResort: true });
    const sent = await runSenderExchange(alice, r, { ca: caCert });
    const delivery: E2eDelivery = {
      serial: r.serial,
      from: 'alice',
      fromCert: aliceCert.der,
      to: 'bob',
      toCertSerial: bobCert.serialHex,
      prekeyId: last.id,
      ephemeral: sent.deposit.ephemeral,
      signature: sent.deposit.signature,
      ciphertext: sent.deposit.ciphertext,
      expiresAt: r.expiresAt,
    };
    const got = await runReceiverExchange(bob, delivery, own, { ca: caCert });
    t.ok(got.key.equals(sent.key), `exchange ${i + 1} over the last-resort prekey`);
  }
  await t.rejects(
    runSenderExchange(alice, reservationFor(signed), { ca: caCert }),
    { code: 'bad_signature' },
    'a KDC that drops the flag is caught by the sender',
  );
});
