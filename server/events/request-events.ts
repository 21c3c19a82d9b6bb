// The domain event a successful request stands for (key created, deposited, verified, revoked, message
// relayed, prekeys uploaded), read from the request's validated body and its reply after the reply's
// commit. One table, so that the key service stays free of reporting and every field an event takes
// from a reply is named here: a reply may carry key material (key.create's `key`), an event never does.
// It reads the reply as a plain map, field by field, on purpose: it runs after the reply was sealed, and
// also when sealing refused it (a handler's bug, answered `internal`), where a reading typed by the
// response schema could throw inside the connection's promise callback instead of describing less.
import type { EventInput } from '../../shared/events/kdc-events.js';
import { readCertificateSummary } from '../../shared/pki/x509.js';

type Body = Record<string, unknown>;

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function byteLength(value: unknown): number {
  return value instanceof Uint8Array ? value.byteLength : 0;
}

type Describe = (caller: string, body: Body, reply: Body) => EventInput | undefined;

/**
 * Marks a reply that hands out again what an earlier request already did (an enrollment replayed,
 * server/ca/enroll-replay.ts), so that its event says so instead of counting a second issuance. A symbol
 * key: the wire never sees it (the reply is validated and rebuilt field by field from its schema).
 */
const REPLAYED = Symbol('replayed');

export function markReplayed<R extends object>(reply: R): R {
  return Object.assign(reply, { [REPLAYED]: true });
}

const DESCRIBE = new Map<string, Describe>([
  [
    'enroll',
    (_caller, _body, reply) => {
      // The certificate the CA just signed (its own output), read back for its name, serial and
      // notAfter: those three fields of its DER, not a full parse (parseCertificate was 10% of an
      // issuance's CPU, docs/performance.md "issue"). A reply whose cert is not a certificate (a
      // handler's bug, answered `internal` when sealed) describes nothing rather than throw here.
      let cert;
      try {
        cert = readCertificateSummary(text(reply.cert));
      } catch {
        return undefined;
      }
      if ((reply as { [REPLAYED]?: boolean })[REPLAYED] === true) {
        return { type: 'cert.replayed', name: cert.subjectCN, serial: cert.serialHex };
      }
      return {
        type: 'cert.issued',
        name: cert.subjectCN,
        serial: cert.serialHex,
        role: 'client',
        notAfter: cert.notAfter,
        renewed: false,
      };
    },
  ],
  [
    'cert.renew',
    // Pending until the client's first handshake with it installs it (then the old one is superseded).
    (caller, _body, reply) => ({
      type: 'cert.issued',
      name: caller,
      serial: text(reply.serial),
      role: 'client',
      notAfter: typeof reply.notAfter === 'number' ? reply.notAfter : 0,
      renewed: true,
    }),
  ],
  [
    'admin.token',
    // Never the token (the reply's `token`): the name it enrolls, who asked, until when.
    (caller, body, reply) => ({
      type: 'token.created',
      name: text(body.name),
      by: caller,
      expiresAt: typeof reply.expiresAt === 'number' ? reply.expiresAt : 0,
    }),
  ],
  [
    'key.create',
    (caller, body, reply) => ({
      type: 'key.created',
      serial: text(reply.serial),
      owner: caller,
      peer: text(reply.peer),
      mode: 'kdc',
      ...(typeof body.replaces === 'string' ? { replaces: body.replaces } : {}),
    }),
  ],
  [
    'key.reserve',
    (caller, body, reply) => ({
      type: 'key.created',
      serial: text(reply.serial),
      owner: caller,
      peer: text(reply.peer),
      mode: 'e2e',
      ...(typeof body.replaces === 'string' ? { replaces: body.replaces } : {}),
    }),
  ],
  ['key.deposit', (caller, body) => ({ type: 'key.deposited', serial: text(body.serial), owner: caller })],
  [
    'key.verify',
    (caller, _body, reply) => ({
      type: 'key.verified',
      serial: text(reply.serial),
      by: caller,
      verdict: text(reply.verdict),
    }),
  ],
  [
    'key.revoke',
    (caller, body) => ({
      type: 'key.revoked',
      serial: text(body.serial),
      by: caller,
      reason: text(body.reason),
    }),
  ],
  [
    'admin.key.revoke',
    (caller, body) => ({
      type: 'key.revoked',
      serial: text(body.serial),
      by: caller,
      reason: typeof body.reason === 'string' ? body.reason : 'unspecified',
    }),
  ],
  [
    'msg.send',
    (caller, body) => ({
      type: 'message.relayed',
      from: caller,
      to: text(body.to),
      serial: text(body.serial),
      bytes: byteLength(body.ciphertext),
    }),
  ],
  [
    'key.prekeys',
    (caller, body) => {
      const count =
        (Array.isArray(body.prekeys) ? body.prekeys.length : 0) + (body.lastResort === undefined ? 0 : 1);
      return count === 0 ? undefined : { type: 'prekeys.uploaded', name: caller, count };
    },
  ],
]);

/** The event a served request of `type` stands for, or undefined when it decided nothing worth one. */
export function describeRequest(
  type: string,
  caller: string,
  body: Body,
  reply: Body,
): EventInput | undefined {
  return DESCRIBE.get(type)?.(caller, body, reply);
}

/** Error codes that mean "a quota or rate limit refused this": reported as request.refused. */
export const REFUSAL_CODES: ReadonlySet<string> = new Set(['quota_exceeded', 'rate_limited']);
