// shared/protocol/handshake.ts: full handshakes in memory between ClientHandshake and ServerHandshake
// (auth, enroll, insecure x x25519, ffdhe2048) with real RSA keys and certificates from shared/pki,
// then every way an attacker or a broken peer can deviate, each asserting its error code.
import t from 'tap';
import { codeOf } from '../../helpers/code-of.js';
import { FFDHE2048_PRIME, generateDhKeyPair, type DhGroup } from '../../../shared/crypto/dh.js';
import { AuthError } from '../../../shared/errors.js';
import {
  ClientHandshake,
  ServerHandshake,
  type ClientHandshakeOptions,
  type ServerHandshakeOptions,
} from '../../../shared/protocol/handshake.js';
import { encodeValue } from '../../../shared/protocol/codec.js';
import { decodeFrame, encodeAlert, encodeFrame, type Frame } from '../../../shared/protocol/messages.js';
import { parseCertificate, pemToDer, type ParsedCertificate } from '../../../shared/pki/x509.js';
import { clientCheck, handshake, makePki, serverCheck, type Pki } from './fixtures.js';
import { openssl } from '../pki/pki-fixtures.js';
import { tempDir } from '../../helpers/tmp.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { asPssSigner } from '../../../shared/crypto/signer.js';

t.setTimeout(180_000);

let pki: Pki;
t.before(async () => {
  pki = await makePki();
});

const FIXED_CLIENT = { nonce: Buffer.alloc(32, 0x11), dhPrivateKey: Buffer.alloc(32, 0x22) };

function clientOpts(
  mode: ClientHandshakeOptions['mode'],
  extra: Partial<ClientHandshakeOptions> = {},
): ClientHandshakeOptions {
  const base: ClientHandshakeOptions = { mode, checkServerCertificate: serverCheck(pki) };
  if (mode === 'auth') base.credentials = pki.client.credentials;
  if (mode === 'insecure') base.name = 'mallory';
  return { ...base, ...extra };
}

function serverOpts(extra: Partial<ServerHandshakeOptions> = {}): ServerHandshakeOptions {
  return {
    credentials: pki.server.credentials,
    checkClientCertificate: clientCheck(pki),
    allowInsecure: true,
    ...extra,
  };
}

/** Re-encode a frame after editing its decoded fields (signatures/MACs then no longer match). */
function edit(frame: Buffer, fn: (f: Record<string, unknown>) => void): Buffer {
  const f = decodeFrame(Buffer.from(frame)) as unknown as Record<string, unknown>; // decoded bytes are views: copy
  fn(f);
  return encodeFrame(f as unknown as Frame);
}

t.test('full handshakes: every mode with both groups', async (t) => {
  for (const mode of ['auth', 'enroll', 'insecure'] as const) {
    for (const group of ['x25519', 'ffdhe2048'] as const) {
      await t.test(`${mode} / ${group}`, async (t) => {
        const f = await handshake(clientOpts(mode, { group }), serverOpts());
        t.equal(f.client.mode, mode);
        t.equal(f.server.mode, mode);
        t.equal(f.client.group, group);
        t.equal(f.server.group, group);
        t.equal(f.client.cipher, 'AES-256-GCM');
        t.match(f.client.sessionId, /^[0-9a-f]{32}$/);
        t.equal(f.client.sessionId, f.server.sessionId, 'both sides derive the same session id');
        t.same(f.client.transcriptHash, f.server.transcriptHash, 'and the same transcript hash');
        if (mode === 'insecure') {
          t.equal(f.client.serverCertificate, undefined);
          t.equal(f.server.claimedName, 'mallory');
        } else {
          t.equal(f.client.serverCertificate?.fingerprint256, pki.server.cert.fingerprint256);
        }
        if (mode === 'auth') t.equal(f.server.clientCertificate?.subjectCN, 'alice');
        else t.equal(f.server.clientCertificate, undefined);
        // The channel works both ways and the exporters agree.
        const req = f.client.channel.sealRequest('ping', 7, { data: Buffer.from('hi') });
        t.same(f.server.channel.open(req), { type: 'ping', id: 7, body: { data: Buffer.from('hi') } });
        const ok = f.server.channel.sealOk('ping', 7, { pong: true });
        t.same(f.client.channel.open(ok), { kind: 'ok', type: 'ping', id: 7, body: { pong: true } });
        t.same(
          f.client.channel.exportKeyingMaterial('test', 32),
          f.server.channel.exportKeyingMaterial('test', 32),
        );
        // The group really is the one negotiated: the shares have that group's size.
        const ch = decodeFrame(f.clientHello);
        t.equal(ch.t === 'client_hello' && ch.share.length, group === 'x25519' ? 32 : 256);
      });
    }
  }
});

