// client/session.ts against a scripted server (a real ServerHandshake over a real WebSocket): what the
// client does when the server's record fails authentication (insecure mode, so no certificates are
// needed). docs/protocol.md "Transport": the receiver never answers such a record and closes with 4005
// (record_auth); the close code and reason say why. And which certificate a refusal names when the
// pinned root, not the KDC's certificate, is not valid yet by the client's clock.
import t from 'tap';
import type * as Tap from 'tap';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { openSession } from '../../client/session.js';
import { CLOSE } from '../../shared/errors.js';
import { ServerHandshake } from '../../shared/protocol/handshake.js';
import '../../shared/protocol/catalog.js';
import { asPssSigner, pssSigner } from '../../shared/crypto/signer.js';
import { generateRsaKeyPair } from '../../shared/crypto/rsa.js';
import { describeDefence } from '../../shared/defences.js';
import { KdsError } from '../../shared/errors.js';
import { parseCertificate } from '../../shared/pki/x509.js';
import { DAY, issue, makeCa } from '../shared/pki/pki-fixtures.js';

interface Seen {
  frames: number;
  close: { code: number; reason: string };
}

/** A server that completes the handshake, then sends `ready` with its last byte flipped. */
async function forgingServer(t: Tap.Test): Promise<{ url: string; seen: Promise<Seen> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  t.teardown(() => new Promise<void>((resolve) => wss.close(() => resolve())));
  const seen = new Promise<Seen>((resolve) => {
    wss.once('connection', (ws: WebSocket) => {
      const hs = new ServerHandshake({
        credentials: { certificateDer: Buffer.alloc(1), sign: asPssSigner(async () => Buffer.alloc(1)) },
        checkClientCertificate: () => undefined,
        allowInsecure: true,
      });
      let frames = 0;
      ws.on('message', (data: Buffer) => {
        frames += 1;
        void (async () => {
          if (frames === 1) ws.send(await hs.receiveClientHello(data));
          else if (frames === 2) {
            const { channel, sessionId } = await hs.receiveClientFinish(data);
            const ready = channel.sealPush('ready', {
              session: sessionId,
              mode: 'insecure',
              role: 'insecure',
            });
            ready[ready.length - 1]! ^= 1;
            ws.send(ready);
          }
        })();
      });
      ws.on('close', (code: number, reason: Buffer) =>
        resolve({ frames, close: { code, reason: reason.toString('utf8') } }),
      );
    });
  });
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/kds`, seen };
}

t.test(
  'a forged record from the server: refused with record_auth, not answered, closed with 4005',
  async (t) => {
    const server = await forgingServer(t);
    await t.rejects(openSession({ server: server.url, mode: 'insecure', insecureName: 'alice' }), {
      code: 'record_auth',
      message: 'record authentication failed',
    });
    const seen = await server.seen;
    t.equal(
      seen.frames,
      2,
      'the client sent client_hello and client_finish, and nothing after the bad record',
    );
    t.same(seen.close, { code: CLOSE.record, reason: 'record_auth' }, 'close 4005, the code as reason');
  },
);

t.test('a root not valid yet by the client clock is named as the root, with the clock hint', async (t) => {
  // A CA made a minute "from now" for a client whose clock is a minute slow; the KDC certificate it
  // issued is valid already (backdated): what fails is the root, and the refusal must say so.
  const now = Date.now();
  const ca = await makeCa('kds root CA', undefined, now + 60_000 + DAY);
  const kdcKeys = await generateRsaKeyPair(2048);
  const kdcPem = await issue(ca, 'server', 'kdc', kdcKeys.publicKeyPem, {
    notBefore: now - 5 * 60_000,
    sans: { dns: ['localhost'], ip: ['127.0.0.1'] },
  });
  const root = parseCertificate(ca.certPem);
  t.ok(root.notBefore > now, 'the root starts in a minute');
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  t.teardown(() => new Promise<void>((resolve) => wss.close(() => resolve())));
  wss.on('connection', (ws: WebSocket) => {
    const hs = new ServerHandshake({
      credentials: {
        certificateDer: parseCertificate(kdcPem).der,
        sign: pssSigner(kdcKeys.privateKeyPem),
      },
      checkClientCertificate: () => undefined,
      allowEnroll: true,
    });
    ws.once('message', (data: Buffer) => {
      void hs.receiveClientHello(data).then((hello) => ws.send(hello));
    });
  });
  const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/kds`;
  const err = await openSession({ server: url, mode: 'enroll', caCertPem: ca.certPem }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof KdsError, 'refused');
  const e = err as KdsError;
  t.equal(e.code, 'cert_not_yet_valid');
  t.match(e.details, { certificate: 'issuer', subject: 'kds root CA', serialHex: root.serialHex });
  // The root starts 59-60 s from now (whole seconds): "59 s", or "1 min" once rounded to 60 s.
  t.match(
    e.message,
    /^root CA certificate not yet valid: valid from \S+Z, (5\d s|1 min) after this machine's clock \(\S+Z\): the local clock looks at least that far behind the CA's$/,
  );
  t.equal(describeDefence(e), 'handshake failed: the pinned root CA certificate is not valid yet');
});
