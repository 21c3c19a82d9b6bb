// Generator of test/vectors/protocol-v1.json: kds protocol v1 handshakes and first records with fixed
// ephemeral keys, nonces and certificate bytes, so that every byte is reproducible (the Noise
// test-vector method). Regenerate after an intended protocol change with:
//
//   npx tsc -p . && node dist/test/vectors/generate-protocol-v1.js > test/vectors/protocol-v1.json
//
// RSA-PSS signatures are randomized, so the vectors replace the RSA layer with a deterministic stand-in
// that is NOT a signature scheme: sig = SHA-256("kds vector signer " || role || data) repeated 8 times
// (256 bytes, the size of an RSA-2048 signature). Certificates are opaque DER-looking blobs. Everything
// else (encoding, transcript, DH, key schedule, MACs, records) is the real code path.
//
// The resumed case (docs/protocol.md "Resumption") resumes the `auth-x25519` session: its psk is that
// case's resumption_secret, sealed into a ticket under a fixed ticket key and nonce, with fixed times
// and a fixed "now" for the KDC's expiry check.
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { ParsedCertificate } from '../../shared/pki/x509.js';
import type { DhGroup } from '../../shared/crypto/dh.js';
import {
  ClientHandshake,
  ServerHandshake,
  type HandshakeMode,
  type ClientHandshakeOptions,
  type ServerHandshakeOptions,
} from '../../shared/protocol/handshake.js';
import { decodeValue, encodeValue } from '../../shared/protocol/codec.js';
import {
  binderKey,
  deriveHandshakeKeys,
  deriveTrafficKeys,
  resumptionIkm,
} from '../../shared/protocol/key-schedule.js';
import { sealTicket, type TicketContents, type TicketKeyRing } from '../../shared/protocol/ticket.js';
import { aesGcmOpen } from '../../shared/crypto/aead.js';
import { hmacSha256 } from '../../shared/crypto/hash.js';
import { generateDhKeyPair } from '../../shared/crypto/dh.js';
import { frameWithout, signatureInput, transcriptHash } from '../../shared/protocol/transcript.js';
import { decodeFrame } from '../../shared/protocol/messages.js';
import { asPssSigner } from '../../shared/crypto/signer.js';

export interface VectorCase {
  name: string;
  mode: HandshakeMode;
  groups: DhGroup[];
  group: DhGroup;
  inputs: {
    client_nonce: string;
    server_nonce: string;
    client_dh_private: string;
    server_dh_private: string;
    server_cert: string | null;
    client_cert: string | null;
    client_name: string | null;
  };
  messages: { client_hello: string; server_hello: string; client_finish: string };
  transcript: {
    th_hello: string;
    server_signature_input: string | null;
    th_server_mac: string;
    th_client_sig: string | null;
    client_signature_input: string | null;
    th_client_mac: string;
    th_final: string;
  };
  keys: {
    shared_secret: string;
    server_finished_key: string;
    client_finished_key: string;
    c2s_key: string;
    c2s_iv: string;
    s2c_key: string;
    s2c_iv: string;
    session_id: string;
    exporter_secret: string;
    /** HKDF(IKM, TH_final, "kds v1 resumption", 32): the psk of the next ticket ('auth' and 'resume'). */
    resumption_secret: string | null;
  };
  /** 'resume' only: the ticket, the binder and the input keying material Z || psk. */
  resumption: {
    psk: string;
    ticket_key_id: string;
    ticket_key: string;
    ticket_nonce: string;
    ticket_contents: string;
    ticket_aad: string;
    ticket: string;
    binder_key: string;
    th_binder: string;
    binder: string;
    ikm: string;
  } | null;
  macs: { server: string; client: string };
  signatures: { server: string | null; client: string | null };
  records: { direction: 'c2s' | 's2c'; sequence: number; plaintext: string; frame: string }[];
}

export interface VectorFile {
  description: string;
  version: 1;
  signer: string;
  cases: VectorCase[];
}

const SIGNER_RULE =
  'sig = SHA-256("kds vector signer " || role || data) repeated 8 times; role is "server" or "client", data is the signature input (transcript.server_signature_input or transcript.client_signature_input)';

export function vectorSign(role: 'server' | 'client', data: Buffer): Buffer {
  const h = createHash('sha256').update(`kds vector signer ${role}`).update(data).digest();
  return Buffer.concat(new Array(8).fill(h));
}

/** A DER-looking opaque certificate: SEQUENCE, length 0x0100, then a fixed pattern. */
function opaqueCert(label: string): Buffer {
  const body = Buffer.alloc(256);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7 + label.charCodeAt(i % label.length)) & 0xff;
  return Buffer.concat([Buffer.from([0x30, 0x82, 0x01, 0x00]), body]);
}

