// substitute-dh: the textbook man-in-the-middle on Diffie-Hellman. Mallory replaces the ephemeral
// public keys in both hellos with her own, to share one secret with each side.
// - Secure: the KDC signs (RSA-PSS) the transcript it saw, which holds Mallory's share; the client
//   checks that signature over ITS transcript, which holds its own share, and refuses: bad_signature.
// - Insecure: no signature, nothing to check: Mallory terminates both sessions and reads every record
//   (client/mitm/interceptor.ts), including the AES key in a `key.create` response (`--mode kdc`).
import type { AttackModule } from '../attack.js';
import { enterChannel } from '../tactics.js';

export const substituteDh: AttackModule = {
  name: 'substitute-dh',
  summary: 'replace the ephemeral DH keys both ways to sit inside the session',
  position: 'on the path between a client and the KDC (the client connects to Mallory), active',
  action:
    "Rewrites the DH share in the client_hello and in the server_hello with Mallory's own. Against an insecure client she runs both handshakes herself and re-encrypts every record, reading (and stealing) what is inside.",
  secure: {
    outcome: 'failed',
    defence: 'transcript signature',
    why: 'the KDC signs the transcript it saw; the client verifies it over its own and refuses',
  },
  insecure: {
    outcome: 'succeeded',
    why: 'unauthenticated DH: each side completes a valid handshake with Mallory; she decrypts every record and steals KDC-generated keys',
  },
  connection(link) {
    const hooks = enterChannel(link, {
      goal: 'read the session',
      intercept: {
        established: () => link.succeed('Mallory holds the keys of both sessions: every record is decrypted'),
      },
    });
    return hooks;
  },
};
