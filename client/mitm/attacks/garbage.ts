// garbage: random bytes where a frame should be. Every frame is decoded with explicit limits and
// checked against its schema before anything uses it (shared/protocol/codec.ts, messages.ts); bytes
// that are not a kds frame end the connection with an alert naming the problem (bad_frame, schema...).
import { randomBytes } from '../../../shared/crypto/random.js';
import type { AttackModule } from '../attack.js';
import { viewFrame } from '../frames.js';

export const garbage: AttackModule = {
  name: 'garbage',
  summary: 'send random bytes instead of the client_hello',
  position: 'on the path between a client and the KDC, during the handshake',
  action:
    'Replaces the client_hello with 48 random bytes; the KDC answers with an alert, which reaches the victim.',
  secure: {
    outcome: 'failed',
    defence: 'input validation',
    why: 'frames are decoded with limits and schema-checked before use',
  },
  insecure: { outcome: 'failed', defence: 'input validation', why: 'the same decoder in every mode' },
  connection(link) {
    let done = false;
    return {
      fromClient(frame) {
        if (done || viewFrame(frame).kind !== 'client_hello') {
          link.toServer(frame);
          return;
        }
        done = true;
        link.toServer(randomBytes(48), 'modify', 'random bytes instead of the client_hello');
        link.expect({ defence: 'input validation', toward: 'server', what: 'sent random bytes' });
      },
    };
  },
};
