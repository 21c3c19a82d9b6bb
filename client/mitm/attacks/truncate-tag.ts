// truncate-tag: cut the end off the 16-byte GCM tag of a record. kds fixes the tag length (16 bytes,
// NIST SP 800-38D allows shorter tags only by prior agreement): a shorter tag is simply a wrong tag,
// refused by the record layer like any other (record_auth). Applied to the KDC's first record (the
// `ready` push), so it is the victim's own record layer that refuses it.
import type { AttackModule } from '../attack.js';
import { rewriteRecord } from '../frames.js';
import { onFirstRecord } from '../tactics.js';

const CUT = 4;

export const truncateTag: AttackModule = {
  name: 'truncate-tag',
  summary: "cut 4 bytes off the GCM tag of the KDC's first record",
  position: 'on the path between a client and the KDC, after the handshake',
  action: `Removes the last ${CUT} bytes (of the 16-byte authentication tag) from the first record the KDC sends, the \`ready\` push.`,
  secure: {
    outcome: 'failed',
    defence: 'record authentication',
    why: 'the tag length is fixed at 16 bytes; a short tag fails like a wrong one',
  },
  insecure: {
    outcome: 'failed',
    defence: 'record authentication',
    why: 'the record layer is the same in insecure mode',
  },
  connection(link) {
    return onFirstRecord(link, 'server', (frame) => {
      link.toClient(
        rewriteRecord(frame, (c) => c.subarray(0, Math.max(0, c.length - CUT))),
        'modify',
        `last ${CUT} tag bytes cut`,
      );
      link.expect({
        defence: 'record authentication',
        toward: 'client',
        codes: ['record_auth'],
        what: 'truncated the GCM tag of a record',
      });
    });
  },
};
