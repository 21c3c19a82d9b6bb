// stale-key: use an AES key after it was revoked. Mallory, as an enrolled insider (--identity),
// creates a KDC key with the victim, revokes it, then still tries to use it: a message under it
// (msg.send) and a verification (key.verify). Revocation is durable before it is acknowledged and
// checked on every use: key_revoked / verdict `revoked`. The channel mode plays no part.
import { kdcKeyDigest } from '../../../shared/keys/digest.js';
import { sealMessage } from '../../../shared/keys/message.js';
import { defenceForCode, WIRE } from '../../../shared/defences.js';
import { toKdsError } from '../../../shared/errors.js';
import type { AttackModule } from '../attack.js';
import type { MitmContext } from '../context.js';
import { viewFrame } from '../frames.js';

export const staleKey: AttackModule = {
  name: 'stale-key',
  summary: 'keep using an AES key after it has been revoked',
  position:
    "an enrolled client of her own (--identity) sharing a key with the victim; victims' traffic passes untouched",
  action:
    'Once the victim is known (its certificate name travels in clear), Mallory creates a KDC key with it, revokes it, then sends a message under it and asks the KDC to verify it.',
  secure: {
    outcome: 'failed',
    defence: 'revocation',
    why: 'a revoked key is refused on every use (key_revoked)',
  },
  insecure: {
    outcome: 'failed',
    defence: 'revocation',
    why: 'revocation is enforced by the KDC whatever the channel',
  },
  needsIdentity: true,
  connection(link) {
    return {
      fromClient(frame) {
        const v = viewFrame(frame);
        const ctx = link.ctx;
        if (v.frame?.t === 'client_finish' && !ctx.scratch.has('stale-key')) {
          ctx.scratch.set('stale-key', true);
          const peer = ctx.settings.peer ?? link.victimName;
          const mode = link.mode === 'insecure' ? 'insecure' : 'auth';
          ctx.task(() => useStaleKey(ctx, mode, peer));
        }
        link.toServer(frame);
      },
    };
  },
};

async function useStaleKey(
  ctx: MitmContext,
  mode: 'auth' | 'insecure',
  peer: string | undefined,
): Promise<void> {
  const id = ctx.settings.identity;
  if (id === undefined || peer === undefined || peer === id.name) {
    ctx.inconclusive(
      0,
      id === undefined ? 'no identity of her own (--identity)' : 'no peer to share a key with (--peer)',
    );
    return;
  }
  ctx.record({
    conn: 0,
    dir: 'side',
    type: 'session',
    size: 0,
    action: 'session',
    note: `Mallory opens her own ${mode} session as ${id.name}`,
  });
  const session = await ctx.openOwnSession(mode);
  try {
    const created = await session.request('key.create', { peer });
    const serial = created.serial;
    const key = Buffer.from(created.key);
    await session.request('key.revoke', { serial, reason: 'keyCompromise' });
    ctx.record({
      conn: 0,
      dir: 'side',
      type: 'session',
      size: 0,
      action: 'session',
      note: `created key ${serial} with ${peer}, then revoked it`,
    });
    try {
      const sealed = sealMessage(
        key,
        { serial, from: id.name, to: peer, seq: 1 },
        Buffer.from('sent under a revoked key', 'utf8'),
      );
      await session.request('msg.send', { to: peer, serial, ...sealed });
      ctx.succeed(0, `the KDC relayed a message under revoked key ${serial}`);
    } catch (err) {
      const e = toKdsError(err);
      ctx.record({
        conn: 0,
        dir: 'side',
        type: 'session',
        size: 0,
        action: 'refused',
        note: `msg.send under the revoked key: ${e.code}`,
      });
      const d = defenceForCode(e.code, WIRE);
      if (d !== undefined)
        ctx.fail(0, d.defence, `the KDC refused a message under revoked key ${serial}`, e.code);
      else ctx.inconclusive(0, `msg.send failed with ${e.code}`);
    }
    const v = await session.request('key.verify', { serial, digest: kdcKeyDigest(serial, key) });
    ctx.record({
      conn: 0,
      dir: 'side',
      type: 'session',
      size: 0,
      action: v.verdict === 'valid' ? 'accepted' : 'refused',
      note: `key.verify: ${v.verdict}`,
    });
    if (v.verdict === 'valid') ctx.succeed(0, `the KDC still calls revoked key ${serial} valid`);
    key.fill(0);
  } finally {
    await session.close().catch(() => undefined);
  }
}
