// test/vectors/protocol-v1.json: (1) the implementation still produces every byte of the checked-in
// vectors; (2) an independent reading of docs/protocol.md, written here with node:crypto directly and
// without the shared/protocol helpers, reproduces the transcript hashes, the shared secrets, every HKDF
// output, the MACs, the stand-in signatures and the first records from the vector file alone; and for
// the resumed case the ticket (opened with its key), the binder and the key schedule over Z || psk.
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createDecipheriv,
  createDiffieHellman,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
} from 'node:crypto';
import { FFDHE2048_PRIME } from '../../../shared/crypto/dh.js';
import {
  buildProtocolVectors,
  vectorSign,
  type VectorCase,
  type VectorFile,
} from '../../vectors/generate-protocol-v1.js';

const FILE = resolve(dirname(fileURLToPath(import.meta.url)), '../../../../test/vectors/protocol-v1.json');
const vectors = JSON.parse(readFileSync(FILE, 'utf8')) as VectorFile;
const hx = (s: string): Buffer => Buffer.from(s, 'hex');
const sha256 = (...parts: Buffer[]): Buffer => {
  const h = createHash('sha256');
  parts.forEach((p) => h.update(p));
  return h.digest();
};

t.test('the implementation reproduces test/vectors/protocol-v1.json byte for byte', async (t) => {
  const fresh = await buildProtocolVectors();
  t.equal(fresh.cases.length, 5);
  for (const c of fresh.cases) {
    const stored = vectors.cases.find((v) => v.name === c.name);
    t.same(c, stored, c.name);
  }
  t.same(fresh, vectors, 'whole file');
});

/** docs/protocol.md "Transcript": drop the trailing `sig`/`mac` entries, lower the fixmap count. */
function cut(frame: Buffer, entries: { key: string; value: Buffer }[]): Buffer {
  let suffix = Buffer.alloc(0);
  for (const e of entries) {
    const key = Buffer.concat([Buffer.from([0xa0 | e.key.length]), Buffer.from(e.key)]);
    const header =
      e.value.length < 256
        ? Buffer.from([0xc4, e.value.length])
        : Buffer.from([0xc5, e.value.length >> 8, e.value.length & 0xff]);
    suffix = Buffer.concat([suffix, key, header, e.value]);
  }
  const tail = frame.subarray(frame.length - suffix.length);
  if (!tail.equals(suffix)) throw new Error('frame does not end with the expected entries');
  const head = frame[0]!;
  if (head < 0x80 || head > 0x8f) throw new Error('expected a fixmap');
  return Buffer.concat([
    Buffer.from([head - entries.length]),
    frame.subarray(1, frame.length - suffix.length),
  ]);
}

function sharedSecret(c: VectorCase, serverShare: Buffer): Buffer {
  if (c.group === 'x25519') {
    const priv = createPrivateKey({
      key: Buffer.concat([hx('302e020100300506032b656e04220420'), hx(c.inputs.client_dh_private)]),
      format: 'der',
      type: 'pkcs8',
    });
    const pub = createPublicKey({
      key: Buffer.concat([hx('302a300506032b656e032100'), serverShare]),
      format: 'der',
      type: 'spki',
    });
    return diffieHellman({ privateKey: priv, publicKey: pub });
  }
  const dh = createDiffieHellman(FFDHE2048_PRIME, 2);
  dh.setPrivateKey(hx(c.inputs.client_dh_private));
  const z = dh.computeSecret(serverShare);
  return Buffer.concat([Buffer.alloc(256 - z.length), z]);
}

const labelled = (z: Buffer, th: Buffer, label: string, n: number): Buffer =>
  Buffer.from(hkdfSync('sha256', z, th, Buffer.from(label), n));

