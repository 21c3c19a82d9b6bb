// server/kdc/ticket-keys.ts DeferredTicketKeys: a KDC opens its resumption ticket keys (a scrypt
// derivation of the KEK) after it listens, not before. What must hold: one opening however many callers
// wait, a caller before the opening gets the same ring once it is there, a failed opening is retried by
// the next use, and a client resuming the moment a KDC restarted still resumes.
import t from 'tap';
import { openSession, type ClientSession } from '../../../client/session.js';
import { DeferredTicketKeys, TicketKeys } from '../../../server/kdc/ticket-keys.js';
import { KeyEncryptionKeys } from '../../../server/keys/kek.js';
import { tempDir } from '../../helpers/tmp.js';
import { issueTestClient, startTestKdc } from '../../helpers/kdc-in-process.js';

t.setTimeout(120_000);

/** The floor kek.ts accepts (2^14): the default 2^15 would only slow the test. */
const FAST = { log2N: 14, r: 8, p: 1 };

function memorySettings(): {
  getSetting<T>(key: string): Promise<T | undefined>;
  setSetting(key: string, value: unknown): Promise<void>;
} {
  const map = new Map<string, unknown>();
  return {
    getSetting: async <T>(key: string) => map.get(key) as T | undefined,
    setSetting: async (key, value) => void map.set(key, value),
  };
}

t.test('one opening for every early caller; then the ring at once', async (t) => {
  const dir = tempDir(t);
  const settings = memorySettings();
  let opened = 0;
  const deferred = new DeferredTicketKeys(async () => {
    opened += 1;
    return TicketKeys.open(settings, await KeyEncryptionKeys.open(dir, 'pass', { cost: FAST }));
  });
  const early = deferred.ring();
  t.ok(early instanceof Promise, 'before the opening: a promise of the ring');
  const who = { name: 'alice', serialHex: '0a', role: 'client' as const, notAfter: Date.now() + 86_400_000 };
  const [ring, issued] = await Promise.all([
    early,
    deferred.issue(who, Buffer.alloc(32, 7)),
    deferred.open(),
  ]);
  t.equal(opened, 1, 'opened once');
  t.ok(issued.ticket.length > 0 && issued.expiresAt > Date.now(), 'a ticket issued by a waiting caller');
  const now = deferred.ring();
  t.notOk(now instanceof Promise, 'after the opening: the ring itself');
  t.equal(now, ring, 'the same ring');
  await deferred.refresh();
  t.equal(opened, 1, 'a refresh re-reads, it does not open again');
});

t.test('a failed opening is retried by the next use; a hello it fails is ticket_invalid', async (t) => {
  const dir = tempDir(t);
  let attempts = 0;
  const deferred = new DeferredTicketKeys(async () => {
    attempts += 1;
    if (attempts <= 2) throw new Error('store unreachable');
    return TicketKeys.open(memorySettings(), await KeyEncryptionKeys.open(dir, 'pass', { cost: FAST }));
  });
  await t.rejects(deferred.open(), /store unreachable/);
  // A resumed hello meanwhile: ticket_invalid, on which a client falls back to a full handshake.
  await t.rejects(Promise.resolve(deferred.ring()), { code: 'ticket_invalid' });
  const ring = await deferred.ring();
  t.ok(ring.current.key.length > 0, 'the next use opened the keys');
  t.equal(attempts, 3);
});

t.test('a client resumes on a KDC it reaches the moment the KDC started', async (t) => {
  const first = await startTestKdc(t);
  const alice = await issueTestClient(first.kdc.ca, 'alice');
  const credentials = { privateKey: alice.privateKey, certPem: alice.certPem };
  let ticket: { ticket: Buffer; psk: Buffer } | undefined;
  const full = await openSession({
    server: first.kdc.url,
    mode: 'auth',
    credentials,
    caCertPem: first.kdc.ca.caCertPem,
    onTicket: (got) => (ticket = got),
  });
  for (let i = 0; i < 200 && ticket === undefined; i++) await new Promise((r) => setTimeout(r, 10));
  await full.close();
  await first.kdc.close();
  if (ticket === undefined) throw new Error('no ticket');
  // The same data directory (the ticket keys are in its store): resumed before its keys were opened.
  const second = await startTestKdc(t, { dataDir: first.dataDir });
  let resumed: ClientSession | undefined;
  try {
    resumed = await openSession({
      server: second.kdc.url,
      mode: 'resume',
      credentials,
      caCertPem: second.kdc.ca.caCertPem,
      resumption: ticket,
    });
    t.equal(resumed.facts.mode, 'resume');
    t.same(await resumed.request('ping', {}), { pong: true });
  } finally {
    await resumed?.close();
  }
});

t.test(
  'a session closed at once still gets the ticket it asked for from a KDC that just started',
  async (t) => {
    // The KDC opens its ticket keys after it listens, so its answer to `session.ticket` can come after a
    // short command is done: the client's close waits for it (client/session.ts), or that command's next
    // session would be a full handshake.
    const { kdc } = await startTestKdc(t);
    const alice = await issueTestClient(kdc.ca, 'alice');
    let ticket: { ticket: Buffer; psk: Buffer } | undefined;
    const session = await openSession({
      server: kdc.url,
      mode: 'auth',
      credentials: { privateKey: alice.privateKey, certPem: alice.certPem },
      caCertPem: kdc.ca.caCertPem,
      onTicket: (got) => (ticket = got),
    });
    await session.close();
    t.ok(ticket !== undefined && ticket.ticket.length > 0, 'the ticket arrived before close() returned');
  },
);
