// downgrade: alter what the client offers. Against a secure client Mallory strips authentication
// (mode auth -> insecure): a KDC that refuses insecure sessions says so (insecure_refused), and one
// that allows them answers without a certificate, which a secure client never accepts ("a secure
// client never accepts an insecure reply"). Against an insecure client she offers a weaker group
// first; the group list is part of the transcript, and the Finished MACs no longer match (bad_mac).
import type { AttackModule } from '../attack.js';
import { rewriteClientHello, viewFrame } from '../frames.js';

export const downgrade: AttackModule = {
  name: 'downgrade',
  summary: 'alter the offered mode and groups in the client_hello (strip authentication)',
  position: 'on the path between a client and the KDC, during the handshake',
  action:
    "Rewrites the client_hello: mode auth -> insecure (the server then has no reason to sign anything). For an insecure client: puts a weaker group 'ffdhe1024' first in the offer.",
  secure: {
    outcome: 'failed',
    defence: 'downgrade protection',
    why: 'a secure client refuses a server_hello without certificate and signature; the KDC may refuse first',
  },
  insecure: {
    outcome: 'failed',
    defence: 'key confirmation',
    why: 'the offer is in the transcript: the Finished MACs of the two ends disagree',
  },
  connection(link) {
    let done = false;
    return {
      fromClient(frame) {
        const v = viewFrame(frame);
        if (done || v.frame?.t !== 'client_hello') {
          link.toServer(frame);
          return;
        }
        done = true;
        if (v.frame.mode !== 'insecure') {
          const from = v.frame.mode;
          link.toServer(
            rewriteClientHello(frame, (h) => (h.mode = 'insecure')),
            'modify',
            `mode ${from} -> insecure`,
          );
          link.expect({
            defence: 'downgrade protection',
            toward: 'client',
            codes: ['insecure_refused'],
            what: `downgraded the handshake from ${from} to insecure`,
          });
          return;
        }
        link.toServer(
          rewriteClientHello(frame, (h) => (h.groups = ['ffdhe1024', ...h.groups])),
          'modify',
          "weaker group 'ffdhe1024' offered first",
        );
        link.expect({
          defence: 'key confirmation',
          toward: 'client',
          codes: ['bad_mac'],
          what: 'altered the offered groups',
        });
      },
    };
  },
};
