// The defences of kds, and which error code is the trace each one leaves (docs/attacks.md, "the victim's error
// names the defence that stopped it"). ONE table, used by both ends of the MITM lab: the client CLI
// (cli/output.ts) prints the defence under a failed command, and Mallory (client/mitm) names it in her
// summary. Pure data: no I/O.
//
// A code maps to one defence; the explanation depends on where the failure was seen: during the
// handshake or after it, and locally or by the peer (errorFromWire marks peer errors `remote`).
import { KdsError } from './errors.js';

export const DEFENCES = {
  'transcript signature':
    'RSA-PSS signatures over the transcript hash: the handshake (CertificateVerify) and the key exchange (signed prekeys, sender and receiver signatures)',
  'certificate chain':
    'peer certificates must chain to the pinned root CA, be valid now, carry the right usage and name',
  revocation: 'revoked certificates and keys are refused everywhere (CRL, revocation table, key states)',
  'record authentication': 'every record is AES-256-GCM with a 16-byte tag; any altered byte fails the tag',
  'sequence number':
    'the record nonce is the implicit sequence number: replayed, reordered or dropped records fail authentication',
  'key confirmation':
    'Finished MACs over the whole handshake, and key.verify (digest + receiver signature): both ends prove they hold the same keys',
  'downgrade protection':
    'a secure client never accepts an unauthenticated reply; group and mode are covered by the transcript',
  'frame limits':
    'explicit limits (64 KiB frames, msgpack depth and sizes) are enforced before anything is allocated',
  'input validation':
    'every frame is decoded and schema-checked before use; anything else closes the connection',
  'record encryption':
    'after the handshake only AES-GCM ciphertext crosses the wire; the DH secret never does',
} as const;

export type DefenceName = keyof typeof DEFENCES;

export interface DefenceContext {
  /** Failed while the session was being established. */
  phase?: 'handshake';
  /** The peer reported the failure (an alert, a session.closing push or an error response). */
  remote?: boolean;
  /** The certificate at fault is the issuing (root) CA's, not the one checked (details.certificate). */
  issuer?: boolean;
}

/** The context of a code Mallory saw go by (an alert, a close reason, an error response): the peer's. */
export const WIRE: DefenceContext = Object.freeze({ remote: true });

interface Entry {
  defence: DefenceName;
  /** Revocation and expiry are ordinary life, not a sign of an attacker: no "(possible MITM)" for them. */
  benign?: true;
  /** Only a defence when seen on the wire (a handshake or the peer); locally it is a configuration refusal. */
  wireOnly?: true;
  /** [handshake+local, handshake+remote, later+local, later+remote (default: later+local)]: what happened, in the words a user needs. */
  text: readonly [string, string, string, string?];
  /**
   * [handshake+local, later+local] when the certificate at fault is the pinned root, not the one checked
   * (shared/pki/verify.ts `certificate: 'issuer'`): "the KDC certificate is not valid yet" would send
   * the person to look at the wrong certificate.
   */
  issuerText?: readonly [string, string];
}