t.test('two handshakes never share keys', async (t) => {
  const a = await handshake(clientOpts('auth'), serverOpts());
  const b = await handshake(clientOpts('auth'), serverOpts());
  t.not(a.client.sessionId, b.client.sessionId);
  const rec = a.client.channel.sealRequest('ping', 1, {});
  t.throws(
    () => b.server.channel.open(rec),
    { code: 'record_auth' },
    'a record from another session is refused',
  );
});

t.test('downgrades fail', async (t) => {
  await t.test(
    'mode auth -> insecure rewritten by a MITM: client refuses the unauthenticated server_hello',
    async (t) => {
      const code = await codeOf(
        handshake(clientOpts('auth'), serverOpts({ allowInsecure: true }), {
          clientHello: (b) => edit(b, (f) => (f.mode = 'insecure')),
        }),
      );
      t.equal(code, 'insecure_refused');
    },
  );
  await t.test('mode auth -> insecure at a server that refuses insecure', async (t) => {
    const code = await codeOf(
      handshake(clientOpts('auth'), serverOpts({ allowInsecure: false }), {
        clientHello: (b) => edit(b, (f) => (f.mode = 'insecure')),
      }),
    );
    t.equal(code, 'insecure_refused');
  });
  await t.test('insecure client at a default server', async (t) => {
    // Without allowInsecure at all: what a server does when its options say nothing.
    const { allowInsecure: _set, ...atDefaults } = serverOpts();
    t.equal(await codeOf(handshake(clientOpts('insecure'), atDefaults)), 'insecure_refused');
  });
  await t.test('mode auth -> enroll rewritten: the server signs the altered transcript', async (t) => {
    t.equal(
      await codeOf(
        handshake(clientOpts('auth'), serverOpts(), {
          clientHello: (b) => edit(b, (f) => (f.mode = 'enroll')),
        }),
      ),
      'bad_signature',
    );
  });
  await t.test('offered groups trimmed by a MITM', async (t) => {
    const code = await codeOf(
      handshake(clientOpts('auth', { groups: ['x25519', 'ffdhe2048'] }), serverOpts(), {
        clientHello: (b) => edit(b, (f) => (f.groups = ['x25519'])),
      }),
    );
    t.equal(code, 'bad_signature');
  });
  await t.test(
    'cert and sig stripped from server_hello: the client never accepts an unauthenticated server',
    async (t) => {
      for (const mode of ['auth', 'enroll'] as const) {
        const code = await codeOf(
          handshake(clientOpts(mode), serverOpts(), {
            serverHello: (b) =>
              edit(b, (f) => {
                delete f.cert;
                delete f.sig;
              }),
          }),
        );
        t.equal(code, 'insecure_refused', mode);
      }
    },
  );
  await t.test(
    'insecure mode still confirms keys: a MITM that alters the transcript breaks the MAC',
    async (t) => {
      t.equal(
        await codeOf(
          handshake(clientOpts('insecure'), serverOpts(), {
            clientHello: (b) => edit(b, (f) => (f.nonce = Buffer.alloc(32))),
          }),
        ),
        'bad_mac',
      );
    },
  );
});

