// test/vectors/keys-v1.json: (1) the implementation (shared/keys) still produces every byte of the
// checked-in file; (2) an independent reading of docs/keys.md "Encodings", written here with node:crypto
// alone and without shared/keys, reproduces every value from the file's inputs: fields(), both
// transcripts, the prekey's signed data, X25519, the wrapping key, the wrapped key, the digests, the
// signature inputs, and the message AAD and ciphertext.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
} from 'node:crypto';
import { buildKeyVectors, type KeyVectorFile } from '../../vectors/generate-keys-v1.js';

const FILE = resolve(dirname(fileURLToPath(import.meta.url)), '../../../../test/vectors/keys-v1.json');
const v = JSON.parse(readFileSync(FILE, 'utf8')) as KeyVectorFile;
const hx = (s: string): Buffer => Buffer.from(s, 'hex');
const ascii = (s: string): Buffer => Buffer.from(s, 'ascii');
const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

t.test('the implementation reproduces test/vectors/keys-v1.json byte for byte', async (t) => {
  t.same(buildKeyVectors(), v);
});

/** docs/keys.md: fields(label, f1..fn) = label || 0x00 || len16(f1) || f1 || ... */
function fields(label: string, ...parts: Buffer[]): Buffer {
  const out: Buffer[] = [ascii(label), Buffer.from([0])];
  for (const p of parts) {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(p.length);
    out.push(len, p);
  }
  return Buffer.concat(out);
}
const u64 = (n: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};
const x25519Public = (priv: Buffer): Buffer =>
  createPublicKey(
    createPrivateKey({
      key: Buffer.concat([hx('302e020100300506032b656e04220420'), priv]),
      format: 'der',
      type: 'pkcs8',
    }),
  )
    .export({ format: 'der', type: 'spki' })
    .subarray(12);
const x25519 = (priv: Buffer, pub: Buffer): Buffer =>
  diffieHellman({
    privateKey: createPrivateKey({
      key: Buffer.concat([hx('302e020100300506032b656e04220420'), priv]),
      format: 'der',
      type: 'pkcs8',
    }),
    publicKey: createPublicKey({
      key: Buffer.concat([hx('302a300506032b656e032100'), pub]),
      format: 'der',
      type: 'spki',
    }),
  });
const gcmSeal = (key: Buffer, nonce: Buffer, plain: Buffer, aad: Buffer): Buffer => {
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
  c.setAAD(aad);
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
};