const TABLE: Readonly<Record<string, Entry>> = {
  bad_signature: {
    defence: 'transcript signature',
    text: [
      'server signature over transcript invalid',
      'the KDC could not verify our signature over the transcript',
      'a signature over the key-exchange transcript (or a signed prekey) is invalid',
    ],
  },
  bad_mac: {
    defence: 'key confirmation',
    text: [
      'the KDC Finished MAC does not match our transcript',
      'the KDC says our Finished MAC does not match its transcript',
      'a MAC did not verify: the two ends do not hold the same key',
    ],
  },
  key_mismatch: {
    defence: 'key confirmation',
    text: ['the KDC holds another key', 'the KDC holds another key', 'the KDC holds another key than we do'],
  },
  cert_unknown_issuer: {
    defence: 'certificate chain',
    text: [
      'the KDC certificate was not issued by the pinned root CA',
      'the KDC does not know our certificate',
      'a certificate was not issued by the pinned root CA',
    ],
  },
  cert_bad_signature: {
    defence: 'certificate chain',
    text: [
      'the KDC certificate signature does not verify under the pinned root CA',
      'the KDC rejected our certificate signature',
      'a certificate signature does not verify under the pinned root CA',
    ],
  },
  cert_wrong_name: {
    defence: 'certificate chain',
    text: [
      'the certificate presented as the KDC names someone else',
      'our certificate names someone else',
      'a certificate names someone else',
    ],
  },
  cert_wrong_usage: {
    defence: 'certificate chain',
    text: [
      'the KDC certificate is not a server certificate',
      'our certificate is not valid for this use',
      'a certificate is not valid for this use',
    ],
  },
  cert_malformed: {
    defence: 'certificate chain',
    text: [
      'the KDC certificate could not be parsed',
      'the KDC could not parse our certificate',
      'a certificate could not be parsed',
    ],
  },
  cert_expired: {
    benign: true,
    defence: 'certificate chain',
    text: ['the KDC certificate has expired', 'our certificate has expired', 'a certificate has expired'],
    issuerText: ['the pinned root CA certificate has expired', 'the root CA certificate has expired'],
  },
  cert_not_yet_valid: {
    benign: true,
    defence: 'certificate chain',
    text: [
      'the KDC certificate is not valid yet',
      'our certificate is not valid yet',
      'a certificate is not valid yet',
    ],
    issuerText: [
      'the pinned root CA certificate is not valid yet',
      'the root CA certificate is not valid yet',
    ],
  },
  cert_revoked: {
    benign: true,
    defence: 'revocation',
    text: [
      'the KDC certificate is revoked',
      'the KDC refused a revoked certificate',
      'the certificate is revoked',
    ],
  },
  peer_revoked: {
    benign: true,
    defence: 'revocation',
    text: [
      'the peer certificate is revoked',
      'the peer certificate is revoked',
      'the peer certificate is revoked',
    ],
  },
  key_revoked: {
    benign: true,
    defence: 'revocation',
    text: ['the key is revoked', 'the KDC refused a revoked key', 'the key is revoked and may not be used'],
  },
  record_auth: {
    defence: 'record authentication',
    text: [
      'the first record from the KDC failed authentication (altered in transit)',
      'the KDC received a record that failed authentication (altered, replayed, reordered or dropped in transit)',
      'a record failed authentication (altered, replayed, reordered or dropped in transit)',
      'the KDC received a record that failed authentication (altered, replayed, reordered or dropped in transit)',
    ],
  },
  sequence_exhausted: {
    benign: true,
    defence: 'sequence number',
    text: ['record sequence limit reached', 'record sequence limit reached', 'record sequence limit reached'],
  },
  insecure_refused: {
    wireOnly: true,
    defence: 'downgrade protection',
    text: [
      'the server answered without authenticating (downgrade to the insecure mode refused)',
      'the KDC refused the unauthenticated (insecure) mode',
      'the insecure mode was refused',
    ],
  },
  no_common_group: {
    defence: 'downgrade protection',
    text: [
      'the offered DH groups were altered or not supported',
      'the KDC supports none of the offered DH groups',
      'no common DH group',
    ],
  },
  frame_too_large: {
    defence: 'frame limits',
    text: [
      'a frame exceeded the 64 KiB limit',
      'the KDC refused a frame over the 64 KiB limit',
      'a frame exceeded the 64 KiB limit',
    ],
  },
  bad_frame: {
    defence: 'input validation',
    text: [
      'the server sent bytes that are not a kds frame',
      'the KDC received bytes that are not a kds frame',
      'bytes that are not a kds frame',
    ],
  },
  schema: {
    defence: 'input validation',
    text: [
      'a handshake message had the wrong shape',
      'the KDC received a message with the wrong shape',
      'a message had the wrong shape',
    ],
  },
  unknown_type: {
    defence: 'input validation',
    text: [
      'an unknown frame type arrived',
      'the KDC received an unknown frame type',
      'an unknown message type arrived',
    ],
  },
  unexpected_message: {
    defence: 'input validation',
    text: [
      'a message arrived out of order',
      'the KDC received a message out of order',
      'a message arrived out of order',
    ],
  },
  version_unsupported: {
    defence: 'downgrade protection',
    text: [
      'the protocol version was altered',
      'the KDC refused the offered protocol version',
      'unsupported protocol version',
    ],
  },
  bad_dh_public: {
    defence: 'input validation',
    text: [
      'the server DH share is invalid',
      'the KDC refused our DH share as invalid',
      'an invalid DH public key',
    ],
  },
};

