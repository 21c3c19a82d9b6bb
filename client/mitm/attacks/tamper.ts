// tamper: flip one bit of a record in flight. AES-GCM authenticates every ciphertext bit (RFC 5116
// section 2.2: "the decryption operation ... returns FAIL" on any modification), so the KDC's record
// layer refuses the record (record_auth), ends the session and tells the victim why. The insecure mode
// does not change this: it removes authentication from the handshake, not from the records.
//
// Mallory cannot read the record, but she knows the protocol: the first request of every key command
// is `key.prekeys` with `listHeld: true` as its last entry (client/keys/prekey-stock.ts), and GCM
// encrypts by XOR with a keystream, so a bit flipped in the ciphertext flips the same bit of the
// plaintext. She flips the lowest bit of the last plaintext byte (the byte before the 16-byte tag):
// msgpack `true` (0xc3) becomes `false` (0xc2), a request that still decodes, with another value.
// Only a record layer that skips the tag check lets it through (the ablation's `record-authentication`
// switch); then the KDC acts on the altered request and the victim carries on. A flip that hits
// anything else (another first request) no longer decodes: the KDC answers with an error the victim
// ends its session on, which Mallory counts as stopped by input validation.
import { AES_GCM_TAG_BYTES } from '../../../shared/crypto/aead.js';
import type { AttackModule } from '../attack.js';
import { rewriteRecord } from '../frames.js';
import { onFirstRecord } from '../tactics.js';

export const tamper: AttackModule = {
  name: 'tamper',
  summary: "flip one bit in the client's first record",
  position: 'on the path between a client and the KDC, after the handshake (she cannot read the records)',
  action:
    "Flips the lowest bit of the last plaintext byte of the client's first record (the byte before the GCM tag: listHeld true -> false in the key.prekeys request every key command opens with), then forwards everything else.",
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
        const i = out.length - AES_GCM_TAG_BYTES - 1;
        if (i >= 0) out[i] = out[i]! ^ 0x01;
        return out;
      });
      link.toServer(modified, 'modify', 'one ciphertext bit flipped (the last plaintext byte)');
      link.expect({
        defence: 'record authentication',
        toward: 'server',
        codes: ['record_auth'],
        what: 'flipped a bit in a record',
        // The KDC's answer is sealed: a victim that ends its session right after it was refused.
        refusedBy: 'input validation',
      });
    });
  },
};