function stubCertificate(der: Buffer, role: 'server' | 'client'): ParsedCertificate {
  return {
    der,
    subjectCN: role,
    fingerprint256: createHash('sha256').update(der).digest('hex'),
  } as ParsedCertificate;
}

const h = (b: Buffer | undefined | null): string | null =>
  b === undefined || b === null ? null : b.toString('hex');

interface CaseSpec {
  name: string;
  mode: HandshakeMode;
  group: DhGroup;
  clientPrivate: string;
  serverPrivate: string;
}

/** The resumed case's ticket key, nonce and times (epoch ms); "now" lies between issuedAt and expiresAt. */
const TICKET_KEY_ID = '00112233445566778899aabbccddeeff';
const TICKET_KEY = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
const TICKET_NONCE = 'a0a1a2a3a4a5a6a7a8a9aaab';
const TICKET_ISSUED_AT = 1767182400000;
const TICKET_NOW = 1767186000000;
const TICKET_EXPIRES_AT = 1767225600000;

const X25519_CLIENT = '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'; // RFC 7748 6.1 Alice
const X25519_SERVER = '5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'; // RFC 7748 6.1 Bob
const FF_CLIENT = '3ea3c8b27c4e8f1a0d5b6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3';
const FF_SERVER = '51d2f3e4a5b6c7d8e9fa0b1c2d3e4f5061728394a5b6c7d8e9f0011223344556';

const CASES: CaseSpec[] = [
  {
    name: 'auth-x25519',
    mode: 'auth',
    group: 'x25519',
    clientPrivate: X25519_CLIENT,
    serverPrivate: X25519_SERVER,
  },
  {
    name: 'auth-ffdhe2048',
    mode: 'auth',
    group: 'ffdhe2048',
    clientPrivate: FF_CLIENT,
    serverPrivate: FF_SERVER,
  },
  {
    name: 'enroll-x25519',
    mode: 'enroll',
    group: 'x25519',
    clientPrivate: X25519_CLIENT,
    serverPrivate: X25519_SERVER,
  },
  {
    name: 'insecure-x25519',
    mode: 'insecure',
    group: 'x25519',
    clientPrivate: X25519_CLIENT,
    serverPrivate: X25519_SERVER,
  },
  {
    name: 'resume-x25519',
    mode: 'resume',
    group: 'x25519',
    clientPrivate: X25519_CLIENT,
    serverPrivate: X25519_SERVER,
  },
];

interface Resumption {
  psk: Buffer;
  ring: TicketKeyRing;
  ticket: Buffer;
}

/** The ticket the KDC would hand the `auth` session whose resumption secret is `psk`. */
function vectorTicket(psk: Buffer): Resumption {
  const key = { id: Buffer.from(TICKET_KEY_ID, 'hex'), key: Buffer.from(TICKET_KEY, 'hex') };
  const ring: TicketKeyRing = { current: key, all: [key] };
  const contents: TicketContents = {
    v: 1,
    name: 'alice',
    serial: '0123456789abcdef',
    role: 'client',
    notAfter: TICKET_EXPIRES_AT,
    issuedAt: TICKET_ISSUED_AT,
    expiresAt: TICKET_EXPIRES_AT,
    psk,
  };
  return { psk, ring, ticket: sealTicket(ring, contents, Buffer.from(TICKET_NONCE, 'hex')) };
}