for (const c of vectors.cases) {
  t.test(`independent recomputation: ${c.name}`, async (t) => {
    const ch = hx(c.messages.client_hello);
    const sh = hx(c.messages.server_hello);
    const cf = hx(c.messages.client_finish);
    const authenticated = c.mode !== 'insecure' && c.mode !== 'resume';
    const sSig = c.signatures.server === null ? null : hx(c.signatures.server);
    const cSig = c.signatures.client === null ? null : hx(c.signatures.client);
    const sMac = hx(c.macs.server);
    const cMac = hx(c.macs.client);

    // The fixed inputs appear where docs/protocol.md puts them.
    t.ok(ch.includes(hx(c.inputs.client_nonce)), 'client nonce inside client_hello');
    t.ok(sh.includes(hx(c.inputs.server_nonce)), 'server nonce inside server_hello');
    if (c.inputs.server_cert !== null)
      t.ok(sh.includes(hx(c.inputs.server_cert)), 'server certificate inside server_hello');
    if (c.inputs.client_cert !== null)
      t.ok(cf.includes(hx(c.inputs.client_cert)), 'client certificate inside client_finish');

    // Transcript hashes.
    const shCore = cut(
      sh,
      authenticated
        ? [
            { key: 'sig', value: sSig! },
            { key: 'mac', value: sMac },
          ]
        : [{ key: 'mac', value: sMac }],
    );
    const shNoMac = cut(sh, [{ key: 'mac', value: sMac }]);
    const thHello = sha256(ch, shCore);
    t.equal(thHello.toString('hex'), c.transcript.th_hello, 'TH_hello');
    t.equal(sha256(ch, shNoMac).toString('hex'), c.transcript.th_server_mac, 'TH for the server MAC');
    const cfNoMac = cut(cf, [{ key: 'mac', value: cMac }]);
    t.equal(sha256(ch, sh, cfNoMac).toString('hex'), c.transcript.th_client_mac, 'TH for the client MAC');
    const thFinal = sha256(ch, sh, cf);
    t.equal(thFinal.toString('hex'), c.transcript.th_final, 'TH_final');

    // Signatures (stand-in rule) over context || 0x00 || TH.
    if (authenticated) {
      const input = Buffer.concat([
        Buffer.from('kds v1 server CertificateVerify'),
        Buffer.from([0]),
        thHello,
      ]);
      t.equal(input.toString('hex'), c.transcript.server_signature_input);
      t.same(sSig, vectorSign('server', input), 'server signature covers the documented input');
    }
    if (c.mode === 'auth') {
      const cfCore = cut(cf, [
        { key: 'sig', value: cSig! },
        { key: 'mac', value: cMac },
      ]);
      const thClientSig = sha256(ch, sh, cfCore);
      t.equal(thClientSig.toString('hex'), c.transcript.th_client_sig);
      const input = Buffer.concat([
        Buffer.from('kds v1 client CertificateVerify'),
        Buffer.from([0]),
        thClientSig,
      ]);
      t.same(cSig, vectorSign('client', input), 'client signature covers the documented input');
    }

    // DH and the key schedule.
    const serverShareAt = sh.indexOf(Buffer.from([0xa5, ...Buffer.from('share')]));
    t.ok(serverShareAt > 0);
    const shareLen = c.group === 'x25519' ? 32 : 256;
    const headerLen = shareLen < 256 ? 2 : 3;
    const serverShare = sh.subarray(serverShareAt + 6 + headerLen, serverShareAt + 6 + headerLen + shareLen);
    const dh = sharedSecret(c, serverShare);
    t.equal(dh.toString('hex'), c.keys.shared_secret, 'Z');
    // Resumed: IKM = Z || psk (docs/protocol.md "Resumption"); otherwise IKM = Z.
    const z = c.mode === 'resume' ? Buffer.concat([dh, resumedPsk(t, c, ch)]) : dh;
    if (c.mode === 'resume') t.equal(z.toString('hex'), c.resumption!.ikm, 'IKM = Z || psk');
    else t.equal(c.resumption, null, 'no resumption facts outside mode resume');
    const sfk = labelled(z, thHello, 'kds v1 server finished', 32);
    const cfk = labelled(z, thHello, 'kds v1 client finished', 32);
    t.equal(sfk.toString('hex'), c.keys.server_finished_key);
    t.equal(cfk.toString('hex'), c.keys.client_finished_key);
    t.equal(createHmac('sha256', sfk).update(sha256(ch, shNoMac)).digest('hex'), c.macs.server, 'server MAC');
    t.equal(
      createHmac('sha256', cfk)
        .update(sha256(ch, sh, cfNoMac))
        .digest('hex'),
      c.macs.client,
      'client MAC',
    );
    const keys = {
      c2s_key: labelled(z, thFinal, 'kds v1 c2s key', 32),
      c2s_iv: labelled(z, thFinal, 'kds v1 c2s iv', 12),
      s2c_key: labelled(z, thFinal, 'kds v1 s2c key', 32),
      s2c_iv: labelled(z, thFinal, 'kds v1 s2c iv', 12),
      session_id: labelled(z, thFinal, 'kds v1 session id', 16),
      exporter_secret: labelled(z, thFinal, 'kds v1 exporter', 32),
    };
    for (const [k, v] of Object.entries(keys)) t.equal(v.toString('hex'), c.keys[k as keyof typeof keys], k);
    // The psk of the next ticket: authenticated and resumed sessions only.
    t.equal(
      c.keys.resumption_secret,
      c.mode === 'auth' || c.mode === 'resume'
        ? labelled(z, thFinal, 'kds v1 resumption', 32).toString('hex')
        : null,
      'resumption_secret',
    );

    // Records: {t: 'r', c: ciphertext || tag}, nonce = IV XOR seq, AAD "kds v1 <dir>".
    for (const r of c.records) {
      const frame = hx(r.frame);
      const prefix = hx('82a174a172a163');
      t.same(frame.subarray(0, prefix.length), prefix, 'record envelope {t: "r", c: bin}');
      const lenHeader = frame[prefix.length]!;
      const body = lenHeader === 0xc4 ? frame.subarray(prefix.length + 2) : frame.subarray(prefix.length + 3);
      const key = r.direction === 'c2s' ? keys.c2s_key : keys.s2c_key;
      const iv = Buffer.from(r.direction === 'c2s' ? keys.c2s_iv : keys.s2c_iv);
      const nonce = Buffer.alloc(12);
      nonce.writeBigUInt64BE(BigInt(r.sequence), 4);
      for (let i = 0; i < 12; i++) nonce[i]! ^= iv[i]!;
      const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
      d.setAAD(Buffer.from(`kds v1 ${r.direction}`));
      d.setAuthTag(body.subarray(body.length - 16));
      const plaintext = Buffer.concat([d.update(body.subarray(0, body.length - 16)), d.final()]);
      t.equal(plaintext.toString('hex'), r.plaintext, `${r.direction} record ${r.sequence}`);
    }
    if (c.mode === 'auth') {
      // docs/protocol.md "Integers": a time above 2^32 is uint 64 (0xcf), 8 bytes big-endian.
      const expiresAt = Buffer.concat([
        Buffer.from([0xa9]),
        Buffer.from('expiresAt'),
        hx('cf0000019b76daa800'),
      ]);
      t.ok(hx(c.records[0]!.plaintext).includes(expiresAt), 'ready.expiresAt is uint 64');
    }
  });
}

