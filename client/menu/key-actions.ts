// The "Symmetric keys" sub-menu: generate and exchange a key with a peer, verify a key,
// revoke a key, check whether a key is revoked, list keys, send a message. Each action is the same
// KeyClient call the matching `kds client ...` command makes (client/keys/key-client.ts).
import { KdsError, toKdsError } from '../../shared/errors.js';
import { terminalSafe as safe } from '../../shared/text/terminal-safe.js';
import type { KeyListing } from '../keys/key-client.js';
import { isTransient } from '../keys/listen.js';
import { listLocalKeys } from '../keys/local-keys.js';
import {
  KEY_REASON_MENU,
  parseChoice,
  parseKeyReason,
  parseKeySerial,
  parseListPick,
  parseMessage,
  parsePeerName,
  parseYesNo,
} from './answers.js';
import { ask, iso, type MenuContext, type MenuItem } from './context.js';

/** KDC answers that mean "ask for another peer" rather than "the action failed". */
const PEER_RETRY_CODES = new Set(['peer_unavailable', 'peer_revoked', 'bad_request', 'bad_name']);

/** Ask for a peer until the KDC knows it as an enrolled, unrevoked client (docs/keys.md flow 1 step 1). */
async function askPeer(ctx: MenuContext): Promise<string> {
  const { session } = await ctx.conn.get();
  for (;;) {
    const peer = await ask(ctx, 'peer name: ', (t) => parsePeerName(t, ctx.name));
    try {
      await session.request('key.peer', { name: peer });
      return peer;
    } catch (err) {
      if (err instanceof KdsError && PEER_RETRY_CODES.has(err.code)) {
        ctx.io.print(`  ${safe(err.message)}; try another name (0 goes back)`);
        continue;
      }
      throw err;
    }
  }
}

function keyLine(k: KeyListing, me: string): string {
  // Every field is the KDC's answer: terminal-safe before it is shown.
  const other = k.owner === me ? `-> ${safe(k.peer)}` : `<- ${safe(k.owner)}`;
  const why = k.reason === undefined ? '' : ` (${safe(k.reason)})`;
  return `${safe(k.serial)}  ${other.padEnd(12)} ${safe(k.mode).padEnd(4)} ${`${safe(k.state)}${why}`.padEnd(28)} local ${safe(k.local)}`;
}

/**
 * Show the keys numbered (those `offer` keeps) and let the person pick one by number or serial;
 * undefined when there are none to offer (`none` says why).
 */
async function pickKey(
  ctx: MenuContext,
  purpose: string,
  offer: { keep?: (k: KeyListing) => boolean; none?: string } = {},
): Promise<{ serial: string; key: KeyListing | undefined } | undefined> {
  const { client } = await ctx.conn.get();
  const all = await client.listKeys();
  if (all.length === 0) {
    ctx.io.print('  no keys yet: generate one first (1 in this menu)');
    return undefined;
  }
  const keys = offer.keep === undefined ? all : all.filter(offer.keep);
  if (keys.length === 0) {
    ctx.io.print(`  ${offer.none ?? 'no keys'}`);
    return undefined;
  }
  ctx.io.print(
    `  keys (${purpose}):`,
    ...keys.map((k, i) => `  ${String(i + 1).padStart(3)}) ${keyLine(k, ctx.name)}`),
  );
  const pick = await ask(ctx, `key [1-${keys.length}] or serial: `, (t) =>
    parseListPick(t, keys.length, parseKeySerial),
  );
  if (typeof pick === 'number') return { serial: keys[pick - 1]!.serial, key: keys[pick - 1] };
  return { serial: pick, key: all.find((k) => k.serial === pick) };
}

const generateKey: MenuItem = {
  label: 'Generate and exchange a key with a peer',
  async run(ctx) {
    const peer = await askPeer(ctx);
    ctx.io.print(
      '  how is the key made?',
      '  1) end-to-end: authenticated X25519 with the peer, the KDC never sees the key',
      '  2) KDC-generated: the KDC makes it and delivers it to both',
    );
    const mode = (await ask(ctx, 'mode [1-2]: ', (t) => parseChoice(t, 2, 1))) === 1 ? 'e2e' : 'kdc';
    const { client } = await ctx.conn.get();
    const out = await client.sendKey({ to: peer, mode });
    ctx.io.print(
      `  ${ctx.style.ok('sent')} key ${safe(out.serial)} to ${peer} (${mode})`,
      `  fingerprint: ${out.fingerprint} (compare it with ${peer}'s)`,
      `  expires:     ${iso(out.expiresAt)}`,
      `  state:       ${out.state}${out.state === 'pending' ? ` (usable once ${peer} has verified it)` : ''}`,
    );
  },
};

const verifyKey: MenuItem = {
  label: 'Verify a key',
  async run(ctx) {
    const picked = await pickKey(ctx, 'which one to verify with the KDC?');
    if (picked === undefined) return;
    const { serial } = picked;
    const { client } = await ctx.conn.get();
    const out = await client.verifyKey(serial);
    const verdict = out.verdict === 'valid' ? ctx.style.ok(out.verdict) : ctx.style.bad(safe(out.verdict));
    ctx.io.print(
      `  ${verdict}: key ${serial}${out.reason === undefined ? '' : ` (${safe(out.reason)})`}`,
      `  local state: ${safe(out.state)}; receiver verified: ${out.peerVerified ? 'yes' : 'no'}`,
    );
  },
};