t.test('versions and groups', async (t) => {
  const s = new ServerHandshake(serverOpts());
  const ch = new ClientHandshake(clientOpts('auth')).clientHello();
  t.equal(await codeOf(s.receiveClientHello(edit(ch, (f) => (f.v = 2)))), 'version_unsupported');
  t.equal(
    await codeOf(
      new ServerHandshake(serverOpts()).receiveClientHello(edit(ch, (f) => (f.groups = ['ffdhe2048']))),
    ),
    'no_common_group',
    'group not in groups',
  );
  const ff = new ClientHandshake(clientOpts('auth', { group: 'ffdhe2048' })).clientHello();
  t.equal(
    await codeOf(new ServerHandshake(serverOpts({ groups: ['x25519'] })).receiveClientHello(ff)),
    'no_common_group',
    'unsupported group',
  );
  const unknownGroup = edit(ch, (f) => {
    f.groups = ['x448', 'x25519'];
    f.group = 'x448';
  });
  t.equal(
    await codeOf(new ServerHandshake(serverOpts()).receiveClientHello(unknownGroup)),
    'no_common_group',
    'unknown group',
  );
  // Unknown names among the offered groups are ignored.
  const extra = edit(ch, (f) => (f.groups = ['x448', 'x25519']));
  t.type(await new ServerHandshake(serverOpts()).receiveClientHello(extra), Buffer);

  // Server side answers: wrong version and a group other than the key share.
  const c1 = new ClientHandshake(clientOpts('auth', { testing: FIXED_CLIENT }));
  const sh = await new ServerHandshake(serverOpts()).receiveClientHello(c1.clientHello());
  t.equal(await codeOf(c1.receiveServerHello(edit(sh, (f) => (f.v = 3)))), 'version_unsupported');
  const c2 = new ClientHandshake(clientOpts('auth', { testing: FIXED_CLIENT }));
  c2.clientHello();
  const ffShare = generateDhKeyPair('ffdhe2048').publicKey;
  t.equal(
    await codeOf(
      c2.receiveServerHello(
        edit(sh, (f) => {
          f.group = 'ffdhe2048';
          f.share = ffShare;
        }),
      ),
    ),
    'no_common_group',
  );
  t.throws(() => new ClientHandshake(clientOpts('auth', { groups: ['x25519'], group: 'ffdhe2048' })), {
    code: 'bad_request',
  });
});

t.test('bad DH public values', async (t) => {
  const zero32 = Buffer.alloc(32);
  const order8 = Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex');
  const p = BigInt(`0x${FFDHE2048_PRIME.toString('hex')}`);
  const num = (n: bigint): Buffer => Buffer.from(n.toString(16).padStart(512, '0'), 'hex');
  const cases: [DhGroup, Buffer, string][] = [
    ['x25519', zero32, 'zero'],
    ['x25519', order8, 'low order'],
    ['x25519', Buffer.alloc(33, 5), 'too long'],
    ['ffdhe2048', num(1n), 'y = 1'],
    ['ffdhe2048', num(p - 1n), 'y = p-1'],
    ['ffdhe2048', num(0n), 'y = 0'],
    ['ffdhe2048', num(p), 'y = p'],
  ];
  for (const [group, share, label] of cases) {
    const ch = edit(
      new ClientHandshake(clientOpts('auth', { group })).clientHello(),
      (f) => (f.share = share),
    );
    t.equal(
      await codeOf(new ServerHandshake(serverOpts()).receiveClientHello(ch)),
      'bad_dh_public',
      `server refuses ${group} ${label}`,
    );
    const c = new ClientHandshake(clientOpts('auth', { group }));
    const sh = await new ServerHandshake(serverOpts()).receiveClientHello(c.clientHello());
    t.equal(
      await codeOf(c.receiveServerHello(edit(sh, (f) => (f.share = share)))),
      'bad_dh_public',
      `client refuses ${group} ${label}`,
    );
  }
});

