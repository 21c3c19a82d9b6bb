// reflect: send a party's own message back to it. Each direction has its own key and IV (key
// schedule: "kds v1 c2s key" / "kds v1 s2c key") and its direction in the additional data ("kds v1
// c2s"), so a client's record returned to it opens under the wrong key: record_auth.
import type { AttackModule } from '../attack.js';
import { onFirstRecord } from '../tactics.js';

export const reflect: AttackModule = {
  name: 'reflect',
  summary: "send the client's first record back to the client instead of the KDC",
  position: 'on the path between a client and the KDC, after the handshake',
  action:
    'Takes the first record the client sends and returns it to the client as if the KDC had sent it (the KDC never gets it).',
  secure: {
    outcome: 'failed',
    defence: 'record authentication',
    why: 'each direction has its own key, IV and additional data',
  },
  insecure: {
    outcome: 'failed',
    defence: 'record authentication',
    why: 'direction-bound record keys do not depend on the handshake being authenticated',
  },
  connection(link) {
    return onFirstRecord(link, 'client', (frame) => {
      link.toClient(frame, 'reflect', "the client's own record, sent back to it");
      link.expect({
        defence: 'record authentication',
        toward: 'client',
        codes: ['record_auth'],
        what: "reflected the client's record back to it",
      });
    });
  },
};
