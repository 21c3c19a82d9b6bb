// revoked-ticket: resume with the ticket of an identity whose certificate was revoked since
// (docs/protocol.md "Resumption", the KDC's checks). Mallory is an insider about to be found out
// (`--identity <home>`, a valid certificate): she opens a session and pockets its ticket and psk, then
// her certificate is revoked (she revokes it herself over that session, as `kds client revoke-cert`
// does, standing in for the administrator), and she resumes with the still-unexpired ticket. The
// ticket opens and the binder verifies, but the KDC checks the identity a ticket names against the
// store on every resumption, as a full handshake does: cert_revoked, no fallback. In insecure mode she
// needs no ticket: she claims the revoked name.
import { defenceForCode, WIRE } from '../../../shared/defences.js';
import { toKdsError } from '../../../shared/errors.js';
import type { AttackModule } from '../attack.js';
import type { MitmContext } from '../context.js';
import { viewFrame } from '../frames.js';

/** How long Mallory waits for her session's ticket (asked for right after the handshake). */
const TICKET_WAIT_MS = 10_000;

export const revokedTicket: AttackModule = {
  name: 'revoked-ticket',
  summary: 'resume with the unexpired ticket of an identity revoked since it was issued',
  position:
    "a client of her own towards the KDC (her connection), holding a valid client certificate (--identity) that gets revoked; victims' traffic passes untouched",
  action:
    'When a victim connects, Mallory opens her own session, keeps its resumption ticket, revokes her certificate over that session, then resumes with the ticket (or, for an insecure victim, claims the revoked name in an insecure session).',
  secure: {
    outcome: 'failed',
    defence: 'revocation',
    why: 'a resumption checks the identity its ticket names against the revocation list, like a full handshake',
  },
  insecure: {
    outcome: 'succeeded',
    why: 'an insecure session needs neither certificate nor ticket: the revoked identity just claims its name',
  },
  needsIdentity: true,
  connection(link) {
    return {
      fromClient(frame) {
        const v = viewFrame(frame);
        if (v.frame?.t === 'client_hello' && !link.ctx.scratch.has('revoked-ticket')) {
          link.ctx.scratch.set('revoked-ticket', true);
          const insecure = v.frame.mode === 'insecure';
          link.ctx.task(() => resumeRevoked(link.ctx, insecure));
        }
        link.toServer(frame);
      },
    };
  },
};

async function resumeRevoked(ctx: MitmContext, insecure: boolean): Promise<void> {
  const id = ctx.settings.identity;
  if (id === undefined) {
    ctx.inconclusive(0, 'no identity to revoke (--identity)');
    return;
  }
  const note = (action: 'session' | 'accepted' | 'refused', text: string): void =>
    ctx.record({ conn: 0, dir: 'side', type: 'session', size: 0, action, note: text });
  let resolveTicket!: (t: { ticket: Buffer; psk: Buffer }) => void;
  const ticketGiven = new Promise<{ ticket: Buffer; psk: Buffer }>((r) => (resolveTicket = r));
  note('session', `Mallory opens her own auth session as ${id.name} and keeps its ticket`);
  const first = await ctx.openOwnSession('auth', undefined, resolveTicket);
  let timer: NodeJS.Timeout | undefined;
  const ticket = await Promise.race([
    ticketGiven,
    new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), TICKET_WAIT_MS))),
  ]);
  clearTimeout(timer);
  try {
    if (ticket === undefined) {
      ctx.inconclusive(0, 'the KDC gave no resumption ticket');
      return;
    }
    await first.request('cert.revoke', { serial: id.cert.serialHex, reason: 'keyCompromise' });
    note('session', `${id.name}'s certificate (serial ${id.cert.serialHex}) is revoked`);
  } finally {
    await first.close();
  }
  try {
    const session = insecure ? await ctx.openOwnSession('insecure') : await ctx.resumeOwnSession(ticket);
    note('accepted', `session as ${session.facts.identity.name}`);
    if (insecure) ctx.terminatedInsecure = true;
    ctx.succeed(
      0,
      insecure
        ? `the KDC accepted an insecure session claiming ${id.name}, whose certificate is revoked`
        : `the KDC resumed a session for ${id.name}, whose certificate is revoked`,
    );
    await session.close();
  } catch (err) {
    const e = toKdsError(err);
    note('refused', e.code);
    const d = defenceForCode(e.code, WIRE);
    if (d !== undefined)
      ctx.fail(0, d.defence, `the KDC refused ${id.name}'s resumption with a revoked identity`, e.code);
    else ctx.inconclusive(0, `her resumption failed with ${e.code}`);
  }
}
