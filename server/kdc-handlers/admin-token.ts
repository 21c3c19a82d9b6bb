// `admin.token {name, ttl?}` -> `{ token, expiresAt }`: a one-time enrollment token bound to one name
// (server/ca/tokens.ts: 256 random bits, only the hash stored, default 15 minutes, at most 7 days,
// reserved names refused). Admin only. The admin's own certificate is re-checked inside the transaction
// that stores the token (server/kdc/caller-status.ts).
import { assertCallerCurrent } from '../kdc/caller-status.js';
import { registerHandler } from '../kdc/dispatch.js';

registerHandler('admin.token', {
  roles: ['admin'],
  handle: async (ctx, body) => {
    const created = await ctx.kdc.ca.createEnrollmentToken({
      name: String(body.name),
      ttlMs: body.ttl === undefined ? ctx.kdc.tokenTtlMs : Number(body.ttl),
      actor: `admin:${ctx.identity.name}`,
      beforeWrite: (tx) => assertCallerCurrent(tx, ctx.identity.serialHex, Date.now()),
    });
    return { token: created.token, expiresAt: created.expiresAt };
  },
});
