// `cert.renew {csr}` -> `{ cert, serial, notAfter, supersedes }`: the holder of a client (or admin)
// certificate renews it over a session that certificate authenticated (server/ca/renewal.ts has the
// rules: current certificate, a new key with proof of possession, per-name rate). The new certificate
// is `pending` until the client first authenticates with it (server/kdc/connection.ts installs it
// then); this session's certificate stays valid until that happens.
//
// One renewal in flight per session: each costs the CA an RSA signature on the thread pool, and a
// session's 32 request slots must not all be spent on them.
import { PolicyError } from '../../shared/errors.js';
import type { KdcHandler, SessionHandle } from '../kdc/dispatch.js';

const inFlight = new WeakSet<SessionHandle>();

export const certRenew: KdcHandler<'cert.renew'> = {
  roles: ['client', 'admin'],
  handle: async (ctx, body) => {
    const { identity, session } = ctx;
    if (inFlight.has(session)) {
      throw new PolicyError('rate_limited', 'a renewal is already in progress on this session');
    }
    inFlight.add(session);
    try {
      const issued = await ctx.kdc.ca.renewClient({
        name: identity.name,
        serialHex: identity.serialHex,
        csrPem: body.csr,
        actor: `${identity.role}:${identity.name}`,
      });
      return {
        cert: issued.cert.pem,
        serial: issued.cert.serialHex,
        notAfter: issued.cert.notAfter,
        supersedes: identity.serialHex,
      };
    } finally {
      inFlight.delete(session);
    }
  },
};
