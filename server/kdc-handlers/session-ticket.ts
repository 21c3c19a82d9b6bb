// `session.ticket {}` -> `{ticket, expiresAt}`: the ticket that resumes this identity's next session
// without RSA (docs/protocol.md "Resumption"). One per session: its psk is this session's resumption
// secret, which the connection hands out once and then forgets. Authenticated sessions only (an
// anonymous or insecure session has no identity a ticket could carry).
import { PolicyError } from '../../shared/errors.js';
import type { KdcHandler } from '../kdc/dispatch.js';

export const sessionTicket: KdcHandler<'session.ticket'> = {
  roles: ['client', 'admin'],
  handle: async (ctx) => {
    const tickets = ctx.kdc.tickets;
    if (tickets === undefined) throw new PolicyError('forbidden', 'this KDC does not resume sessions');
    const psk = ctx.session.takeResumptionSecret();
    if (psk === undefined) throw new PolicyError('forbidden', 'this session already has its ticket');
    const { identity } = ctx;
    try {
      const { ticket, expiresAt } = await tickets.issue(
        {
          name: identity.name,
          serialHex: identity.serialHex,
          role: identity.role === 'admin' ? 'admin' : 'client',
          notAfter: identity.expiresAt,
          // A session without the time is one this KDC did not authenticate: no ticket outlives now.
          authenticatedAt: identity.authenticatedAt ?? 0,
        },
        psk,
      );
      return { ticket, expiresAt };
    } finally {
      psk.fill(0);
    }
  },
};
