// tamper: flip one bit of a record in flight. AES-GCM authenticates every ciphertext bit (RFC 5116
// section 2.2: "the decryption operation ... returns FAIL" on any modification), so the KDC's record
// layer refuses the record (record_auth), ends the session and tells the victim why. The insecure mode
// does not change this: it removes authentication from the handshake, not from the records.
import type { AttackModule } from '../attack.js';
import { rewriteRecord } from '../frames.js';
import { onFirstRecord } from '../tactics.js';

export const tamper: AttackModule = {
  name: 'tamper',
  summary: "flip one bit in the client's first record",
  position: 'on the path between a client and the KDC, after the handshake (she cannot read the records)',
  action:
    'Flips one bit in the middle of the ciphertext of the first record the client sends, then forwards everything else.',
  secure: {
    outcome: 'failed',
    defence: 'record authentication',
    why: 'the GCM tag covers every ciphertext bit',
  },
  insecure: {
    outcome: 'failed',
    defence: 'record authentication',
    why: 'insecure mode drops authentication from the handshake only; blind changes to a record still fail its tag',
  },
  connection(link) {
    return onFirstRecord(link, 'client', (frame) => {
      const modified = rewriteRecord(frame, (c) => {
        const out = Buffer.from(c);
        const i = Math.floor(out.length / 2);
        out[i] = out[i]! ^ 0x01;
        return out;
      });
      link.toServer(modified, 'modify', 'one ciphertext bit flipped');
      link.expect({
        defence: 'record authentication',
        toward: 'server',
        codes: ['record_auth'],
        what: 'flipped a bit in a record',
      });
    });
  },
};
