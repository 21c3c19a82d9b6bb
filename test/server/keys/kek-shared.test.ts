// The KDC opens one KEK ring for its resumption ticket keys and its symmetric keys (server/kdc/kdc.ts
// openKek): opening derives each KEK version from the CA passphrase with scrypt (~0.1 s of CPU, 32 MiB),
// and with a ring each the first key request after a start paid a second derivation. Counted here by
// wrapping node:crypto's scrypt (server/keys/kek.ts imports it by name: syncBuiltinESMExports makes the
// wrapper what that binding calls).
import t from 'tap';
import crypto from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { issueTestClient, sessionFor, startTestKdc } from '../../helpers/kdc-in-process.js';
import { initDataDir } from '../../helpers/kds-process.js';

let derivations = 0;
const original = crypto.scrypt;
crypto.scrypt = ((...args: Parameters<typeof crypto.scrypt>) => {
  derivations += 1;
  return (original as (...a: unknown[]) => void)(...args);
}) as typeof crypto.scrypt;
syncBuiltinESMExports();
t.teardown(() => {
  crypto.scrypt = original;
  syncBuiltinESMExports();
});

t.test('ticket keys and symmetric keys share one KEK derivation', async (t) => {
  const { kdc } = await startTestKdc(t);
  const alice = await sessionFor(kdc, await issueTestClient(kdc.ca, 'alice'));
  await issueTestClient(kdc.ca, 'bob');
  // The ticket keys open once the KDC listens; a ticket request waits for them. (Other scrypt calls,
  // e.g. decrypting the KDC's own key at start, happened before: only what follows is counted.)
  await alice.request('session.ticket', {});
  const opened = derivations;
  const created = await alice.request('key.create', { peer: 'bob' });
  t.match(created.serial, /^[0-9a-f]{32}$/);
  t.equal(derivations - opened, 0, 'the first key request derived nothing more');
  await alice.close();
});

t.test(
  'a KDC without resumption derives its KEK once, whether it creates or opens it; key requests never again',
  async (t) => {
    // The ring opens right after the KDC listens (the fail-closed check of kdc.ts) or at the first key
    // request, whichever comes first; either way one derivation per KEK version, the creator's included
    // (it keeps the key it wrote instead of deriving the file's key again to read it back).
    for (const kek of [false, true]) {
      const dataDir = await initDataDir(t, { kek });
      const start = derivations;
      const { kdc } = await startTestKdc(t, { resumption: false, dataDir });
      const alice = await sessionFor(kdc, await issueTestClient(kdc.ca, 'alice'));
      await issueTestClient(kdc.ca, 'bob');
      await alice.request('key.create', { peer: 'bob' });
      await alice.request('key.create', { peer: 'bob' });
      t.equal(
        derivations - start,
        1,
        kek ? 'an existing KEK: opened with one scrypt' : 'no KEK yet: created with one',
      );
      t.ok(existsSync(join(dataDir, 'kek', 'kek-v1.bin')));
      await alice.close();
    }
  },
);
