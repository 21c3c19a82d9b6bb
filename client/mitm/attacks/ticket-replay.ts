// ticket-replay: re-send a resumed handshake on a connection of Mallory's own (docs/protocol.md
// "Resumption", "Ticket lifetime and replay"). The victim resumes with its ticket; once it is gone,
// Mallory replays its client_hello (ticket and binder intact, so the KDC opens the ticket, checks the
// binder and answers with a fresh nonce and DH share) and its client_finish. Tickets are replay-bounded,
// not single-use: the KDC's keys need the victim's ephemeral DH key and the ticket's psk, neither of
// which Mallory holds, so the recorded Finished MAC covers another transcript (bad_mac). An insecure
// victim has no ticket to replay, and Mallory needs none: she claims its name in a session of her own.
import type { AttackModule } from '../attack.js';
import type { Link } from '../link.js';
import { replayHandshake } from './replay.js';

export const ticketReplay: AttackModule = {
  name: 'ticket-replay',
  summary: "replay a client's resumed handshake (its ticket and binder) on a connection of her own",
  position: 'on the path between a client and the KDC; then as a client of her own towards the KDC',
  action:
    "Forwards the victim's resumed session untouched; after it leaves, replays its client_hello (mode resume: ticket and binder) and its client_finish to the KDC on a fresh connection.",
  secure: {
    outcome: 'failed',
    defence: 'key confirmation',
    why: "the KDC answers the replayed hello with a fresh DH share, so the recorded Finished MAC covers another transcript; the keys need the victim's DH key and the ticket's psk",
  },
  insecure: {
    outcome: 'succeeded',
    why: 'an insecure client has no ticket, and needs none: Mallory claims its name in an insecure session of her own',
  },
  connection(link) {
    return {
      closed() {
        link.ctx.task(() => replayResumption(link));
      },
    };
  },
};

async function replayResumption(link: Link): Promise<void> {
  const { ctx } = link;
  if (link.mode === 'insecure') {
    const name = link.victimName;
    const session = await ctx.openOwnSession('insecure', name);
    ctx.terminatedInsecure = true;
    ctx.succeed(0, `the KDC accepted an insecure session claiming ${name ?? 'a name'}: no ticket needed`);
    await session.close();
    return;
  }
  const ch = link.clientHello;
  const cf = link.clientFinish;
  if (link.mode !== 'resume' || ch === undefined || cf === undefined) {
    ctx.inconclusive(0, 'the victim did not complete a resumed handshake: no ticket to replay');
    return;
  }
  await replayHandshake(ctx, ch, cf);
}
