// The client's encrypted key store (client/keys/key-store.ts): encrypted at rest, 0600/0700, bound to
// the identity key, renamed or tampered files ignored, retirement removes key material.
import t from 'tap';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs, {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import {
  ClientKeyStore,
  MAX_TOMBSTONES,
  STORE_KEY_FILE,
  TOMBSTONE_GRACE_MS,
  storeKeyOf,
  wrapStoreKey,
  type StoredKey,
} from '../../../client/keys/key-store.js';
import { newKeySerial, newPrekeyId } from '../../../shared/keys/serial.js';
import {
  lockRenewal,
  readClientHome,
  recoverRenewal,
  stageRenewalCertificate,
  stageRenewalKey,
  writeClientHome,
} from '../../../client/home.js';
import { tempDir } from '../../helpers/tmp.js';

// Fast ed25519 identity keys are enough to exercise the store's key derivation (it only hashes the DER).
const idA = generateKeyPairSync('ed25519').privateKey;
const idB = generateKeyPairSync('ed25519').privateKey;

function sample(serial = newKeySerial()): StoredKey {
  return {
    serial,
    mode: 'e2e',
    role: 'receiver',
    owner: 'alice',
    peer: 'bob',
    state: 'active',
    createdAt: 1,
    expiresAt: 2,
    digest: 'ab'.repeat(32),
    fingerprint: '0123456789abcdef',
    key: Buffer.alloc(32, 0x5a).toString('base64'),
    updatedAt: 3,
  };
}

t.test('records round-trip, encrypted at rest, private modes', async (t) => {
  const home = tempDir(t);
  const store = ClientKeyStore.open(home, 'bob', idA);
  const rec = sample();
  store.putKey(rec);
  t.same(store.getKey(rec.serial), rec);
  t.equal(statSync(join(home, 'keys')).mode & 0o777, 0o700);
  t.equal(statSync(join(home, 'keys', 'prekeys')).mode & 0o777, 0o700);
  const file = join(home, 'keys', `${rec.serial}.key`);
  t.equal(statSync(file).mode & 0o777, 0o600);
  const raw = readFileSync(file);
  t.notOk(raw.includes(Buffer.from(rec.key!, 'base64')), 'no raw key bytes on disk');
  t.notOk(raw.includes(Buffer.from(rec.key!)), 'no base64 key on disk');
  t.notOk(raw.includes(Buffer.from('alice')), 'metadata encrypted too');
  t.same(
    store.listKeys().map((k) => k.serial),
    [rec.serial],
  );
  t.equal(store.getKey('not-a-serial'), undefined);
});

t.test('another identity, a renamed or a tampered file does not open', async (t) => {
  const home = tempDir(t);
  const store = ClientKeyStore.open(home, 'bob', idA);
  const a = sample();
  const b = sample();
  store.putKey(a);
  store.putKey(b);
  t.equal(ClientKeyStore.open(home, 'bob', idB).getKey(a.serial), undefined, 'other identity key');
  t.equal(ClientKeyStore.open(home, 'bobby', idA).getKey(a.serial), undefined, 'other name');
  const fa = join(home, 'keys', `${a.serial}.key`);
  const fb = join(home, 'keys', `${b.serial}.key`);
  renameSync(fa, fb); // a's file now claims to be b
  t.equal(store.getKey(b.serial), undefined, 'AAD binds the serial');
  store.putKey(b);
  const raw = readFileSync(fb);
  raw[raw.length - 3]! ^= 1;
  writeFileSync(fb, raw);
  t.equal(store.getKey(b.serial), undefined, 'tampered');
  t.same(store.listKeys(), [], 'unreadable files are skipped');
});

t.test('retire removes the key material but keeps a tombstone', async (t) => {
  const home = tempDir(t);
  const store = ClientKeyStore.open(home, 'bob', idA);
  const rec = sample();
  store.putKey(rec);
  const after = store.retire(rec.serial, 'revoked', { reason: 'keyCompromise', revokedAt: 9 });
  t.equal(after?.state, 'revoked');
  t.equal(after?.key, undefined);
  t.same(store.getKey(rec.serial)?.reason, 'keyCompromise');
  t.equal(store.getKey(rec.serial)?.key, undefined, 'material gone from disk');
  t.equal(store.retire(newKeySerial(), 'revoked'), undefined, 'unknown serial');
  t.same(
    readdirSync(join(home, 'keys')).filter((f) => f.endsWith('.tmp')),
    [],
    'no temp files',
  );
});

t.test('prekeys are stored, listed and deleted', async (t) => {
  const home = tempDir(t);
  const store = ClientKeyStore.open(home, 'bob', idA);
  const id = newPrekeyId();
  store.putPrekey({ id, certSerial: 'aa', publicKey: 'cHVi', privateKey: 'cHJpdg==', createdAt: 1 });
  t.same(store.prekeyIds(), [id]);
  t.equal(store.getPrekey(id)?.privateKey, 'cHJpdg==');
  t.equal(statSync(join(home, 'keys', 'prekeys', `${id}.prekey`)).mode & 0o777, 0o600);
  store.deletePrekey(id);
  store.deletePrekey(id); // idempotent
  t.equal(store.getPrekey(id), undefined);
  t.same(store.prekeyIds(), []);
});

t.test('message counters: own files, untouched by record writes, gone on retire, fail closed', async (t) => {
  const home = tempDir(t);
  const send = ClientKeyStore.open(home, 'bob', idA); // `kds client send`
  const listen = ClientKeyStore.open(home, 'bob', idA); // `kds client listen`, another process
  const rec = sample();
  send.putKey(rec);
  t.equal(send.sentSeq(rec.serial), 0, 'nothing sent yet');
  t.equal(send.replayState(rec.serial), undefined);
  const stale = listen.getKey(rec.serial)!;
  send.putSentSeq(rec.serial, 5);
  listen.putReplayState(rec.serial, { highest: 3, bitmap: '0000000000000005' });
  listen.putKey({ ...stale, updatedAt: 9 }); // a record write from a read made before both
  t.equal(listen.sentSeq(rec.serial), 5, "the sender's number survives the other process's write");
  t.same(send.replayState(rec.serial), { highest: 3, bitmap: '0000000000000005' });
  for (const ext of ['sent', 'recv']) {
    const file = join(home, 'keys', `${rec.serial}.${ext}`);
    t.equal(statSync(file).mode & 0o777, 0o600, `${ext} file 0600`);
    t.notOk(readFileSync(file).includes(Buffer.from('bitmap')), `${ext} file encrypted`);
  }
  t.same(
    send.listKeys().map((k) => k.serial),
    [rec.serial],
    'counter files are not listed as keys',
  );
  // A damaged window is refused, not forgotten (forgetting it would accept replays again).
  const recv = join(home, 'keys', `${rec.serial}.recv`);
  const good = readFileSync(recv);
  writeFileSync(recv, Buffer.concat([good.subarray(0, 20), Buffer.from([good[20]! ^ 1]), good.subarray(21)]));
  t.throws(() => listen.replayState(rec.serial), { code: 'malformed' });
  t.throws(
    () => ClientKeyStore.open(home, 'bob', idB).sentSeq(rec.serial),
    { code: 'malformed' },
    'not ours',
  );
  writeFileSync(recv, good);
  send.retire(rec.serial, 'revoked', { reason: 'keyCompromise' });
  t.equal(send.sentSeq(rec.serial), 0, 'retired: the sender counter is gone');
  t.equal(send.replayState(rec.serial), undefined, 'retired: the window is gone');
  t.same(
    readdirSync(join(home, 'keys')).filter((f) => f.startsWith(rec.serial)),
    [],
    'no counter, no record among the live keys',
  );
  t.same(
    readdirSync(join(home, 'keys', 'retired')).filter((f) => f.endsWith('.key')),
    [`${rec.serial}.key`],
    'only the tombstone is left',
  );
});

t.test('a renewal keeps the store: keys/store-key wraps the store key for the new identity', async (t) => {
  const home = tempDir(t);
  const oldIdentity = generateKeyPairSync('ed25519').privateKey;
  const newIdentity = generateKeyPairSync('ed25519').privateKey;
  const before = ClientKeyStore.open(home, 'alice', oldIdentity);
  const rec = sample();
  before.putKey(rec);
  t.equal(
    ClientKeyStore.open(home, 'alice', newIdentity).getKey(rec.serial),
    undefined,
    'without the wrap: unreadable',
  );
  const wrapped = wrapStoreKey(storeKeyOf(home, 'alice', oldIdentity), newIdentity, 'alice');
  writeFileSync(join(home, 'keys', STORE_KEY_FILE), wrapped, { mode: 0o600 });
  const after = ClientKeyStore.open(home, 'alice', newIdentity);
  t.same(after.getKey(rec.serial), rec, 'the new identity reads what the old one wrote');
  const rec2 = sample();
  after.putKey(rec2);
  t.same(ClientKeyStore.open(home, 'alice', newIdentity).getKey(rec2.serial), rec2);
  // The wrap is bound to the identity key and the name; with another key it is ignored (derived key).
  t.equal(
    ClientKeyStore.open(home, 'alice', generateKeyPairSync('ed25519').privateKey).getKey(rec.serial),
    undefined,
    'another key',
  );
  t.equal(ClientKeyStore.open(home, 'bob', newIdentity).getKey(rec.serial), undefined, 'another name');
  const flipped = Buffer.from(wrapped);
  flipped[flipped.length - 1]! ^= 1;
  writeFileSync(join(home, 'keys', STORE_KEY_FILE), flipped);
  t.equal(ClientKeyStore.open(home, 'alice', newIdentity).getKey(rec.serial), undefined, 'a tampered wrap');
});

t.test(
  'a renewal by another process between reading key.pem and opening the store loses nothing',
  async (t) => {
    // A command reads its home (key.pem K1), opens its session, then opens the store. Another process
    // renews in between. Before, the wrap (now for K2) did not open with K1 and the store opened under
    // K1's derived key: empty, and what was received into it never opened again.
    const home = tempDir(t);
    const k0 = generateKeyPairSync('ed25519').privateKey;
    writeClientHome(home, { privateKey: k0, certPem: 'cert 0', caPem: 'ca' }, undefined);
    const rec = sample();
    ClientKeyStore.open(home, 'alice', k0).putKey(rec);
    function renew(next: KeyObject, certPem: string): void {
      const lock = lockRenewal(home);
      try {
        const current = readClientHome(home, undefined).privateKey;
        stageRenewalKey(
          home,
          next,
          wrapStoreKey(storeKeyOf(home, 'alice', current), next, 'alice'),
          undefined,
        );
        stageRenewalCertificate(home, certPem);
        t.equal(recoverRenewal(home), 'installed');
      } finally {
        lock();
      }
    }
    const k1 = generateKeyPairSync('ed25519').privateKey;
    renew(k1, 'cert 1'); // the home has a wrap from now on: K0's derived key is no longer the way in
    const readBefore = readClientHome(home, undefined).privateKey; // K1, read by the slow command
    const k2 = generateKeyPairSync('ed25519').privateKey;
    renew(k2, 'cert 2'); // the other process
    const late = ClientKeyStore.open(home, 'alice', readBefore);
    t.same(late.getKey(rec.serial), rec, 'the store opened through K1 is the one K0 wrote');
    const rec2 = sample();
    late.putKey(rec2);
    t.same(ClientKeyStore.open(home, 'alice', k2).getKey(rec2.serial), rec2, 'and what it writes, K2 reads');

    // Committed but not yet installed (the renewer stopped between staging its certificate and the
    // renames): the opener finishes the renewal first, so key.pem and store-key are read as a pair.
    const k3 = generateKeyPairSync('ed25519').privateKey;
    const lock = lockRenewal(home);
    stageRenewalKey(home, k3, wrapStoreKey(storeKeyOf(home, 'alice', k2), k3, 'alice'), undefined);
    stageRenewalCertificate(home, 'cert 3');
    lock();
    t.same(ClientKeyStore.open(home, 'alice', k2).getKey(rec.serial), rec, 'the old key, mid-renewal');
    t.same(ClientKeyStore.open(home, 'alice', k3).getKey(rec.serial), rec, 'the new key');

    // A re-enrollment (a new key, the old wrap left behind) still reads as a fresh store.
    const k4 = generateKeyPairSync('ed25519').privateKey;
    writeClientHome(home, { privateKey: k4, certPem: 'cert 4', caPem: 'ca' }, undefined);
    t.equal(ClientKeyStore.open(home, 'alice', k4).getKey(rec.serial), undefined, 'a new identity');
  },
);

// Tombstones (key-store.ts header, docs/keys.md "Client key store"): a peer decides how many keys we
// retire, so what runs on every session open and every send reads only the live keys, and retired/ is
// pruned once a tombstone no longer stands for an unexpired key.
const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

function retiredFiles(home: string): string[] {
  return readdirSync(join(home, 'keys', 'retired'))
    .filter((f) => f.endsWith('.key'))
    .map((f) => f.slice(0, 32))
    .sort();
}

t.test(
  'a retired key leaves the live keys: its tombstone is in retired/, still found by serial',
  async (t) => {
    const home = tempDir(t);
    let now = 1_000 * DAY;
    const store = ClientKeyStore.open(home, 'bob', idA, { now: () => now });
    const live = { ...sample(), expiresAt: now + DAY };
    const gone = { ...sample(), expiresAt: now + 2 * DAY };
    store.putKey(live);
    store.putKey(gone);
    store.retire(gone.serial, 'revoked', { reason: 'keyCompromise' });
    t.equal(statSync(join(home, 'keys', 'retired')).mode & 0o777, 0o700, 'retired/ is 0700');
    const tomb = join(home, 'keys', 'retired', `${gone.serial}.key`);
    t.equal(statSync(tomb).mode & 0o777, 0o600, 'a tombstone is 0600');
    t.equal(statSync(tomb).mtimeMs, gone.expiresAt, "its mtime is its key's expiry");
    t.same(retiredFiles(home), [gone.serial]);
    t.equal(
      store.getKey(gone.serial)?.state,
      'revoked',
      'getKey finds the tombstone (a redelivery is a duplicate)',
    );
    t.same(
      store.listLiveKeys().map((k) => k.serial),
      [live.serial],
    );
    t.same(
      store
        .listKeys()
        .map((k) => k.serial)
        .sort(),
      [live.serial, gone.serial].sort(),
      'listKeys shows both',
    );

    // listLiveKeys never reads retired/: a tombstone that cannot be read at all (a directory in its
    // place) breaks the full listing, not the live one.
    unlinkSync(tomb);
    mkdirSync(tomb);
    t.throws(() => store.listKeys(), { code: 'io_error' }, 'the full listing reads every tombstone');
    now += 2 * HOUR; // past the pruning interval: the pass runs and leaves what it cannot read alone
    t.same(
      store.listLiveKeys().map((k) => k.serial),
      [live.serial],
      'the live listing does not',
    );
  },
);

t.test(
  'a tombstone among the live keys (an older home, a crash mid-retire) is moved to retired/',
  async (t) => {
    const home = tempDir(t);
    const store = ClientKeyStore.open(home, 'bob', idA);
    const old = { ...sample(), state: 'expired' as const, expiresAt: 50 };
    delete old.key;
    const keep = sample();
    store.putKey(old); // how retire() wrote tombstones before retired/ existed
    store.putKey(keep);
    t.same(
      store.listLiveKeys().map((k) => k.serial),
      [keep.serial],
    );
    t.same(retiredFiles(home), [old.serial]);
    t.notOk(readdirSync(join(home, 'keys')).includes(`${old.serial}.key`), 'gone from the live keys');
    t.equal(store.getKey(old.serial)?.state, 'expired');
  },
);

t.test("pruning: a tombstone outlives its key's expiry by the grace period, never less", async (t) => {
  const home = tempDir(t);
  let now = 1_000 * DAY;
  const store = ClientKeyStore.open(home, 'bob', idA, { now: () => now });
  const shortLived = { ...sample(), expiresAt: now + HOUR };
  const longLived = { ...sample(), expiresAt: now + 90 * DAY };
  for (const k of [shortLived, longLived]) {
    store.putKey(k);
    store.retire(k.serial, 'revoked');
  }
  now = shortLived.expiresAt + TOMBSTONE_GRACE_MS - 1;
  t.equal(store.pruneRetired(true), 0, 'one ms before the end of the grace period: kept');
  now += 1;
  t.equal(store.pruneRetired(true), 1);
  t.same(retiredFiles(home), [longLived.serial], "the short-lived key's tombstone is gone");
  t.equal(store.getKey(shortLived.serial), undefined);

  // A copy of the store (mtimes reset to the copy's time, here to the epoch): the pass nominates every
  // tombstone, reads each one, removes none before its time and restores the mtimes.
  const tomb = join(home, 'keys', 'retired', `${longLived.serial}.key`);
  utimesSync(tomb, 0, 0);
  t.equal(store.pruneRetired(true), 0, 'an unexpired key keeps its tombstone whatever the mtime says');
  t.equal(statSync(tomb).mtimeMs, longLived.expiresAt, 'mtime restored');
  now = longLived.expiresAt + TOMBSTONE_GRACE_MS;
  t.equal(store.pruneRetired(true), 1);
  t.same(retiredFiles(home), []);
});

t.test(
  'pruning: over the bound, tombstones of expired keys go oldest first; unexpired ones stay',
  async (t) => {
    const home = tempDir(t);
    let now = 1_000 * DAY;
    const max = 4;
    const store = ClientKeyStore.open(home, 'bob', idA, { now: () => now, maxTombstones: max });
    const expiries = [1, 2, 3, 4, 5, 6].map((h) => now + h * HOUR); // six expired by the check below
    const unexpired = [30, 31].map((d) => now + d * DAY);
    const keys = [...expiries, ...unexpired].map((expiresAt) => ({ ...sample(), expiresAt }));
    for (const k of keys) {
      store.putKey(k);
      store.retire(k.serial, 'expired');
    }
    t.equal(retiredFiles(home).length, 8);
    now += 10 * HOUR; // the six short keys expired, within the grace period
    t.equal(store.pruneRetired(true), 4, 'down to the bound');
    t.same(
      retiredFiles(home),
      [keys[4]!, keys[5]!, keys[6]!, keys[7]!].map((k) => k.serial).sort(),
      'the four oldest expiries went; the unexpired tombstones are kept',
    );
    // Only unexpired ones over the bound: nothing can go.
    for (const d of [40, 41, 42]) {
      const k = { ...sample(), expiresAt: now + d * DAY };
      store.putKey(k);
      store.retire(k.serial, 'revoked');
    }
    t.equal(store.pruneRetired(true), 2, 'the two expired ones go');
    t.equal(retiredFiles(home).length, 5, 'five unexpired tombstones, one over the bound, all kept');
    t.ok(MAX_TOMBSTONES >= 1_000, 'the default bound keeps a useful history');
  },
);

t.test('pruning runs at most once an hour across the processes of a client', async (t) => {
  const home = tempDir(t);
  let now = 1_000 * DAY;
  const a = ClientKeyStore.open(home, 'bob', idA, { now: () => now });
  const b = ClientKeyStore.open(home, 'bob', idA, { now: () => now }); // another process
  const k = { ...sample(), expiresAt: now };
  a.putKey(k);
  a.retire(k.serial, 'expired'); // runs a pass (nothing due yet) and stamps retired/.swept
  now += TOMBSTONE_GRACE_MS;
  t.equal(statSync(join(home, 'keys', 'retired', '.swept')).mode & 0o777, 0o600);
  t.equal(b.pruneRetired(), 1, "the other process's stamp is a month old: it prunes");
  const c = ClientKeyStore.open(home, 'bob', idA, { now: () => now }); // a third process
  // A tombstone already due (written as retire() did before retired/ existed, a month ago):
  const k3 = { ...sample(), state: 'revoked' as const, expiresAt: now - TOMBSTONE_GRACE_MS };
  delete k3.key;
  k3.updatedAt = k3.expiresAt;
  c.putKey(k3);
  t.same(
    c.listLiveKeys().map((x) => x.serial),
    [],
  );
  t.same(retiredFiles(home), [k3.serial], "b's stamp is fresh: no pass within the hour");
  now += HOUR;
  t.equal(c.pruneRetired(), 1, 'an hour later: a pass');
});

t.test('a retirement wins: a stale write of another process, or a live record left beside it', async (t) => {
  const home = tempDir(t);
  const listen = ClientKeyStore.open(home, 'bob', idA);
  const send = ClientKeyStore.open(home, 'bob', idA); // another process of the same client
  const rec = sample();
  rec.expiresAt = Date.now() + 60_000;
  listen.putKey({ ...rec, state: 'pending' });
  const stale = send.getKey(rec.serial)!; // read before the retirement
  listen.retire(rec.serial, 'revoked', { reason: 'keyCompromise' });
  send.putKey({ ...stale, state: 'active', updatedAt: 9 }); // e.g. a verdict applied from that read
  t.equal(send.getKey(rec.serial)?.state, 'revoked', 'the stale write did not bring the key back');
  t.equal(listen.getKey(rec.serial)?.key, undefined, 'no material');
  t.notOk(
    readdirSync(join(home, 'keys')).includes(`${rec.serial}.key`),
    'nothing written among the live keys',
  );

  // A crash between retire()'s two steps: the tombstone written, the live record still there.
  const other = sample();
  other.expiresAt = Date.now() + 60_000;
  listen.putKey(other);
  const live = readFileSync(join(home, 'keys', `${other.serial}.key`));
  listen.retire(other.serial, 'expired');
  writeFileSync(join(home, 'keys', `${other.serial}.key`), live, { mode: 0o600 });
  t.equal(listen.getKey(other.serial)?.state, 'expired', 'the tombstone wins');
  t.same(
    listen.listLiveKeys().map((k) => k.serial),
    [],
    'not a live key',
  );
  t.notOk(readdirSync(join(home, 'keys')).includes(`${other.serial}.key`), 'the leftover was deleted');
});

t.test('a file gone between the check and the read (another process moved it) reads as absent', async (t) => {
  const home = tempDir(t);
  const store = ClientKeyStore.open(home, 'bob', idA);
  const rec = sample();
  store.putKey(rec);
  const livePath = join(home, 'keys', `${rec.serial}.key`);
  const original = fs.readFileSync;
  fs.readFileSync = ((path: fs.PathOrFileDescriptor, ...rest: unknown[]) => {
    if (path === livePath) throw Object.assign(new Error('gone'), { code: 'ENOENT' });
    return (original as (...a: unknown[]) => unknown)(path, ...rest);
  }) as typeof fs.readFileSync;
  syncBuiltinESMExports();
  try {
    t.equal(store.getKey(rec.serial), undefined, 'absent, not io_error');
    t.same(store.listLiveKeys(), [], 'the listing goes on');
  } finally {
    fs.readFileSync = original;
    syncBuiltinESMExports();
  }
  t.same(store.getKey(rec.serial), rec, 'readable again');
});

t.test(
  'pruning: past the hard bound the oldest go whatever their expiry; housekeeping never throws',
  async (t) => {
    const home = tempDir(t);
    let now = 1_000 * DAY;
    const store = ClientKeyStore.open(home, 'bob', idA, {
      now: () => now,
      maxTombstones: 2,
      hardMaxTombstones: 3,
    });
    const keys = [10, 11, 12, 13, 14].map((d) => ({ ...sample(), expiresAt: now + d * DAY }));
    for (const k of keys) {
      store.putKey(k);
      store.retire(k.serial, 'revoked');
    }
    t.equal(store.pruneRetired(true), 2, 'five unexpired tombstones, a hard bound of three');
    t.same(
      retiredFiles(home),
      keys
        .slice(2)
        .map((k) => k.serial)
        .sort(),
      'the two that expire first went',
    );

    // retired/ removed by hand while the process runs, and a stamp that cannot be written.
    rmSync(join(home, 'keys', 'retired'), { recursive: true });
    const k = { ...sample(), expiresAt: now + DAY };
    store.putKey(k);
    t.equal(store.retire(k.serial, 'revoked')?.state, 'revoked', 'a retirement makes retired/ again');
    t.same(retiredFiles(home), [k.serial]);
    mkdirSync(join(home, 'keys', 'retired', '.swept'), { recursive: true }); // not a file: cannot be written
    now += HOUR;
    t.doesNotThrow(() => store.pruneRetired(true), 'the stamp failing is only repeated work later');
    t.doesNotThrow(() => store.listLiveKeys());
  },
);
