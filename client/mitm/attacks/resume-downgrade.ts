// resume-downgrade: strip resumption from a client_hello (docs/protocol.md "Resumption"). The victim
// resumes (mode resume: a ticket and a binder over its hello); Mallory rewrites the hello to mode
// insecure and drops the ticket and the binder, so the KDC would run a Diffie-Hellman with no psk and no
// certificate. A KDC that does not allow insecure sessions refuses the hello (insecure_refused); one that
// does answers unauthenticated, and the victim, whose keys hash its own hello and the ticket's psk
// (IKM = Z || psk), finds the KDC's Finished MAC wrong (bad_mac). An insecure victim has nothing to
// strip: its session is already the downgraded one, and Mallory opens one in its name herself.
import type { AttackModule } from '../attack.js';
import { rewriteClientHello, viewFrame } from '../frames.js';
import type { Link } from '../link.js';

export const resumeDowngrade: AttackModule = {
  name: 'resume-downgrade',
  summary: 'strip the ticket and binder from a resumed client_hello (mode resume -> insecure)',
  position: 'on the path between a client and the KDC, during the handshake',
  action:
    'Rewrites a resumed client_hello: mode resume -> insecure, ticket and PSK binder removed (no psk in the keys, nothing authenticated). For an insecure client: opens an insecure session in its name.',
  secure: {
    outcome: 'failed',
    defence: 'downgrade protection',
    why: "the KDC refuses the insecure hello; one that allows insecure sessions answers without the psk, and the victim's Finished MAC check fails",
  },
  insecure: {
    outcome: 'succeeded',
    why: 'an insecure session has no psk and no certificate to strip: Mallory claims the victim name in a session of her own',
  },
  connection(link) {
    let done = false;
    return {
      fromClient(frame) {
        const v = viewFrame(frame);
        if (done || v.frame?.t !== 'client_hello' || v.frame.mode !== 'resume') {
          link.toServer(frame);
          return;
        }
        done = true;
        link.toServer(
          rewriteClientHello(frame, (h) => {
            h.mode = 'insecure';
            delete h.ticket;
            delete h.binder;
          }),
          'modify',
          'mode resume -> insecure, ticket and binder stripped',
        );
        link.expect({
          defence: 'downgrade protection',
          toward: 'server',
          codes: ['insecure_refused'],
          what: 'stripped resumption from the handshake (resume -> insecure)',
        });
      },
      closed() {
        if (link.mode === 'insecure') link.ctx.task(() => claimVictim(link));
        else if (!done) link.inconclusive('the victim did not resume: no ticket to strip');
      },
    };
  },
};

async function claimVictim(link: Link): Promise<void> {
  const name = link.victimName;
  const session = await link.ctx.openOwnSession('insecure', name);
  link.ctx.terminatedInsecure = true;
  link.ctx.succeed(0, `the KDC accepted an insecure session claiming ${name ?? 'a name'}`);
  await session.close();
}
