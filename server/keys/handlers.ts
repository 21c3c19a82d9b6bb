// The key-distribution request types of the KDC (docs/keys.md): their handlers, which
// server/kdc-handlers/index.ts puts in the KDC's handler table. Bodies arrive validated against
// shared/protocol/messages-keys.ts and typed by it; each handler only adapts them to
// server/keys/service.ts (ctx.kdc.keys), the facade over the files that hold the rules.
import { AuthError } from '../../shared/errors.js';
import type { KdcHandlers, HandlerContext, Role } from '../kdc/dispatch.js';
import type { NewKeyRequest } from './key-context.js';
import type { KeySummary } from './key-lookup.js';
import type { VerifyRequest } from './key-verify.js';
import { MAX_KEYS_LISTED, type KEY_REQUESTS } from '../../shared/protocol/messages-keys.js';
import { MAX_RECORD_PLAINTEXT } from '../../shared/protocol/limits.js';
import type { RequestBody } from '../../shared/protocol/catalog.js';

// 'insecure' sessions exist only on a KDC started with --insecure-dh (the MITM lab's control mode,
// docs/attacks.md): the naive design lets a session that merely CLAIMS a name act as that client.
const CLIENT: readonly Role[] = ['client', 'insecure'];
const PARTIES: readonly Role[] = ['client', 'admin', 'insecure'];
const ADMIN: readonly Role[] = ['admin'];

type SignedPrekey = RequestBody<'key.prekeys'>['prekeys'][number];

function caller(ctx: HandlerContext): { name: string; serialHex: string; role: string } {
  if (ctx.identity.role === 'insecure') {
    // server/kdc/connection.ts resolved the claimed name to its current certificate, if any.
    if (ctx.identity.serialHex === '')
      throw new AuthError('not_authenticated', 'no enrolled client has the claimed name');
    return { name: ctx.identity.name, serialHex: ctx.identity.serialHex, role: 'client' };
  }
  return { name: ctx.identity.name, serialHex: ctx.identity.serialHex, role: ctx.identity.role };
}

/**
 * key.create / key.reserve's request, the optional fields set only when present. Assigned, not spread
 * from `{ [key]: value }` literals: those computed-key objects cost more than the rest of the adapter
 * on the key path (measured with a V8 profile of bench/keys.ts).
 */
function newKeyRequest(b: RequestBody<'key.create'> | RequestBody<'key.reserve'>): NewKeyRequest {
  const req: NewKeyRequest = { peer: b.peer };
  if (b.ttl !== undefined) req.ttl = b.ttl;
  if (b.replaces !== undefined) req.replaces = b.replaces;
  if (b.ack !== undefined) req.ack = b.ack;
  return req;
}

function signedPrekey(p: SignedPrekey): { prekeyId: string; publicKey: Buffer; signature: Buffer } {
  return { prekeyId: p.id, publicKey: p.publicKey, signature: p.signature };
}

/**
 * Room for a listing inside ONE record (the reply must fit MAX_RECORD_PLAINTEXT, or sealing it fails and
 * the client gets `internal`: found by test/hardening/fuzz-app.test.ts once a client held ~250 keys).
 * The envelope `{t, id, b: {keys, truncated}}` takes well under 256 bytes.
 */
const LISTING_BUDGET = MAX_RECORD_PLAINTEXT - 256;

/**
 * The newest keys (listings are oldest first) up to MAX_KEYS_LISTED and up to what fits in one record,
 * flagged `truncated` when some were left out. A key's JSON length bounds its msgpack size (msgpack
 * never spends more bytes than JSON on these strings, numbers and booleans).
 */
function listing(keys: KeySummary[]): { keys: KeySummary[]; truncated?: true } {
  const newest: KeySummary[] = [];
  let size = 0;
  for (let i = keys.length - 1; i >= 0 && newest.length < MAX_KEYS_LISTED; i--) {
    size += JSON.stringify(keys[i]).length;
    if (size > LISTING_BUDGET) break;
    newest.push(keys[i]!);
  }
  newest.reverse();
  return newest.length === keys.length ? { keys: newest } : { keys: newest, truncated: true };
}