t.test('modified transcript bytes: targeted fields', async (t) => {
  const cases: [string, ClientHandshakeOptions['mode'], Parameters<typeof handshake>[2], string][] = [
    [
      'client_hello.nonce',
      'auth',
      { clientHello: (b) => edit(b, (f) => ((f.nonce as Buffer)[0]! ^= 1)) },
      'bad_signature',
    ],
    [
      'client_hello.share (valid point)',
      'auth',
      { clientHello: (b) => edit(b, (f) => (f.share = generateDhKeyPair('x25519').publicKey)) },
      'bad_signature',
    ],
    [
      'server_hello.nonce',
      'auth',
      { serverHello: (b) => edit(b, (f) => ((f.nonce as Buffer)[5]! ^= 1)) },
      'bad_signature',
    ],
    [
      'server_hello.sig',
      'auth',
      { serverHello: (b) => edit(b, (f) => ((f.sig as Buffer)[10]! ^= 1)) },
      'bad_signature',
    ],
    [
      'server_hello.mac',
      'auth',
      { serverHello: (b) => edit(b, (f) => ((f.mac as Buffer)[0]! ^= 0x80)) },
      'bad_mac',
    ],
    [
      'server_hello.mac (enroll)',
      'enroll',
      { serverHello: (b) => edit(b, (f) => ((f.mac as Buffer)[31]! ^= 1)) },
      'bad_mac',
    ],
    [
      'server_hello.mac (insecure)',
      'insecure',
      { serverHello: (b) => edit(b, (f) => ((f.mac as Buffer)[31]! ^= 1)) },
      'bad_mac',
    ],
    [
      'server_hello.cert signature',
      'auth',
      { serverHello: (b) => edit(b, (f) => flipLast(f.cert as Buffer)) },
      'cert_bad_signature',
    ],
    [
      'client_finish.sig',
      'auth',
      { clientFinish: (b) => edit(b, (f) => ((f.sig as Buffer)[3]! ^= 1)) },
      'bad_signature',
    ],
    [
      'client_finish.mac',
      'auth',
      { clientFinish: (b) => edit(b, (f) => ((f.mac as Buffer)[3]! ^= 1)) },
      'bad_mac',
    ],
    [
      'client_finish.mac (enroll)',
      'enroll',
      { clientFinish: (b) => edit(b, (f) => ((f.mac as Buffer)[3]! ^= 1)) },
      'bad_mac',
    ],
    [
      'client_finish.name (insecure)',
      'insecure',
      { clientFinish: (b) => edit(b, (f) => (f.name = 'admin')) },
      'bad_mac',
    ],
    [
      'client_finish.cert signature',
      'auth',
      { clientFinish: (b) => edit(b, (f) => flipLast(f.cert as Buffer)) },
      'cert_bad_signature',
    ],
  ];
  for (const [label, mode, tamper, code] of cases) {
    t.equal(await codeOf(handshake(clientOpts(mode), serverOpts(), tamper)), code, label);
  }
});

function flipLast(b: Buffer): void {
  b[b.length - 1]! ^= 1; // inside the certificate's signature BIT STRING
}

/**
 * Flip one bit at every byte position of each handshake message (every 8th byte inside certificates,
 * whose bytes are all covered by the certificate signature anyway): the handshake must fail with a
 * KdsError each time, never succeed and never fail with anything else.
 */
t.test(
  'modified transcript bytes: every byte of every handshake message',
  { timeout: 170_000 },
  async (t) => {
    for (const mode of ['auth', 'enroll'] as const) {
      // A server with fixed ephemeral values and a memoizing signer emits the same server_hello for the
      // same client_hello (RSA-PSS is randomized), so the honest client_finish can be replayed into a
      // fresh server for each altered copy without re-running the client.
      const memo = new Map<string, Buffer>();
      const memoSign = asPssSigner(async (d: Buffer): Promise<Buffer> => {
        const key = d.toString('hex');
        if (!memo.has(key)) memo.set(key, await pki.server.credentials.sign(d));
        return memo.get(key)!;
      });
      // Parsed certificates cached by DER, as a server does (a flipped certificate byte misses the cache).
      const parsed = new Map<string, ParsedCertificate>();
      const parseCached = (der: Buffer): ParsedCertificate => {
        const key = der.toString('base64');
        if (!parsed.has(key)) parsed.set(key, parseCertificate(der));
        return parsed.get(key)!;
      };
      const fixedServer = () =>
        serverOpts({
          credentials: { certificateDer: pki.server.certDer, sign: memoSign },
          testing: { nonce: Buffer.alloc(32, 0x33), dhPrivateKey: Buffer.alloc(32, 0x44) },
          parseCertificate: parseCached,
        });
      const fixedClient = () => clientOpts(mode, { testing: FIXED_CLIENT, parseCertificate: parseCached });
      const honest = await handshake(fixedClient(), fixedServer());
      const codes = new Map<string, number>();
      const note = (code: string): void => void codes.set(code, (codes.get(code) ?? 0) + 1);
      const positions = (frame: Buffer): number[] => {
        const certAt =
          frame.indexOf(pki.client.certDer) >= 0
            ? frame.indexOf(pki.client.certDer)
            : frame.indexOf(pki.server.certDer);
        const certLen =
          certAt >= 0
            ? (frame.indexOf(pki.client.certDer) >= 0 ? pki.client.certDer : pki.server.certDer).length
            : 0;
        const out: number[] = [];
        for (let i = 0; i < frame.length; i++)
          if (certAt < 0 || i < certAt || i >= certAt + certLen || (i - certAt) % 8 === 0) out.push(i);
        return out;
      };
      const flip = (frame: Buffer, i: number): Buffer => {
        const altered = Buffer.from(frame);
        altered[i]! ^= 0x01;
        return altered;
      };

      // client_hello altered on its way to the server: the server may accept it, the client never does.
      for (const i of positions(honest.clientHello)) {
        const c = new ClientHandshake(fixedClient());
        c.clientHello();
        note(
          await codeOf(
            (async () => {
              const sh = await new ServerHandshake(fixedServer()).receiveClientHello(
                flip(honest.clientHello, i),
              );
              await c.receiveServerHello(sh);
            })(),
          ),
        );
      }
      // server_hello altered on its way to the client.
      for (const i of positions(honest.serverHello)) {
        const c = new ClientHandshake(fixedClient());
        c.clientHello();
        note(await codeOf(c.receiveServerHello(flip(honest.serverHello, i))));
      }
      // client_finish altered on its way to the server.
      let sameServerHello = 0;
      const cfPositions = positions(honest.clientFinish);
      for (const i of cfPositions) {
        const s = new ServerHandshake(fixedServer());
        if ((await s.receiveClientHello(honest.clientHello)).equals(honest.serverHello)) sameServerHello += 1;
        note(await codeOf(s.receiveClientFinish(flip(honest.clientFinish, i))));
      }
      t.equal(sameServerHello, cfPositions.length, 'the replayed server state was the honest one each time');
      // The honest client_finish still passes through the same path (the loop above could not have
      // failed for a reason unrelated to the flipped bit).
      const s = new ServerHandshake(fixedServer());
      await s.receiveClientHello(honest.clientHello);
      t.equal((await s.receiveClientFinish(honest.clientFinish)).sessionId, honest.server.sessionId);

      t.notOk(codes.has('succeeded'), `${mode}: no altered message was accepted`);
      t.notOk(codes.has('internal'), `${mode}: no failure was an internal error`);
      t.ok(
        codes.has('bad_signature') && codes.has('bad_mac'),
        `${mode}: signatures and MACs caught changes (${JSON.stringify([...codes])})`,
      );
    }
  },
);

