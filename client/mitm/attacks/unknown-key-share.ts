// unknown-key-share: make Bob believe a key Alice shares with him is shared with Mallory instead (the
// classic UKS on a key exchange that does not bind both identities). Mallory must sit INSIDE Bob's
// channel to rewrite the `key.delivered` notice the KDC relays: `from` and the sender's certificate
// become hers (--identity), everything else (ephemeral key, ciphertext, Alice's signature) is kept.
// - Secure: she cannot get inside Bob's channel: her DH substitution is stopped by the transcript
//   signature, so she never even sees the delivery.
// - Insecure: she is inside, and rewrites the delivery; but the end-to-end transcript Alice signed
//   binds both names and certificate serials, so Bob's check of Alice's signature, recomputed with
//   "mallory", fails (bad_signature): Bob rejects and revokes the key. A KDC-generated key is caught
//   by key confirmation instead (Bob's key.verify signature covers the sender he believes in), but it
//   travels in the delivery itself: Mallory steals it on the way (client/mitm/loot.ts), and a stolen
//   key makes the attack a success whatever Bob decides (client/mitm/context.ts).
import { defenceForCode, WIRE } from '../../../shared/defences.js';
import type { ServerMessage } from '../../../shared/protocol/secure-channel.js';
import type { AttackModule } from '../attack.js';
import { enterChannel } from '../tactics.js';

export const unknownKeyShare: AttackModule = {
  name: 'unknown-key-share',
  summary: "rewrite the sender of a relayed key delivery so Bob thinks Alice's key is Mallory's",
  position:
    "inside the RECEIVER's channel (needs to read and rewrite records: only possible against an insecure client; against a secure one she first has to break the channel, and cannot)",
  action:
    "Terminates Bob's insecure session (as substitute-dh) and rewrites each key.delivered push: from -> Mallory, sender certificate -> Mallory's (--identity). Then watches whether Bob verifies or revokes the key.",
  secure: {
    outcome: 'failed',
    defence: 'transcript signature',
    why: "Mallory cannot enter Bob's channel: the KDC's transcript signature exposes her substitution",
  },
  insecure: {
    outcome: 'failed',
    defence: 'transcript signature',
    why: "Alice's signature covers both names and certificate serials; with Mallory's name in it, it no longer verifies and Bob rejects the key (an end-to-end key: a KDC-generated one she steals from the delivery, a success)",
  },
  needsIdentity: true,
  connection(link) {
    const ctx = link.ctx;
    const rewritten = new Set<string>();
    const verifying = new Map<number, string>();
    const hooks = enterChannel(link, {
      goal: "rewrite the deliveries in Bob's channel",
      intercept: {
        request(req) {
          const b = req.body as Record<string, unknown>;
          const serial = String(b.serial);
          if (!rewritten.has(serial)) return undefined;
          if (req.type === 'key.revoke') {
            link.fail(
              'transcript signature',
              `${link.victimName ?? 'the victim'} rejected the rewritten delivery of ${serial} and revoked the key`,
            );
          } else if (req.type === 'key.verify') {
            verifying.set(req.id, serial);
          }
          return undefined;
        },
        response(msg: ServerMessage) {
          if (msg.kind === 'push' && msg.type === 'key.delivered') {
            const id = ctx.settings.identity;
            const b = msg.body as Record<string, unknown>;
            const from = String(b.from);
            if (id === undefined || from === id.name) return undefined;
            rewritten.add(String(b.serial));
            link.info(`rewriting delivery ${String(b.serial)}: from ${from} -> ${id.name}`);
            const body: Record<string, unknown> =
              b.mode === 'e2e'
                ? { ...b, from: id.name, fromCertSerial: id.cert.serialHex, fromCert: id.cert.der }
                : { ...b, from: id.name, fromCertSerial: id.cert.serialHex };
            return { ...msg, body };
          }
          if ((msg.kind === 'ok' || msg.kind === 'error') && verifying.has(msg.id)) {
            const serial = verifying.get(msg.id)!;
            if (
              msg.kind === 'ok' &&
              msg.body !== null &&
              (msg.body as Record<string, unknown>).verdict === 'valid'
            ) {
              link.succeed(
                `${link.victimName ?? 'the victim'} accepted key ${serial} as shared with ${ctx.settings.identity?.name ?? 'Mallory'}`,
              );
            } else if (msg.kind === 'error') {
              link.fail(
                defenceForCode(msg.error.code, WIRE)?.defence ?? 'key confirmation',
                `the KDC refused the verification of ${serial}`,
                msg.error.code,
              );
            } else {
              link.fail(
                'key confirmation',
                `the KDC's verdict on ${serial}: ${String((msg.body as Record<string, unknown>).verdict)}`,
              );
            }
          }
          return undefined;
        },
      },
    });
    return {
      fromClient: (f) => hooks.fromClient!(f),
      fromServer: (f) => hooks.fromServer!(f),
      closed() {
        if (link.decided || hooks.interceptor?.established !== true) return;
        if (ctx.settings.identity === undefined)
          link.inconclusive('no identity to put in the delivery (--identity)');
        else if (rewritten.size === 0) link.inconclusive('no key delivery passed through this connection');
        else
          link.fail(
            'transcript signature',
            `${link.victimName ?? 'the victim'} never confirmed the rewritten delivery`,
          );
      },
    };
  },
};