async function buildCase(spec: CaseSpec, resumed?: Resumption): Promise<VectorCase> {
  const clientNonce = Buffer.alloc(32);
  const serverNonce = Buffer.alloc(32);
  for (let i = 0; i < 32; i++) {
    clientNonce[i] = i;
    serverNonce[i] = 0xff - i;
  }
  const serverCert = opaqueCert('kdc');
  const clientCert = opaqueCert('alice');
  const verify = (role: 'server' | 'client') => (data: Buffer, sig: Buffer) =>
    vectorSign(role, data).equals(sig);
  const groups: DhGroup[] = ['x25519', 'ffdhe2048'];
  const clientOpts: ClientHandshakeOptions = {
    mode: spec.mode,
    groups,
    group: spec.group,
    checkServerCertificate: () => undefined,
    parseCertificate: (der) => stubCertificate(der, 'server'),
    verifySignature: verify('server'),
    testing: { nonce: clientNonce, dhPrivateKey: Buffer.from(spec.clientPrivate, 'hex') },
  };
  if (spec.mode === 'auth')
    clientOpts.credentials = {
      certificateDer: clientCert,
      sign: asPssSigner(async (d) => vectorSign('client', d)),
    };
  if (spec.mode === 'insecure') clientOpts.name = 'mallory';
  if (resumed !== undefined) clientOpts.resumption = { ticket: resumed.ticket, psk: resumed.psk };
  const serverOpts: ServerHandshakeOptions = {
    credentials: { certificateDer: serverCert, sign: asPssSigner(async (d) => vectorSign('server', d)) },
    checkClientCertificate: () => undefined,
    parseCertificate: (der) => stubCertificate(der, 'client'),
    verifySignature: verify('client'),
    allowInsecure: true,
    testing: { nonce: serverNonce, dhPrivateKey: Buffer.from(spec.serverPrivate, 'hex') },
  };
  if (resumed !== undefined)
    serverOpts.resumption = { keys: () => resumed.ring, check: () => undefined, now: () => TICKET_NOW };
  const c = new ClientHandshake(clientOpts);
  const s = new ServerHandshake(serverOpts);
  const ch = c.clientHello();
  const sh = await s.receiveClientHello(ch);
  const { clientFinish: cf, result: client } = await c.receiveServerHello(sh);
  const server = await s.receiveClientFinish(cf);

  // Intermediate values, recomputed from the messages with the spec-level helpers.
  const z = generateDhKeyPair(spec.group, Buffer.from(spec.clientPrivate, 'hex')).deriveSharedSecret(
    (decodeFrame(sh) as { share: Buffer }).share,
  );
  const shLayout = decodeValue(sh).layout;
  const cfLayout = decodeValue(cf).layout;
  const shFrame = decodeFrame(sh) as { sig?: Buffer; mac: Buffer };
  const cfFrame = decodeFrame(cf) as { sig?: Buffer; mac: Buffer };
  const authenticated = spec.mode !== 'insecure' && spec.mode !== 'resume';
  const thHello = transcriptHash(ch, frameWithout(sh, shLayout, authenticated ? 'sig' : 'mac'));
  const thServerMac = transcriptHash(ch, frameWithout(sh, shLayout, 'mac'));
  const thClientSig = spec.mode === 'auth' ? transcriptHash(ch, sh, frameWithout(cf, cfLayout, 'sig')) : null;
  const thClientMac = transcriptHash(ch, sh, frameWithout(cf, cfLayout, 'mac'));
  const thFinal = transcriptHash(ch, sh, cf);
  // Resumed: the key schedule's input keying material is Z || psk.
  const ikm = resumed === undefined ? z : resumptionIkm(z, resumed.psk);
  const hk = deriveHandshakeKeys(ikm, thHello);
  const tk = deriveTrafficKeys(ikm, thFinal);
  if (!hmacSha256(hk.serverFinishedKey, thServerMac).equals(shFrame.mac))
    throw new Error('server mac mismatch');
  if (!thFinal.equals(client.transcriptHash) || client.sessionId !== server.sessionId)
    throw new Error('sides disagree');

  // The first records: the server's `ready` push, a client ping, the server's answer. Each is opened by
  // its peer before it is recorded.
  const readyBody: Record<string, unknown> = {
    session: server.sessionId,
    mode: spec.mode,
    role:
      spec.mode === 'auth' || spec.mode === 'resume'
        ? 'client'
        : spec.mode === 'enroll'
          ? 'anonymous'
          : 'insecure',
  };
  // A resumed session's ready names the same certificate as the full handshake's (the ticket's).
  if (spec.mode === 'auth' || spec.mode === 'resume')
    Object.assign(readyBody, { name: 'alice', serial: '0123456789abcdef', expiresAt: 1767225600000 });
  const data = Buffer.from('hello kds');
  const flow = [
    {
      direction: 's2c' as const,
      sequence: 0,
      plain: { t: 'ready', b: readyBody },
      frame: server.channel.sealPush('ready', readyBody),
    },
    {
      direction: 'c2s' as const,
      sequence: 0,
      plain: { t: 'ping', id: 1, b: { data } },
      frame: client.channel.sealRequest('ping', 1, { data }),
    },
    {
      direction: 's2c' as const,
      sequence: 1,
      plain: { t: 'ok', id: 1, b: { pong: true, data } },
      frame: server.channel.sealOk('ping', 1, { pong: true, data }),
    },
  ];
  const records: VectorCase['records'] = flow.map((r) => {
    if (r.direction === 's2c') client.channel.open(r.frame);
    else server.channel.open(r.frame);
    return {
      direction: r.direction,
      sequence: r.sequence,
      plaintext: encodeValue(r.plain).toString('hex'),
      frame: r.frame.toString('hex'),
    };
  });

  return {
    name: spec.name,
    mode: spec.mode,
    groups,
    group: spec.group,
    inputs: {
      client_nonce: clientNonce.toString('hex'),
      server_nonce: serverNonce.toString('hex'),
      client_dh_private: spec.clientPrivate,
      server_dh_private: spec.serverPrivate,
      server_cert: authenticated ? serverCert.toString('hex') : null,
      client_cert: spec.mode === 'auth' ? clientCert.toString('hex') : null,
      client_name: spec.mode === 'insecure' ? 'mallory' : null,
    },
    messages: {
      client_hello: ch.toString('hex'),
      server_hello: sh.toString('hex'),
      client_finish: cf.toString('hex'),
    },
    transcript: {
      th_hello: thHello.toString('hex'),
      server_signature_input: authenticated ? signatureInput('server', thHello).toString('hex') : null,
      th_server_mac: thServerMac.toString('hex'),
      th_client_sig: h(thClientSig),
      client_signature_input: thClientSig ? signatureInput('client', thClientSig).toString('hex') : null,
      th_client_mac: thClientMac.toString('hex'),
      th_final: thFinal.toString('hex'),
    },
    keys: {
      shared_secret: z.toString('hex'),
      server_finished_key: hk.serverFinishedKey.toString('hex'),
      client_finished_key: hk.clientFinishedKey.toString('hex'),
      c2s_key: tk.c2sKey.toString('hex'),
      c2s_iv: tk.c2sIv.toString('hex'),
      s2c_key: tk.s2cKey.toString('hex'),
      s2c_iv: tk.s2cIv.toString('hex'),
      session_id: tk.sessionId.toString('hex'),
      exporter_secret: tk.exporterSecret.toString('hex'),
      resumption_secret: h(client.resumptionSecret),
    },
    resumption: resumed === undefined ? null : resumptionFacts(resumed, ch, ikm),
    macs: { server: shFrame.mac.toString('hex'), client: cfFrame.mac.toString('hex') },
    signatures: { server: h(shFrame.sig), client: h(cfFrame.sig) },
    records,
  };
}

