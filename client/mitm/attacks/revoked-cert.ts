// revoked-cert: Mallory holds a certificate that is revoked but otherwise valid (issued by the real
// CA, unexpired, right usage: an ex-insider's, `--identity <home>`) and opens her own session with it.
// The KDC checks revocation on every handshake (CertificateAuthority.revocationOf, kept in sync with the
// store and the CRL): cert_revoked. In insecure mode nothing is presented at all: she claims the name
// and the KDC believes it, revoked or not.
import { defenceForCode, WIRE } from '../../../shared/defences.js';
import { toKdsError } from '../../../shared/errors.js';
import type { AttackModule } from '../attack.js';
import type { MitmContext } from '../context.js';
import { viewFrame } from '../frames.js';

export const revokedCert: AttackModule = {
  name: 'revoked-cert',
  summary: 'open a session with a revoked (but otherwise valid) certificate',
  position:
    "a client of her own towards the KDC (her connection), holding a revoked client certificate (--identity); victims' traffic passes untouched",
  action:
    "When a victim connects, Mallory opens her own session to the KDC with the revoked certificate, in the victim's mode (authenticated, or insecure claiming the revoked name).",
  secure: { outcome: 'failed', defence: 'revocation', why: 'the KDC checks revocation on every handshake' },
  insecure: {
    outcome: 'succeeded',
    why: 'an insecure session presents no certificate: the revoked identity just claims its name',
  },
  needsIdentity: true,
  connection(link) {
    return {
      fromClient(frame) {
        const v = viewFrame(frame);
        if (v.frame?.t === 'client_hello' && !link.ctx.scratch.has('revoked-cert')) {
          link.ctx.scratch.set('revoked-cert', true);
          const mode = v.frame.mode === 'insecure' ? 'insecure' : 'auth';
          link.ctx.task(() => presentRevoked(link.ctx, mode));
        }
        link.toServer(frame);
      },
    };
  },
};

async function presentRevoked(ctx: MitmContext, mode: 'auth' | 'insecure'): Promise<void> {
  const id = ctx.settings.identity;
  if (id === undefined) {
    ctx.inconclusive(0, 'no revoked identity to present (--identity)');
    return;
  }
  const how =
    mode === 'auth'
      ? `presents ${id.name}'s revoked certificate (serial ${id.cert.serialHex})`
      : `claims the name ${id.name} (revoked)`;
  ctx.record({
    conn: 0,
    dir: 'side',
    type: 'session',
    size: 0,
    action: 'session',
    note: `Mallory opens her own ${mode} session and ${how}`,
  });
  try {
    const session = await ctx.openOwnSession(mode);
    ctx.record({
      conn: 0,
      dir: 'side',
      type: 'session',
      size: 0,
      action: 'accepted',
      note: `session as ${session.facts.identity.name}`,
    });
    if (mode === 'insecure') ctx.terminatedInsecure = true;
    ctx.succeed(
      0,
      `the KDC accepted a session for ${id.name}, whose certificate is revoked${mode === 'insecure' ? ' (insecure mode checks no certificate)' : ''}`,
    );
    await session.close();
  } catch (err) {
    const e = toKdsError(err);
    ctx.record({ conn: 0, dir: 'side', type: 'session', size: 0, action: 'refused', note: e.code });
    const d = defenceForCode(e.code, WIRE);
    if (d !== undefined) ctx.fail(0, d.defence, `the KDC refused ${id.name}'s session`, e.code);
    else ctx.inconclusive(0, `her session failed with ${e.code}`);
  }
}
