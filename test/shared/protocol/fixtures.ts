// Fixtures for the shared/protocol tests: one root CA and real server/client certificates built with
// shared/pki (three RSA-2048 keys from the run's pool, test/helpers/template.ts), the certificate
// checks a client and a server would run, and a driver that moves frames between the two state machines.
import { toPrivateKey } from '../../../shared/crypto/rsa.js';
import { pooledKeyPair } from '../../helpers/template.js';
import { newSerialHex } from '../../../shared/pki/serial.js';
import { verdictToError, verifyCertificate } from '../../../shared/pki/verify.js';
import {
  buildCertificate,
  parseCertificate,
  pemToDer,
  type ParsedCertificate,
  type Profile,
} from '../../../shared/pki/x509.js';
import {
  ClientHandshake,
  ServerHandshake,
  type CertificateCheck,
  type ClientHandshakeOptions,
  type ClientHandshakeResult,
  type HandshakeCredentials,
  type ServerHandshakeOptions,
  type ServerHandshakeResult,
} from '../../../shared/protocol/handshake.js';
import { certificateSigner, pssSigner, type CertificateSigner } from '../../../shared/crypto/signer.js';

const DAY = 86_400_000;

export interface Party {
  certPem: string;
  certDer: Buffer;
  cert: ParsedCertificate;
  credentials: HandshakeCredentials;
}

export interface Pki {
  ca: ParsedCertificate;
  caSign: CertificateSigner;
  server: Party;
  client: Party;
  /** Issue another certificate for an existing key (e.g. an expired one for the client key). */
  issue(
    profile: Profile,
    name: string,
    keyOf: 'server' | 'client',
    extra?: { notBefore?: number; notAfter?: number },
  ): Promise<Party>;
}

let cached: Promise<Pki> | undefined;

export function makePki(): Promise<Pki> {
  cached ??= build();
  return cached;
}

async function build(): Promise<Pki> {
  // Slots 10-12 of the pool: RSA keygen is slow, and some twenty files import this.
  const [caKeys, serverKeys, clientKeys] = await Promise.all([
    pooledKeyPair(10),
    pooledKeyPair(11),
    pooledKeyPair(12),
  ]);
  const caSign = certificateSigner(caKeys.privateKeyPem);
  const now = Date.now();
  const caPem = await buildCertificate(
    {
      serialHex: newSerialHex(),
      subjectCN: 'kds test root',
      issuer: 'self',
      publicKeyPem: caKeys.publicKeyPem,
      notBefore: now - DAY,
      notAfter: now + 365 * DAY,
      profile: 'root-ca',
    },
    caSign,
  );
  const keys = { server: serverKeys, client: clientKeys };
  const issue: Pki['issue'] = async (profile, name, keyOf, extra = {}) => {
    const k = keys[keyOf];
    const pem = await buildCertificate(
      {
        serialHex: newSerialHex(),
        subjectCN: name,
        issuer: { certPem: caPem },
        publicKeyPem: k.publicKeyPem,
        notBefore: extra.notBefore ?? now - 60_000,
        notAfter: extra.notAfter ?? now + 30 * DAY,
        profile,
        ...(profile === 'server' ? { sans: { dns: [name], ip: ['127.0.0.1'] } } : {}),
      },
      caSign,
    );
    const privateKey = toPrivateKey(k.privateKeyPem);
    const certDer = pemToDer(pem, 'CERTIFICATE');
    return {
      certPem: pem,
      certDer,
      cert: parseCertificate(pem),
      credentials: { certificateDer: certDer, sign: pssSigner(privateKey) },
    };
  };
  return {
    ca: parseCertificate(caPem),
    caSign,
    server: await issue('server', 'kdc', 'server'),
    client: await issue('client', 'alice', 'client'),
    issue,
  };
}

export function serverCheck(pki: Pki): CertificateCheck {
  return (cert) => {
    const verdict = verifyCertificate(cert, pki.ca, { usage: 'serverAuth' });
    if (verdict.code !== 'ok') throw verdictToError(verdict);
  };
}

export function clientCheck(pki: Pki, revoked: ReadonlySet<string> = new Set()): CertificateCheck {
  return (cert) => {
    const verdict = verifyCertificate(cert, pki.ca, {
      usage: 'clientAuth',
      revocation: (serial) => (revoked.has(serial) ? { reason: 'keyCompromise', revokedAt: 1 } : undefined),
    });
    if (verdict.code !== 'ok') throw verdictToError(verdict);
  };
}

export interface Flight {
  clientHello: Buffer;
  serverHello: Buffer;
  clientFinish: Buffer;
  client: ClientHandshakeResult;
  server: ServerHandshakeResult;
}

/** One full handshake in memory; `tamper` may rewrite any message in flight. */
export async function handshake(
  clientOpts: ClientHandshakeOptions,
  serverOpts: ServerHandshakeOptions,
  tamper: {
    clientHello?: (b: Buffer) => Buffer;
    serverHello?: (b: Buffer) => Buffer;
    clientFinish?: (b: Buffer) => Buffer;
  } = {},
): Promise<Flight> {
  const c = new ClientHandshake(clientOpts);
  const s = new ServerHandshake(serverOpts);
  const clientHello = (tamper.clientHello ?? ((b) => b))(c.clientHello());
  const serverHello = (tamper.serverHello ?? ((b) => b))(await s.receiveClientHello(clientHello));
  const { clientFinish: cf, result: client } = await c.receiveServerHello(serverHello);
  const clientFinish = (tamper.clientFinish ?? ((b) => b))(cf);
  const server = await s.receiveClientFinish(clientFinish);
  return { clientHello, serverHello, clientFinish, client, server };
}