export const KEY_HANDLERS: Pick<KdcHandlers, keyof typeof KEY_REQUESTS> = {
  'key.peer': { roles: CLIENT, handle: async (ctx, b) => ctx.kdc.keys.peer(caller(ctx), b.name) },

  'key.prekeys': {
    roles: CLIENT,
    handle: async (ctx, b) =>
      ctx.kdc.keys.putPrekeys(caller(ctx), b.prekeys.map(signedPrekey), {
        listHeld: b.listHeld === true,
        ...withOptional('lastResort', b.lastResort === undefined ? undefined : signedPrekey(b.lastResort)),
      }),
  },

  'key.reserve': {
    roles: CLIENT,
    handle: async (ctx, b) => {
      // reserve / deposit: through the store's group commit (bench/keys.ts, e2e flow).
      const r = await ctx.kdc.keys.reserve(caller(ctx), newKeyRequest(b));
      return { ...r, prekey: { ...r.prekey } };
    },
  },

  'key.deposit': {
    roles: CLIENT,
    handle: async (ctx, b) => ctx.kdc.keys.deposit(caller(ctx), b),
  },

  'key.create': {
    roles: CLIENT,
    handle: async (ctx, b) => ctx.kdc.keys.create(caller(ctx), newKeyRequest(b)),
  },

  'key.verify': {
    roles: PARTIES,
    handle: async (ctx, b) => {
      const req: VerifyRequest = { serial: b.serial, digest: b.digest };
      if (b.signature !== undefined) req.signature = b.signature;
      if (b.ack !== undefined) req.ack = b.ack;
      const result = await ctx.kdc.keys.verify(caller(ctx), req);
      return { ...result };
    },
  },

  'key.create.batch': {
    roles: CLIENT,
    handle: async (ctx, b) => {
      const req: { peer: string; count: number; ttl?: number; ack?: readonly number[] } = {
        peer: b.peer,
        count: b.count,
      };
      if (b.ttl !== undefined) req.ttl = b.ttl;
      if (b.ack !== undefined) req.ack = b.ack;
      return ctx.kdc.keys.createBatch(caller(ctx), req);
    },
  },

  'key.verify.batch': {
    roles: PARTIES,
    handle: async (ctx, b) => {
      const items = b.items.map((i) => {
        const item: Omit<VerifyRequest, 'ack'> = { serial: i.serial, digest: i.digest };
        if (i.signature !== undefined) item.signature = i.signature;
        return item;
      });
      const results = await ctx.kdc.keys.verifyBatch(
        caller(ctx),
        b.ack === undefined ? { items } : { items, ack: b.ack },
      );
      return { results: results.map((r) => ({ ...r })) };
    },
  },

  'key.get': {
    roles: PARTIES,
    handle: async (ctx, b) => ({ ...(await ctx.kdc.keys.get(caller(ctx), b.serial)) }),
  },

  'key.list': { roles: CLIENT, handle: async (ctx) => listing(await ctx.kdc.keys.list(caller(ctx))) },

  'key.revoke': {
    roles: PARTIES,
    handle: async (ctx, b) => ctx.kdc.keys.revoke(caller(ctx), { serial: b.serial, reason: b.reason }),
  },

  'key.sync': {
    roles: CLIENT,
    handle: async (ctx, b) =>
      ctx.kdc.keys.sync(
        caller(ctx),
        (type, body) => ctx.session.push(type, body),
        b.messages === undefined ? {} : { messages: b.messages },
      ),
  },

  // group commit (bench/keys.ts)
  'key.ack': { roles: CLIENT, handle: async (ctx, b) => ctx.kdc.keys.ack(caller(ctx), b.ids) },

  'msg.send': {
    roles: CLIENT,
    handle: async (ctx, b) => ctx.kdc.keys.sendMessage(caller(ctx), b),
  },

  'admin.keys': {
    roles: ADMIN,
    handle: async (ctx, b) =>
      listing(await ctx.kdc.keys.adminList(caller(ctx), { revoked: b.revoked === true })),
  },

  'admin.key.revoke': {
    roles: ADMIN,
    handle: async (ctx, b) =>
      ctx.kdc.keys.revoke(caller(ctx), { serial: b.serial, reason: b.reason ?? 'unspecified' }),
  },
};

function withOptional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