t.test('certificate policy callbacks decide', async (t) => {
  // A client certificate in the server's place: wrong usage.
  const asServer = { certificateDer: pki.client.certDer, sign: pki.client.credentials.sign };
  t.equal(
    await codeOf(handshake(clientOpts('auth'), serverOpts({ credentials: asServer }))),
    'cert_wrong_usage',
  );
  // Revoked client.
  t.equal(
    await codeOf(
      handshake(
        clientOpts('auth'),
        serverOpts({ checkClientCertificate: clientCheck(pki, new Set([pki.client.cert.serialHex])) }),
      ),
    ),
    'cert_revoked',
  );
  // Expired client certificate (same key).
  const expired = await pki.issue('client', 'alice', 'client', {
    notBefore: Date.now() - 10 * 86_400_000,
    notAfter: Date.now() - 86_400_000,
  });
  t.equal(
    await codeOf(handshake(clientOpts('auth', { credentials: expired.credentials }), serverOpts())),
    'cert_expired',
  );
  // Alice's certificate with a signature made by another key: bad_signature, fixed message.
  const forged = { certificateDer: pki.client.certDer, sign: pki.server.credentials.sign };
  try {
    await handshake(clientOpts('auth', { credentials: forged }), serverOpts());
    t.fail('forged client signature accepted');
  } catch (err) {
    t.ok(err instanceof AuthError);
    t.match(err, { code: 'bad_signature', message: 'signature verification failed' });
  }
  // The server signing with a key that is not its certificate's.
  const wrongKey = { certificateDer: pki.server.certDer, sign: pki.client.credentials.sign };
  t.equal(
    await codeOf(handshake(clientOpts('enroll'), serverOpts({ credentials: wrongKey }))),
    'bad_signature',
  );
  // Garbage where a certificate should be.
  t.equal(
    await codeOf(
      handshake(
        clientOpts('auth', {
          credentials: { certificateDer: Buffer.from('not a cert'), sign: pki.client.credentials.sign },
        }),
        serverOpts(),
      ),
    ),
    'cert_malformed',
  );
  // A check that throws something that is not a KdsError is reported as internal, without details.
  const code = await codeOf(
    handshake(
      clientOpts('auth'),
      serverOpts({
        checkClientCertificate: () => {
          throw new Error('database path /secret');
        },
      }),
    ),
  );
  t.equal(code, 'internal');
  // The check sees the mode and the parsed certificate.
  const seen: string[] = [];
  await handshake(
    clientOpts('auth'),
    serverOpts({
      checkClientCertificate: (cert, mode) => {
        seen.push(`${mode}:${cert.subjectCN}`);
      },
    }),
  );
  t.same(seen, ['auth:alice']);
});