export interface DefenceVerdict {
  defence: DefenceName;
  /** One line for a user: what happened, e.g. "server signature over transcript invalid". */
  explanation: string;
  /** True when this failure is what an attacker in the middle would cause. */
  possibleMitm: boolean;
}

/** The defence an error code is the trace of, or undefined when the code is not a defence's. */
export function defenceForCode(code: string, ctx: DefenceContext = {}): DefenceVerdict | undefined {
  const entry = Object.hasOwn(TABLE, code) ? TABLE[code] : undefined;
  if (entry === undefined) return undefined;
  if (entry.wireOnly === true && ctx.phase !== 'handshake' && ctx.remote !== true) return undefined;
  const [hsLocal, hsRemote, local, remote] = entry.text;
  if (ctx.issuer === true && ctx.remote !== true && entry.issuerText !== undefined) {
    const [hsIssuer, issuer] = entry.issuerText;
    return {
      defence: entry.defence,
      explanation: ctx.phase === 'handshake' ? hsIssuer : issuer,
      possibleMitm: entry.benign !== true,
    };
  }
  const explanation =
    ctx.phase === 'handshake'
      ? ctx.remote === true
        ? hsRemote
        : hsLocal
      : ctx.remote === true
        ? (remote ?? local)
        : local;
  return { defence: entry.defence, explanation, possibleMitm: entry.benign !== true };
}

/** The defence behind a KdsError (its `details.phase` and `details.remote` select the wording). */
export function defenceForError(err: KdsError): DefenceVerdict | undefined {
  const d = err.details ?? {};
  return defenceForCode(err.code, {
    ...(d.phase === 'handshake' ? { phase: 'handshake' as const } : {}),
    ...(d.remote === true ? { remote: true } : {}),
    ...(d.certificate === 'issuer' ? { issuer: true } : {}),
  });
}

/**
 * The line the client CLI prints under an error a defence raised, e.g.
 * "handshake failed: server signature over transcript invalid (possible MITM)".
 */
export function describeDefence(err: KdsError): string | undefined {
  const v = defenceForError(err);
  if (v === undefined) return undefined;
  const prefix = err.details?.phase === 'handshake' ? 'handshake failed: ' : '';
  return `${prefix}${v.explanation}${v.possibleMitm ? ' (possible MITM)' : ''}`;
}

/** Codes a defence is traced by (Mallory uses it to check that a failure is the one her attack expects). */
export function codesOf(defence: DefenceName): string[] {
  return Object.entries(TABLE)
    .filter(([, e]) => e.defence === defence)
    .map(([code]) => code);
}

/**
 * The same error, marked as raised while a session was being established (client/session.ts), so the
 * CLI can say "handshake failed: ...". A new object of the same class: errors are never mutated.
 */
export function inHandshakePhase(err: unknown): unknown {
  if (!(err instanceof KdsError) || err.details?.phase === 'handshake') return err;
  const Ctor = err.constructor as new (
    code: KdsError['code'],
    message: string,
    details?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) => KdsError;
  return new Ctor(err.code, err.message, { ...err.details, phase: 'handshake' }, { cause: err.cause ?? err });
}