t.test('independent recomputation from docs/keys.md', async (t) => {
  const I = v.inputs;
  // Serials, ids and names enter fields() as their ASCII text, never as the bytes the hex stands for.
  const serial = ascii(I.key_serial);
  const alice = ascii(I.sender_name);
  const aliceCert = ascii(I.sender_cert_serial);
  const bob = ascii(I.receiver_name);
  const bobCert = ascii(I.receiver_cert_serial);
  const prekeyId = ascii(I.prekey_id);

  const prekeyPublic = x25519Public(hx(I.prekey_private));
  t.equal(prekeyPublic.toString('hex'), v.prekey.public, 'prekey public = X25519(prekey private, 9)');
  t.equal(
    fields('kds v1 prekey', bob, bobCert, prekeyId, prekeyPublic).toString('hex'),
    v.prekey.signed_data,
    'prekey signed data',
  );
  t.equal(
    fields('kds v1 last-resort prekey', bob, bobCert, prekeyId, prekeyPublic).toString('hex'),
    v.prekey.last_resort_signed_data,
    'last-resort prekey signed data',
  );

  // Flow 1.
  const ephemeral = x25519Public(hx(I.sender_ephemeral_private));
  t.equal(ephemeral.toString('hex'), v.e2e.sender_ephemeral_public);
  const e2eFields = fields(
    'kds v1 key exchange e2e',
    serial,
    alice,
    aliceCert,
    bob,
    bobCert,
    prekeyId,
    prekeyPublic,
    ephemeral,
    u64(I.expires_at),
  );
  t.equal(e2eFields.toString('hex'), v.e2e.transcript_fields, 'e2e fields()');
  const th = sha256(e2eFields);
  t.equal(th.toString('hex'), v.e2e.transcript_hash, 'e2e TH');
  const z = x25519(hx(I.sender_ephemeral_private), prekeyPublic);
  t.equal(z.toString('hex'), v.e2e.shared_secret, 'Z (sender side)');
  t.equal(x25519(hx(I.prekey_private), ephemeral).toString('hex'), v.e2e.shared_secret, 'Z (receiver side)');
  const wk = Buffer.from(hkdfSync('sha256', z, th, ascii('kds v1 e2e key wrap'), 32));
  t.equal(wk.toString('hex'), v.e2e.wrapping_key, 'wrapping key');
  const blob = Buffer.concat([hx(I.wrap_nonce), gcmSeal(wk, hx(I.wrap_nonce), hx(I.key), th)]);
  t.equal(blob.toString('hex'), v.e2e.ciphertext, 'e2e ciphertext = nonce || GCM(key, AAD = TH) || tag');
  const digest = sha256(blob);
  t.equal(digest.toString('hex'), v.e2e.digest, 'e2e digest');
  t.equal(
    Buffer.concat([ascii('kds v1 key sender signature'), Buffer.from([0]), th, digest]).toString('hex'),
    v.e2e.sender_signed_content,
    'what Alice signs',
  );
  t.equal(
    Buffer.concat([ascii('kds v1 key receiver signature'), Buffer.from([0]), th, digest]).toString('hex'),
    v.e2e.receiver_signed_content,
    'what Bob signs',
  );

  // Flow 2.
  const kdcDigest = sha256(
    Buffer.concat([ascii('kds v1 kdc key digest'), Buffer.from([0]), serial, hx(I.key)]),
  );
  t.equal(kdcDigest.toString('hex'), v.kdc.digest, 'kdc digest');
  const kdcFields = fields(
    'kds v1 key exchange kdc',
    serial,
    alice,
    aliceCert,
    bob,
    bobCert,
    kdcDigest,
    u64(I.expires_at),
  );
  t.equal(kdcFields.toString('hex'), v.kdc.transcript_fields, 'kdc fields()');
  const kdcTh = sha256(kdcFields);
  t.equal(kdcTh.toString('hex'), v.kdc.transcript_hash, 'kdc TH');
  t.equal(
    Buffer.concat([ascii('kds v1 key receiver signature'), Buffer.from([0]), kdcTh, kdcDigest]).toString(
      'hex',
    ),
    v.kdc.receiver_signed_content,
    'what Bob signs for a KDC-generated key',
  );

  // A message.
  const aad = fields('kds v2 message', serial, alice, bob, u64(I.message_seq));
  t.equal(aad.toString('hex'), v.message.aad, 'message AAD v2');
  t.equal(
    gcmSeal(hx(I.key), hx(I.message_nonce), hx(I.message_plaintext), aad).toString('hex'),
    v.message.ciphertext,
    'message ciphertext || tag',
  );
  const d = createDecipheriv('aes-256-gcm', hx(I.key), hx(I.message_nonce), { authTagLength: 16 });
  d.setAAD(aad);
  const ct = hx(v.message.ciphertext);
  d.setAuthTag(ct.subarray(ct.length - 16));
  t.equal(Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]).toString(), 'hello bob');
});

t.test(
  'a certificate serial formatted as an integer (leading zero digit dropped) is another transcript',
  async (t) => {
    const I = v.inputs;
    t.match(I.sender_cert_serial, /^0/);
    const asInteger = BigInt(`0x${I.sender_cert_serial}`).toString(16);
    t.equal(asInteger.length, I.sender_cert_serial.length - 1, 'the integer form is one digit shorter');
    const kdcDigest = hx(v.kdc.digest);
    const th = (certSerial: string): string =>
      sha256(
        fields(
          'kds v1 key exchange kdc',
          ascii(I.key_serial),
          ascii(I.sender_name),
          ascii(certSerial),
          ascii(I.receiver_name),
          ascii(I.receiver_cert_serial),
          kdcDigest,
          u64(I.expires_at),
        ),
      ).toString('hex');
    t.equal(th(I.sender_cert_serial), v.kdc.transcript_hash);
    t.not(th(asInteger), v.kdc.transcript_hash, 'so the signature would not verify');
  },
);
