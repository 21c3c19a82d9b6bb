// The core application types of kds v1 (docs/protocol.md, "Core application types"): session facts,
// certificate status (an OCSP-like query), enrollment, ping, revocation and enrollment tokens.
// Request types have a request and a response body; pushes (server -> client, no id) a push body.
import { NAME_PATTERN } from '../pki/names.js';
import { REVOCATION_REASONS } from '../revocation-reasons.js';
import { defineAppType } from './app-types.js';
import { HANDSHAKE_MODES, ERROR_CODE_PATTERN, MAX_ERROR_MESSAGE } from './messages.js';
import { MAX_STRING, MAX_TICKET_BYTES } from './limits.js';
import { s } from './schema.js';

/** Lowercase hex without colons (docs/architecture.md, "Serials"). */
export const serialHex = s.string({ min: 1, max: 64, pattern: /^[0-9a-f]+$/ });
const principalName = s.string({ min: 1, max: 64, pattern: NAME_PATTERN });
const revocationReason = s.enumOf(REVOCATION_REASONS);
/** Epoch milliseconds. */
export const epochMs = s.uint({ unit: 'epoch ms' });
export const pemText = s.string({ min: 1, max: MAX_STRING, pattern: /^-----BEGIN [A-Z0-9 ]+-----\r?\n/ });
/** Enrollment tokens: opaque URL-safe strings chosen by the server. */
const tokenText = s.string({ min: 16, max: 256, pattern: /^[A-Za-z0-9_-]+$/ });
/** Session roles the server reports in `ready`. */
const SESSION_ROLES = ['client', 'admin', 'anonymous', 'insecure'] as const;
/** Longest enrollment-token lifetime an admin may ask for: 7 days. */
export const MAX_TOKEN_TTL_MS = 7 * 24 * 3600 * 1000;

/** Server push, first record after the handshake: who the server thinks this session is. */
defineAppType('ready', {
  push: s.map({
    session: s.string({ min: 32, max: 32, pattern: /^[0-9a-f]{32}$/ }), // session id, hex
    mode: s.enumOf(HANDSHAKE_MODES),
    role: s.enumOf(SESSION_ROLES),
    name: s.optional(principalName), // absent for anonymous (enroll) sessions
    serial: s.optional(serialHex), // the client certificate's serial ('auth')
    expiresAt: s.optional(epochMs), // the client certificate's notAfter ('auth')
  }),
});

export const certStatus = defineAppType('cert.status', {
  request: s.map({ serial: serialHex }),
  response: s.map(
    {
      status: s.enumOf(['good', 'revoked', 'unknown']),
      reason: s.optional(revocationReason),
      revokedAt: s.optional(epochMs),
    },
    (m) =>
      (m.status === 'revoked') !== (m.reason !== undefined && m.revokedAt !== undefined)
        ? 'reason and revokedAt are present exactly when status is revoked'
        : undefined,
    '`reason` and `revokedAt` are present exactly when `status` is `revoked`',
  ),
});

export const enroll = defineAppType('enroll', {
  request: s.map({ token: tokenText, csr: pemText }),
  response: s.map({ cert: pemText, ca: pemText }),
});

export const ping = defineAppType('ping', {
  request: s.map({ data: s.optional(s.bytes({ max: 1024 })) }),
  response: s.map({ pong: s.bool(), data: s.optional(s.bytes({ max: 1024 })) }),
});

/** Revoke a certificate: neither serial nor name = the caller's own; otherwise one of them (admin). */
export const certRevoke = defineAppType('cert.revoke', {
  request: s.map(
    { serial: s.optional(serialHex), name: s.optional(principalName), reason: revocationReason },
    (m) => (m.serial !== undefined && m.name !== undefined ? 'give serial or name, not both' : undefined),
    "not both `serial` and `name` (neither: the caller's own certificate)",
  ),
  response: s.map({
    status: s.enumOf(['revoked', 'already_revoked']),
    serial: serialHex,
    crlNumber: s.uint(),
  }),
});

export const adminToken = defineAppType('admin.token', {
  request: s.map({ name: principalName, ttl: s.optional(s.uint({ max: MAX_TOKEN_TTL_MS, unit: 'ms' })) }),
  response: s.map({ token: tokenText, expiresAt: epochMs }),
});

/**
 * A ticket to resume the next session without RSA (docs/protocol.md "Resumption"), once per `auth` or
 * `resume` session, asked for by the client. Its psk is the session's resumption secret, which the
 * client derives itself: it never travels.
 */
export const sessionTicket = defineAppType('session.ticket', {
  request: s.map({}),
  response: s.map({ ticket: s.bytes({ min: 1, max: MAX_TICKET_BYTES }), expiresAt: epochMs }),
});

/** Server push right before the server closes the session (revocation, shutdown, policy). */
defineAppType('session.closing', {
  push: s.map({
    code: s.string({ min: 1, max: 40, pattern: ERROR_CODE_PATTERN }),
    reason: s.string({ max: MAX_ERROR_MESSAGE }),
  }),
});

/** Server push: a certificate this session relies on (its own) was revoked. */
defineAppType('cert.revoked', {
  push: s.map({ serial: serialHex, reason: revocationReason, revokedAt: epochMs }),
});