t.test('shape rules for client_finish per mode', async (t) => {
  // enroll mode with a certificate attached, auth mode without one: schema errors naming the field.
  const enrollWithCert = await codeOf(
    handshake(clientOpts('enroll'), serverOpts(), {
      clientFinish: (b) =>
        edit(b, (f) => {
          f.cert = pki.client.certDer;
          f.sig = Buffer.alloc(256, 1);
        }),
    }),
  );
  t.equal(enrollWithCert, 'schema');
  const authWithout = handshake(clientOpts('auth'), serverOpts(), {
    clientFinish: (b) =>
      edit(b, (f) => {
        delete f.cert;
        delete f.sig;
      }),
  });
  await t.rejects(authWithout, {
    code: 'schema',
    message: 'client_finish.cert: missing (required in auth mode)',
  });
  const certNoSig = handshake(clientOpts('auth'), serverOpts(), {
    clientFinish: (b) => edit(b, (f) => delete f.sig),
  });
  await t.rejects(certNoSig, {
    code: 'schema',
    message: 'client_finish: cert and sig must be both present or both absent',
  });
});

t.test('order and state: alerts, unexpected messages, single use', async (t) => {
  const c = new ClientHandshake(clientOpts('auth'));
  const ch = c.clientHello();
  t.throws(() => c.clientHello(), { code: 'unexpected_message' });
  await t.rejects(c.receiveServerHello(ch), {
    code: 'unexpected_message',
    message: 'expected server_hello, got client_hello',
  });
  await t.rejects(c.receiveServerHello(ch), { code: 'unexpected_message' }, 'a failed handshake stays dead');

  const c2 = new ClientHandshake(clientOpts('auth'));
  c2.clientHello();
  await t.rejects(c2.receiveServerHello(encodeAlert(new AuthError('insecure_refused', 'no'))), {
    code: 'insecure_refused',
    message: 'no',
  });

  const s = new ServerHandshake(serverOpts());
  await t.rejects(s.receiveClientFinish(ch), { code: 'unexpected_message' }, 'finish before hello');
  // Two concurrent calls: the second is refused while the first runs (the first still completes).
  const s3 = new ServerHandshake(serverOpts());
  const hello = new ClientHandshake(clientOpts('enroll')).clientHello();
  const first = s3.receiveClientHello(hello);
  await t.rejects(s3.receiveClientHello(hello), {
    code: 'unexpected_message',
    message: 'receiveClientHello is not allowed in handshake state busy',
  });
  t.type(await first, Buffer);
  const s2 = new ServerHandshake(serverOpts());
  await t.rejects(s2.receiveClientHello(encodeFrame({ t: 'r', c: Buffer.alloc(20) })), {
    code: 'unexpected_message',
  });
  await t.rejects(
    s2.receiveClientHello(Buffer.from('garbage')),
    { code: 'unexpected_message' },
    'dead after the first error',
  );
  await t.rejects(new ServerHandshake(serverOpts()).receiveClientHello(Buffer.from([0xc1])), {
    code: 'bad_frame',
  });

  // A client_finish from another session (identity misbinding / splicing) is refused.
  const a = new ClientHandshake(clientOpts('auth'));
  const sa = new ServerHandshake(serverOpts());
  const { clientFinish: cfA } = await a.receiveServerHello(await sa.receiveClientHello(a.clientHello()));
  const b = new ClientHandshake(clientOpts('auth'));
  const sb = new ServerHandshake(serverOpts());
  await b.receiveServerHello(await sb.receiveClientHello(b.clientHello()));
  t.equal(await codeOf(sb.receiveClientFinish(cfA)), 'bad_signature');

  t.throws(() => new ClientHandshake({ mode: 'auth', checkServerCertificate: serverCheck(pki) }), {
    code: 'bad_request',
  });
  t.throws(() => new ClientHandshake({ mode: 'enroll' }), { code: 'bad_request' });
});