/** The resumed case's ticket, binder and IKM, recomputed from the messages with the spec-level helpers. */
function resumptionFacts(r: Resumption, ch: Buffer, ikm: Buffer): NonNullable<VectorCase['resumption']> {
  const { id, key } = r.ring.current;
  const nonce = r.ticket.subarray(id.length, id.length + 12);
  const contents = aesGcmOpen(key, nonce, r.ticket.subarray(id.length + 12), ticketAad(id), 'ticket_invalid');
  const chFrame = decodeFrame(ch) as { binder?: Buffer };
  const thBinder = transcriptHash(frameWithout(ch, decodeValue(ch).layout, 'binder'));
  const bk = binderKey(r.psk);
  if (!hmacSha256(bk, thBinder).equals(chFrame.binder!)) throw new Error('binder mismatch');
  return {
    psk: r.psk.toString('hex'),
    ticket_key_id: id.toString('hex'),
    ticket_key: key.toString('hex'),
    ticket_nonce: nonce.toString('hex'),
    ticket_contents: contents.toString('hex'),
    ticket_aad: ticketAad(id).toString('hex'),
    ticket: r.ticket.toString('hex'),
    binder_key: bk.toString('hex'),
    th_binder: thBinder.toString('hex'),
    binder: chFrame.binder!.toString('hex'),
    ikm: ikm.toString('hex'),
  };
}

/** docs/protocol.md "Resumption": aad = "kds v1 ticket" || 0x00 || key_id. */
function ticketAad(keyId: Buffer): Buffer {
  return Buffer.concat([Buffer.from('kds v1 ticket\0', 'latin1'), keyId]);
}

export async function buildProtocolVectors(): Promise<VectorFile> {
  const cases: VectorCase[] = [];
  for (const spec of CASES) {
    // The resumed case resumes the auth-x25519 session: its psk is that session's resumption secret.
    const auth = cases.find((c) => c.name === 'auth-x25519');
    const resumed =
      spec.mode === 'resume' && auth !== undefined
        ? vectorTicket(Buffer.from(auth.keys.resumption_secret!, 'hex'))
        : undefined;
    cases.push(await buildCase(spec, resumed));
  }
  return {
    description:
      'kds wire protocol v1 known-answer vectors (docs/protocol.md). All values are lowercase hex. ' +
      'Regenerate with: npx tsc -p . && node dist/test/vectors/generate-protocol-v1.js > test/vectors/protocol-v1.json',
    version: 1,
    signer: SIGNER_RULE,
    cases,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = await buildProtocolVectors();
  process.stdout.write(`${JSON.stringify(file, null, 2)}\n`);
}
