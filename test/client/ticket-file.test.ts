// The client's ticket file (client/ticket-file.ts): sealed at rest, kept across the sessions that resume
// with it, removed when it cannot serve (another certificate's, expired, tampered) or when discarded.
import t from 'tap';
import type * as Tap from 'tap';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { discardTicket, readTicket, saveTicket, TICKET_FILE } from '../../client/ticket-file.js';
import { tempDir } from '../helpers/tmp.js';
import { testKeyPair } from '../helpers/kdc-in-process.js';

const now = 1_800_000_000_000;
const key = createPrivateKey((await testKeyPair()).privateKeyPem);

function saved(t: Tap.Test): { home: string; ticket: Buffer; psk: Buffer } {
  const home = tempDir(t);
  const ticket = randomBytes(120);
  const psk = randomBytes(32);
  saveTicket(home, 'alice', key, { ticket, psk, expiresAt: now + 3600_000, serialHex: '0a1b' });
  return { home, ticket, psk };
}

t.test('a ticket read for a resumption stays for the next sessions', async (t) => {
  const { home, ticket, psk } = saved(t);
  const path = join(home, TICKET_FILE);
  t.equal(readFileSync(path).indexOf(psk), -1, 'the psk is not in clear');
  for (let i = 0; i < 3; i++) {
    const got = readTicket(home, 'alice', key, '0a1b', now);
    t.same(got, { ticket, psk, expiresAt: now + 3600_000, serialHex: '0a1b' }, `read ${i + 1}`);
  }
  t.ok(existsSync(path), 'still there');
  discardTicket(home);
  t.notOk(existsSync(path), 'discarded');
  t.equal(readTicket(home, 'alice', key, '0a1b', now), undefined, 'no ticket: a full handshake');
});

t.test('a ticket that cannot serve is not returned, and its file is removed', async (t) => {
  const cases: [string, (home: string) => unknown][] = [
    ['another certificate', (home) => readTicket(home, 'alice', key, '0a1c', now)],
    ['expired', (home) => readTicket(home, 'alice', key, '0a1b', now + 3600_000)],
    ['another name', (home) => readTicket(home, 'bob', key, '0a1b', now)],
    [
      'tampered',
      (home) => {
        const path = join(home, TICKET_FILE);
        const raw = readFileSync(path);
        raw[raw.length - 1]! ^= 1;
        writeFileSync(path, raw);
        return readTicket(home, 'alice', key, '0a1b', now);
      },
    ],
  ];
  for (const [what, read] of cases) {
    const { home } = saved(t);
    t.equal(read(home), undefined, what);
    t.notOk(existsSync(join(home, TICKET_FILE)), `${what}: removed`);
  }
});