const revokeKey: MenuItem = {
  label: 'Revoke a key',
  async run(ctx) {
    // Only keys that can still be revoked are offered; a revocation is final, so it is confirmed.
    const picked = await pickKey(ctx, 'which one to revoke?', {
      keep: (k) => k.state === 'active' && k.expiresAt > Date.now(),
      none: 'no key to revoke: every key is already revoked, superseded or expired',
    });
    if (picked === undefined) return;
    const { serial, key } = picked;
    ctx.io.print('  reason:', ...KEY_REASON_MENU.map((r) => `  ${r}`));
    const reason = await ask(ctx, `reason [1-${KEY_REASON_MENU.length}]: `, parseKeyReason);
    const other =
      key === undefined ? '' : ` (shared with ${safe(key.owner === ctx.name ? key.peer : key.owner)})`;
    const sure = await ask(
      ctx,
      `revoke key ${serial}${other} for ${reason}? both parties delete it, this cannot be undone [yes/no]: `,
      parseYesNo,
    );
    if (!sure) {
      ctx.io.print('  (not revoked)');
      return;
    }
    const { client } = await ctx.conn.get();
    const out = await client.revokeKey(serial, reason);
    ctx.io.print(
      out.status === 'already_revoked'
        ? `  already revoked: ${serial} (${safe(out.reason)})`
        : `  ${ctx.style.ok('revoked')} ${serial} (${safe(out.reason)}); both parties are notified and delete it`,
    );
  },
};

const checkRevoked: MenuItem = {
  label: 'Check whether a key is revoked',
  async run(ctx) {
    const picked = await pickKey(ctx, 'which one to check?');
    if (picked === undefined) return;
    const { serial } = picked;
    const { session } = await ctx.conn.get();
    const k = await session.request('key.get', { serial });
    if (k.state === 'revoked' || k.state === 'superseded') {
      const at = k.revokedAt === undefined ? 'unknown time' : iso(k.revokedAt);
      ctx.io.print(
        `  ${ctx.style.bad('revoked')}: key ${serial} is ${safe(k.state)} (${safe(k.reason ?? 'unspecified')}, ${at})`,
      );
    } else if (k.state === 'expired') {
      ctx.io.print(`  not revoked, but ${ctx.style.bad('expired')} at ${iso(k.expiresAt)}`);
    } else {
      ctx.io.print(
        `  ${ctx.style.ok('not revoked')}: key ${serial} is ${safe(k.state)} until ${iso(k.expiresAt)}`,
      );
    }
  },
};

const listKeys: MenuItem = {
  label: 'List keys',
  async run(ctx) {
    let keys: KeyListing[];
    try {
      const { client } = await ctx.conn.get();
      keys = await client.listKeys();
    } catch (err) {
      // The keys are local: without the KDC, this client's own records, said to be possibly stale.
      const e = toKdsError(err);
      if (!isTransient(e)) throw err;
      keys = listLocalKeys({ name: ctx.name, home: ctx.home });
      ctx.io.print(
        `  the KDC is not reachable (${e.code}): this client's own records, which may be stale (revocations and deliveries since its last session are not in them)`,
      );
    }
    if (keys.length === 0) {
      ctx.io.print('  no keys');
      return;
    }
    ctx.io.print(...keys.map((k) => `  ${keyLine(k, ctx.name)}  expires ${iso(k.expiresAt)}`));
  },
};

const sendMessage: MenuItem = {
  label: 'Send a message',
  async run(ctx) {
    const { client } = await ctx.conn.get();
    const peers = [
      ...new Set(
        (await client.listKeys())
          .filter((k) => k.local === 'active')
          .map((k) => (k.owner === ctx.name ? k.peer : k.owner)),
      ),
    ];
    if (peers.length === 0) {
      ctx.io.print('  no active key shared with anyone yet: generate one first (1 in this menu)');
      return;
    }
    ctx.io.print(
      '  peers you share an active key with:',
      ...peers.map((p, i) => `  ${String(i + 1).padStart(3)}) ${safe(p)}`),
    );
    const pick = await ask(ctx, `peer [1-${peers.length}] or name: `, (t) =>
      parseListPick(t, peers.length, (name) => {
        const p = parsePeerName(name, ctx.name);
        if (p.ok && !peers.includes(p.value))
          return { ok: false, message: `no active key shared with ${p.value}` };
        return p;
      }),
    );
    const to = typeof pick === 'number' ? peers[pick - 1]! : pick;
    const text = await ask(ctx, 'message: ', parseMessage);
    const out = await client.sendMessage({ to, text });
    ctx.io.print(
      `  ${ctx.style.ok('sent')} to ${safe(to)} with key ${safe(out.serial)} (${out.delivered > 0 ? 'delivered' : 'queued until they connect'})`,
    );
  },
};

export const KEY_ITEMS: readonly MenuItem[] = [
  generateKey,
  verifyKey,
  revokeKey,
  checkRevoked,
  listKeys,
  sendMessage,
];
