// When a session asks the KDC for a new resumption ticket (docs/protocol.md "Resumption", "Ticket reuse").
//
// A full (`auth`) session always does: the client has no ticket, or one it could not use. A resumed
// session keeps the ticket it resumed with while that ticket has at least TICKET_RENEW_BEFORE_MS left.
// The ticket is replay-bounded by the Finished MACs, not by single use, so reusing it gives a replayer
// nothing; what it costs is linkability (RFC 8446 appendix C.4 says clients SHOULD NOT reuse tickets),
// which docs/protocol.md "Ticket reuse" weighs against kds's full handshake, whose client certificate
// travels in clear. What it saves is a `session.ticket` request per resumption: a record each way, the
// dispatch and an AES-GCM seal at the KDC (docs/performance.md "resumption").

/** A ticket with less than this left is replaced by the next session it resumes (half its lifetime). */
export const TICKET_RENEW_BEFORE_MS = 6 * 3600_000;

/**
 * Whether a session in `mode` asks for a ticket. `used`: the ticket a resumed session resumed with
 * (its expiresAt, when the client knows it); `notAfter`: the session's certificate's, which caps every
 * ticket, so a ticket that already reaches it is never replaced.
 */
export function wantsNewTicket(
  mode: string,
  used: { expiresAt?: number } | undefined,
  notAfter: number,
  now: number,
): boolean {
  if (mode === 'auth') return true;
  if (mode !== 'resume') return false;
  const expiresAt = used?.expiresAt;
  if (expiresAt === undefined) return true;
  return expiresAt - now < TICKET_RENEW_BEFORE_MS && expiresAt < notAfter;
}
