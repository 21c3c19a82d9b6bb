// `admin.token {name, ttl?}` -> `{ token, expiresAt }`: a one-time enrollment token bound to one name
// (server/ca/tokens.ts: 256 random bits, only the hash stored, default 15 minutes, at most 7 days,
// reserved names refused). Admin only. The admin's own certificate is re-checked inside the transaction
// that stores the token (server/kdc/caller-status.ts).
import { assertCallerCurrent } from '../kdc/caller-status.js';
import type { KdcHandler } from '../kdc/dispatch.js';

export const adminToken: KdcHandler<'admin.token'> = {
  roles: ['admin'],
  handle: async (ctx, body) => {
    const created = await ctx.kdc.ca.createEnrollmentToken({
      name: body.name,
      ttlMs: body.ttl ?? ctx.kdc.tokenTtlMs,
      actor: `admin:${ctx.identity.name}`,
      beforeWrite: (tx) => assertCallerCurrent(tx, ctx.identity.serialHex, Date.now()),
    });
    return { token: created.token, expiresAt: created.expiresAt };
  },
};
