// `ping {data?}` -> `{ pong: true, data? }`: a liveness check any session may send, enrollment sessions
// included. `data` (at most 1 KiB) is echoed, so a client can match a pong to its ping.
import { registerHandler } from '../kdc/dispatch.js';

registerHandler('ping', {
  roles: ['client', 'admin', 'anonymous', 'insecure'],
  handle: async (_ctx, body) => (body.data === undefined ? { pong: true } : { pong: true, data: body.data }),
});
