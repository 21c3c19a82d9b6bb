// The key-distribution request types of the KDC (docs/keys.md), registered into the handler registry
// (server/kdc/dispatch.ts) when this module is imported (one line in server/kdc-handlers/index.ts).
// Bodies arrive validated against shared/protocol/messages-keys.ts; each handler only adapts them to
// server/keys/service.ts, where the rules live.
import { AuthError } from '../../shared/errors.js';
import { registerHandler, type HandlerContext, type Role } from '../kdc/dispatch.js';
import { keyServiceFor } from './context.js';
import type { KeySummary } from './service.js';
import { MAX_KEYS_LISTED } from '../../shared/protocol/messages-keys.js';
import { MAX_RECORD_PLAINTEXT } from '../../shared/protocol/limits.js';

// 'insecure' sessions exist only on a KDC started with --insecure-dh (the MITM lab's control mode,
// docs/attacks.md): the naive design lets a session that merely CLAIMS a name act as that client.
const CLIENT: readonly Role[] = ['client', 'insecure'];
const PARTIES: readonly Role[] = ['client', 'admin', 'insecure'];
const ADMIN: readonly Role[] = ['admin'];

type Body = Record<string, unknown>;

function bytes(value: unknown): Buffer {
  return value instanceof Uint8Array
    ? Buffer.from(value.buffer, value.byteOffset, value.byteLength)
    : Buffer.alloc(0);
}

function optionalNumber(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined;
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function caller(ctx: HandlerContext): { name: string; serialHex: string; role: string } {
  if (ctx.identity.role === 'insecure') {
    // server/kdc/connection.ts resolved the claimed name to its current certificate, if any.
    if (ctx.identity.serialHex === '')
      throw new AuthError('not_authenticated', 'no enrolled client has the claimed name');
    return { name: ctx.identity.name, serialHex: ctx.identity.serialHex, role: 'client' };
  }
  return { name: ctx.identity.name, serialHex: ctx.identity.serialHex, role: ctx.identity.role };
}

function on(
  type: string,
  roles: readonly Role[],
  handle: (ctx: HandlerContext, body: Body) => Promise<Body> | Body,
): void {
  registerHandler(type, { roles, handle: async (ctx, body) => handle(ctx, body) });
}

on('key.peer', CLIENT, async (ctx, b) => (await keyServiceFor(ctx.kdc)).peer(caller(ctx), String(b.name)));

function signedPrekey(p: Body): { prekeyId: string; publicKey: Buffer; signature: Buffer } {
  return { prekeyId: String(p.id), publicKey: bytes(p.publicKey), signature: bytes(p.signature) };
}

on('key.prekeys', CLIENT, async (ctx, b) => {
  const list = Array.isArray(b.prekeys) ? (b.prekeys as Body[]) : [];
  const lastResort = b.lastResort === undefined ? undefined : signedPrekey(b.lastResort as Body);
  return (await keyServiceFor(ctx.kdc)).putPrekeys(caller(ctx), list.map(signedPrekey), {
    listHeld: b.listHeld === true,
    ...withOptional('lastResort', lastResort),
  });
});

on('key.reserve', CLIENT, async (ctx, b) => {
  // reserveGrouped / depositGrouped: through the store's group commit (bench/keys.ts, e2e flow).
  const r = await (
    await keyServiceFor(ctx.kdc)
  ).reserveGrouped(caller(ctx), {
    peer: String(b.peer),
    ...withOptional('ttl', optionalNumber(b.ttl)),
    ...withOptional('replaces', optionalString(b.replaces)),
    ...withOptional('ack', b.ack === undefined ? undefined : deliveryIds(b.ack)),
  });
  return { ...r, prekey: { ...r.prekey } };
});

on('key.deposit', CLIENT, async (ctx, b) =>
  (await keyServiceFor(ctx.kdc)).depositGrouped(caller(ctx), {
    serial: String(b.serial),
    ephemeral: bytes(b.ephemeral),
    signature: bytes(b.signature),
    ciphertext: bytes(b.ciphertext),
  }),
);

on('key.create', CLIENT, async (ctx, b) =>
  (await keyServiceFor(ctx.kdc)).create(caller(ctx), {
    peer: String(b.peer),
    ...withOptional('ttl', optionalNumber(b.ttl)),
    ...withOptional('replaces', optionalString(b.replaces)),
    ...withOptional('ack', b.ack === undefined ? undefined : deliveryIds(b.ack)),
  }),
);

on('key.verify', PARTIES, async (ctx, b) => {
  const signature = b.signature === undefined ? undefined : bytes(b.signature);
  const result = await (
    await keyServiceFor(ctx.kdc)
  ).verify(caller(ctx), {
    serial: String(b.serial),
    digest: bytes(b.digest),
    ...withOptional('signature', signature),
    ...withOptional('ack', b.ack === undefined ? undefined : deliveryIds(b.ack)),
  });
  return { ...result };
});

on('key.get', PARTIES, async (ctx, b) => ({
  ...(await (await keyServiceFor(ctx.kdc)).get(caller(ctx), String(b.serial))),
}));

on('key.list', CLIENT, async (ctx) => listing(await (await keyServiceFor(ctx.kdc)).list(caller(ctx))));

on('key.revoke', PARTIES, async (ctx, b) =>
  (await keyServiceFor(ctx.kdc)).revoke(caller(ctx), { serial: String(b.serial), reason: String(b.reason) }),
);

on('key.sync', CLIENT, async (ctx) =>
  (await keyServiceFor(ctx.kdc)).sync(caller(ctx), (type, body) => ctx.session.push(type, body)),
);

on('key.ack', CLIENT, async (ctx, b) =>
  // group commit (bench/keys.ts)
  (await keyServiceFor(ctx.kdc)).ackGrouped(caller(ctx), deliveryIds(b.ids)),
);

function deliveryIds(value: unknown): number[] {
  return Array.isArray(value) ? value.filter((x): x is number => Number.isSafeInteger(x)) : [];
}

on('msg.send', CLIENT, async (ctx, b) =>
  (await keyServiceFor(ctx.kdc)).sendMessage(caller(ctx), {
    to: String(b.to),
    serial: String(b.serial),
    seq: Number(b.seq),
    nonce: bytes(b.nonce),
    ciphertext: bytes(b.ciphertext),
  }),
);

on('admin.keys', ADMIN, async (ctx, b) =>
  listing(await (await keyServiceFor(ctx.kdc)).adminList({ revoked: b.revoked === true })),
);

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
function listing(keys: KeySummary[]): Body {
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

on('admin.key.revoke', ADMIN, async (ctx, b) =>
  (await keyServiceFor(ctx.kdc)).revoke(caller(ctx), {
    serial: String(b.serial),
    reason: String(b.reason ?? 'unspecified'),
  }),
);

function withOptional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
