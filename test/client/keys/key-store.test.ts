// The client's encrypted key store (client/keys/key-store.ts): encrypted at rest, 0600/0700, bound to
// the identity key, renamed or tampered files ignored, retirement removes key material.
import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ClientKeyStore,
  STORE_KEY_FILE,
  storeKeyOf,
  wrapStoreKey,
  type StoredKey,
} from '../../../client/keys/key-store.js';
import { newKeySerial, newPrekeyId } from '../../../shared/keys/serial.js';
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