t.test('server policy: enrollment can be switched off', async (t) => {
  t.equal(await codeOf(handshake(clientOpts('enroll'), serverOpts({ allowEnroll: false }))), 'forbidden');
});

/** The frame's fields in another order: same keys, same values, re-encoded (no crypto redone). */
function reorder(frame: Buffer, order: readonly string[]): Buffer {
  const f = decodeFrame(Buffer.from(frame)) as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of order) if (key in f) out[key] = f[key];
  for (const key of Object.keys(f)) if (!(key in out)) out[key] = f[key];
  return encodeValue(out);
}

t.test('field order: sig then mac are the last entries, in both directions (docs/protocol.md)', async (t) => {
  const lastTwo = { code: 'schema', message: /sig and then mac must be the last entries/ };
  const lastOne = { code: 'schema', message: /mac must be the last entry/ };
  // server_hello, checked by the client before any crypto.
  const shMacFirst = handshake(clientOpts('auth'), serverOpts(), {
    serverHello: (b) => reorder(b, ['t', 'v', 'group', 'nonce', 'share', 'cert', 'mac', 'sig']),
  });
  await t.rejects(shMacFirst, { ...lastTwo, message: /server_hello: sig and then mac/ });
  const shSigEarly = handshake(clientOpts('enroll'), serverOpts(), {
    serverHello: (b) => reorder(b, ['t', 'v', 'sig', 'group', 'nonce', 'share', 'cert', 'mac']),
  });
  await t.rejects(shSigEarly, lastTwo);
  const shInsecureMacFirst = handshake(clientOpts('insecure'), serverOpts(), {
    serverHello: (b) => reorder(b, ['t', 'mac', 'v', 'group', 'nonce', 'share']),
  });
  await t.rejects(shInsecureMacFirst, { ...lastOne, message: /server_hello: mac must be the last entry/ });
  // client_finish, checked by the server before any crypto.
  const cfMacFirst = handshake(clientOpts('auth'), serverOpts(), {
    clientFinish: (b) => reorder(b, ['t', 'cert', 'mac', 'sig']),
  });
  await t.rejects(cfMacFirst, { ...lastTwo, message: /client_finish: sig and then mac/ });
  const cfSigFirst = handshake(clientOpts('auth'), serverOpts(), {
    clientFinish: (b) => reorder(b, ['t', 'sig', 'cert', 'mac']),
  });
  await t.rejects(cfSigFirst, lastTwo);
  const cfEnroll = handshake(clientOpts('enroll'), serverOpts(), {
    clientFinish: (b) => reorder(b, ['mac', 't']),
  });
  await t.rejects(cfEnroll, { ...lastOne, message: /client_finish: mac must be the last entry/ });
  const cfInsecure = handshake(clientOpts('insecure'), serverOpts(), {
    clientFinish: (b) => reorder(b, ['t', 'mac', 'name']),
  });
  await t.rejects(cfInsecure, lastOne);
  // The documented order (what the encoders write) is accepted.
  const fine = await handshake(clientOpts('auth'), serverOpts());
  t.equal(fine.server.mode, 'auth');
});

t.test(
  'a peer certificate with an RSA exponent other than 65537: unsupported_key, no signature checked',
  async (t) => {
    const dir = tempDir(t);
    const r = await openssl(
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-pkeyopt',
        'rsa_keygen_pubexp:3',
        '-nodes',
        '-keyout',
        'k.pem',
        '-subj',
        '/CN=alice',
        '-days',
        '2',
        '-out',
        'c.pem',
      ],
      dir,
    );
    t.equal(r.code, 0, r.stderr);
    const der = pemToDer(readFileSync(join(dir, 'c.pem'), 'utf8'), 'CERTIFICATE');
    const refused = { code: 'unsupported_key', message: 'RSA public exponent must be 65537' };
    await t.rejects(
      handshake(clientOpts('auth'), serverOpts(), { clientFinish: (b) => edit(b, (f) => (f.cert = der)) }),
      refused,
      'the server refuses such a client certificate',
    );
    await t.rejects(
      handshake(clientOpts('enroll'), serverOpts(), { serverHello: (b) => edit(b, (f) => (f.cert = der)) }),
      refused,
      'the client refuses such a server certificate',
    );
  },
);
