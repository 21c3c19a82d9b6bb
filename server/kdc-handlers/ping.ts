// `ping {data?}` -> `{ pong: true, data? }`: a liveness check for every session that has a name (client,
// admin, the MITM lab's insecure ones). Not for anonymous enrollment sessions: they get exactly what
// enrolling needs, the `enroll` request (docs/security.md). `data` (at most 1 KiB) is echoed, so a
// client can match a pong to its ping.
import type { KdcHandler } from '../kdc/dispatch.js';

export const ping: KdcHandler<'ping'> = {
  roles: ['client', 'admin', 'insecure'],
  handle: async (_ctx, body) => (body.data === undefined ? { pong: true } : { pong: true, data: body.data }),
};
