// passthrough: Mallory only watches. The baseline of the lab: what a passive eavesdropper on the wire
// between a client and the KDC learns (names, groups, certificates in the handshake; sizes and timing
// of records) and what she does not (anything inside a record).
import type { AttackModule } from '../attack.js';

export const passthrough: AttackModule = {
  name: 'passthrough',
  summary: 'observe only: forward every frame; after the handshake only ciphertext is visible',
  position: 'on the path between a client and the KDC (the client connects to Mallory), passive',
  action:
    'Forwards every frame unchanged and logs its type and size. The handshake is plaintext (mode, groups, DH shares, certificates); every later frame is an AES-GCM record.',
  secure: {
    outcome: 'failed',
    defence: 'record encryption',
    why: 'after the handshake only ciphertext crosses the wire; the DH secret never does',
  },
  insecure: {
    outcome: 'failed',
    defence: 'record encryption',
    why: 'even unauthenticated DH defeats a passive observer: she sees both public shares but cannot compute the secret',
  },
  connection(link) {
    return {
      closed() {
        const { c2s, s2c } = link.records;
        if (c2s + s2c > 0) {
          link.fail(
            'record encryption',
            `saw ${c2s} client and ${s2c} KDC records: ciphertext only, nothing to read`,
          );
        } else {
          link.inconclusive('no session got past its handshake');
        }
      },
    };
  },
};