/**
 * The resumed case's psk, from the vector file alone: the ticket opens under its key (AES-256-GCM, aad
 * "kds v1 ticket" || 0x00 || key_id) to contents holding the psk, the psk is the resumed session's
 * (auth-x25519) resumption secret, and the client_hello's binder is HMAC(binder_key, SHA-256(client_hello
 * cut before the binder)) with binder_key = HKDF(psk, salt = empty, "kds v1 resumption binder", 32).
 */
function resumedPsk(t: Test, c: VectorCase, ch: Buffer): Buffer {
  const r = c.resumption!;
  const psk = hx(r.psk);
  const auth = vectors.cases.find((v) => v.name === 'auth-x25519')!;
  t.equal(r.psk, auth.keys.resumption_secret, "the psk is the auth-x25519 session's resumption secret");
  const ticket = hx(r.ticket);
  const keyId = hx(r.ticket_key_id);
  t.same(ticket.subarray(0, 16), keyId, 'the ticket starts with its key id');
  t.same(ticket.subarray(16, 28), hx(r.ticket_nonce), 'then its nonce');
  const aad = Buffer.concat([Buffer.from('kds v1 ticket'), Buffer.from([0]), keyId]);
  t.equal(aad.toString('hex'), r.ticket_aad, 'ticket aad');
  const d = createDecipheriv('aes-256-gcm', hx(r.ticket_key), hx(r.ticket_nonce), { authTagLength: 16 });
  d.setAAD(aad);
  d.setAuthTag(ticket.subarray(ticket.length - 16));
  const contents = Buffer.concat([d.update(ticket.subarray(28, ticket.length - 16)), d.final()]);
  t.equal(contents.toString('hex'), r.ticket_contents, 'the ticket opens to its contents');
  // msgpack: the key "psk" (fixstr 3), then bin 8 of 32 bytes: the psk.
  const pskEntry = Buffer.concat([Buffer.from([0xa3]), Buffer.from('psk'), Buffer.from([0xc4, 32]), psk]);
  t.ok(contents.includes(pskEntry), 'the contents carry the psk');
  t.ok(ch.includes(ticket), 'the client_hello carries the ticket');
  const binderKey = Buffer.from(
    hkdfSync('sha256', psk, Buffer.alloc(0), Buffer.from('kds v1 resumption binder'), 32),
  );
  t.equal(binderKey.toString('hex'), r.binder_key, 'binder_key');
  const binder = hx(r.binder);
  const thBinder = sha256(cut(ch, [{ key: 'binder', value: binder }]));
  t.equal(thBinder.toString('hex'), r.th_binder, 'the binder covers the hello cut before it');
  t.equal(createHmac('sha256', binderKey).update(thBinder).digest('hex'), r.binder, 'binder');
  return psk;
}
