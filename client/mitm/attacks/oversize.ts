// oversize: a frame past the protocol's limits. The KDC's WebSocket server refuses any message over
// MAX_FRAME_BYTES (64 KiB, ws maxPayload) before buffering it and closes with 1009 "message too big";
// the same limit holds on the client. Mallory pads the client_hello to one byte over the limit.
import { MAX_FRAME_BYTES } from '../../../shared/protocol/limits.js';
import type { AttackModule } from '../attack.js';
import { viewFrame } from '../frames.js';

export const oversize: AttackModule = {
  name: 'oversize',
  summary: `pad the client_hello past the ${MAX_FRAME_BYTES / 1024} KiB frame limit`,
  position: 'on the path between a client and the KDC, during the handshake',
  action: `Replaces the client_hello with the same bytes padded to ${MAX_FRAME_BYTES + 1} bytes.`,
  secure: {
    outcome: 'failed',
    defence: 'frame limits',
    why: 'frames over 64 KiB are refused before they are buffered (close 1009)',
  },
  insecure: { outcome: 'failed', defence: 'frame limits', why: 'limits do not depend on the handshake mode' },
  connection(link) {
    let done = false;
    return {
      fromClient(frame) {
        if (done || viewFrame(frame).kind !== 'client_hello') {
          link.toServer(frame);
          return;
        }
        done = true;
        const big = Buffer.alloc(MAX_FRAME_BYTES + 1);
        frame.copy(big);
        link.toServer(big, 'modify', `padded from ${frame.length} B to ${big.length} B`);
        link.expect({
          defence: 'frame limits',
          toward: 'server',
          codes: ['frame_too_large'],
          what: 'sent a frame over the size limit',
        });
      },
    };
  },
};
