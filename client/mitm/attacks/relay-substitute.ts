// relay-substitute: on the Alice-to-Bob relay, swap Bob's one-time prekey (his ephemeral key for this
// exchange) for Mallory's, so that Alice wraps the new AES key for Mallory. She must be inside
// Alice's channel to rewrite the `key.reserve` answer.
// - Secure: she cannot get inside (transcript signature on the handshake).
// - Insecure: she is inside and swaps the prekey; but Bob signed his prekey with his identity key over
//   (name, certificate serial, prekey id, public key), and Alice checks that signature against Bob's
//   certificate before using it: bad_signature, no key.deposit, nothing to steal. (If Alice ever
//   deposited, Mallory would unwrap the key with her prekey and steal it: the code is here.)
import { generateDhKeyPair, type DhKeyPair } from '../../../shared/crypto/dh.js';
import { deriveWrappingKey, unwrapKey } from '../../../shared/keys/key-wrap.js';
import { e2eTranscriptHash } from '../../../shared/keys/transcript.js';
import { parseCertificate } from '../../../shared/pki/x509.js';
import type { AttackModule } from '../attack.js';
import { enterChannel } from '../tactics.js';

interface Swap {
  serial: string;
  expiresAt: number;
  peer: string;
  peerCertSerial: string;
  prekeyId: string;
  mine: DhKeyPair;
}

export const relaySubstitute: AttackModule = {
  name: 'relay-substitute',
  summary: "swap Bob's signed prekey (his ephemeral key) for Mallory's on the Alice-to-Bob relay",
  position:
    "inside the SENDER's channel (needs to read and rewrite records: only possible against an insecure client; against a secure one she first has to break the channel, and cannot)",
  action:
    "Terminates Alice's insecure session (as substitute-dh) and replaces the prekey public key in the key.reserve answer with her own X25519 key, keeping Bob's signature; if a key.deposit follows, unwraps the AES key with her private key.",
  secure: {
    outcome: 'failed',
    defence: 'transcript signature',
    why: "Mallory cannot enter Alice's channel: the KDC's transcript signature exposes her substitution",
  },
  insecure: {
    outcome: 'failed',
    defence: 'transcript signature',
    why: "Bob's prekey is signed by his identity key; Alice verifies it against his certificate",
  },
  connection(link) {
    const swaps = new Map<string, Swap>();
    let ownCertSerial: string | undefined;
    const hooks = enterChannel(link, {
      goal: "rewrite Bob's prekey in Alice's channel",
      intercept: {
        response(msg) {
          if (msg.kind === 'error') return;
          const b = msg.body as Record<string, unknown>;
          if (msg.kind === 'push' && msg.type === 'ready' && typeof b.serial === 'string')
            ownCertSerial = b.serial;
          if (msg.kind !== 'ok' || msg.type !== 'key.reserve') return;
          const prekey = b.prekey as Record<string, unknown>;
          const mine = generateDhKeyPair('x25519');
          swaps.set(String(b.serial), {
            serial: String(b.serial),
            expiresAt: Number(b.expiresAt),
            peer: String(b.peer),
            peerCertSerial: parseCertificate(Buffer.from(b.peerCert as Uint8Array)).serialHex,
            prekeyId: String(prekey.id),
            mine,
          });
          link.info(
            `swapping ${String(b.peer)}'s prekey ${String(prekey.id)} for Mallory's (keeping ${String(b.peer)}'s signature)`,
          );
          return { ...msg, body: { ...b, prekey: { ...prekey, publicKey: mine.publicKey } } };
        },
        request(req) {
          if (req.type !== 'key.deposit') return;
          const b = req.body as Record<string, unknown>;
          const swap = swaps.get(String(b.serial));
          if (swap === undefined) return;
          const th = e2eTranscriptHash({
            serial: swap.serial,
            sender: { name: link.victimName ?? '', certSerial: ownCertSerial ?? '' },
            receiver: { name: swap.peer, certSerial: swap.peerCertSerial },
            prekeyId: swap.prekeyId,
            prekeyPublic: swap.mine.publicKey,
            ephemeralPublic: b.ephemeral as Uint8Array,
            expiresAt: swap.expiresAt,
          });
          const z = swap.mine.deriveSharedSecret(b.ephemeral as Uint8Array);
          const key = unwrapKey(b.ciphertext as Uint8Array, deriveWrappingKey(z, th), th);
          link.ctx.loot.addKey({
            serial: swap.serial,
            key,
            from: link.victimName ?? '?',
            to: swap.peer,
            source: 'key.deposit wrapped for Mallory',
            conn: link.id,
          });
          link.succeed(`${link.victimName ?? 'the victim'} wrapped key ${swap.serial} for Mallory's prekey`);
        },
      },
    });
    return {
      fromClient: (f) => hooks.fromClient!(f),
      fromServer: (f) => hooks.fromServer!(f),
      closed() {
        if (link.decided || hooks.interceptor?.established !== true) return;
        if (swaps.size === 0) link.inconclusive('no end-to-end key exchange passed through this connection');
        else
          link.fail(
            'transcript signature',
            `${link.victimName ?? 'the victim'} refused the substituted prekey: nothing was deposited`,
          );
      },
    };
  },
};
