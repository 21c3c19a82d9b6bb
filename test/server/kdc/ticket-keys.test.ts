// server/kdc/ticket-keys.ts DeferredTicketKeys: a KDC opens its resumption ticket keys (a scrypt
// derivation of the KEK) after it listens, not before. What must hold: one opening however many callers
// wait, a caller before the opening gets the same ring once it is there, a failed opening is answered
// without a retry for 30 s and then retried by the next use, and a client resuming the moment a KDC
// restarted still resumes.
import t from 'tap';
import { openSession, type ClientSession } from '../../../client/session.js';
import {
  DeferredTicketKeys,
  MAX_RESUMPTION_CHAIN_MS,
  RETRY_OPENING_MS,
  TicketKeys,
} from '../../../server/kdc/ticket-keys.js';
import { KeyEncryptionKeys } from '../../../server/keys/kek.js';
import { openTicket, ticketAuthenticatedAt } from '../../../shared/protocol/ticket.js';
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
  const who = {
    name: 'alice',
    serialHex: '0a',
    role: 'client' as const,
    notAfter: Date.now() + 86_400_000,
    authenticatedAt: Date.now(),
  };
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

t.test(
  'a failed opening is answered for 30 s, then retried; a hello it fails is ticket_invalid',
  async (t) => {
    const dir = tempDir(t);
    let attempts = 0;
    let clock = 1_000_000;
    const deferred = new DeferredTicketKeys(
      async () => {
        attempts += 1;
        if (attempts <= 2) throw new Error('store unreachable');
        return TicketKeys.open(memorySettings(), await KeyEncryptionKeys.open(dir, 'pass', { cost: FAST }));
      },
      () => clock,
    );
    await t.rejects(deferred.open(), /store unreachable/);
    // Resumed hellos meanwhile: ticket_invalid (a client then falls back to a full handshake), and none
    // of them pays for an opening (a scrypt each, for a peer that needs no valid ticket to send one).
    for (let i = 0; i < 5; i++) {
      await t.rejects(Promise.resolve(deferred.ring()), { code: 'ticket_invalid' });
    }
    await t.rejects(deferred.refresh(), /store unreachable/, 'nor does a refresh');
    t.equal(attempts, 1, 'one opening in the 30 s after the failure');
    clock += RETRY_OPENING_MS;
    await t.rejects(Promise.resolve(deferred.ring()), { code: 'ticket_invalid' });
    t.equal(attempts, 2, 'retried once the 30 s passed');
    clock += RETRY_OPENING_MS;
    const ring = await deferred.ring();
    t.ok(ring.current.key.length > 0, 'the next retry opened the keys');
    t.equal(attempts, 3);
  },
);

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
    ticketWaitOnCloseMs: 60_000,
  });
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
      // Longer than the default 2 s: a loaded machine can take that long to open the ticket keys, and
      // what is tested is that close() waits at all.
      ticketWaitOnCloseMs: 60_000,
    });
    await session.close();
    t.ok(ticket !== undefined && ticket.ticket.length > 0, 'the ticket arrived before close() returned');
  },
);

t.test('a chain of tickets ends 7 days after the full handshake behind it', async (t) => {
  // RFC 8446 section 4.6.1 recommends a limit on the total lifetime of keying material resumption
  // carries on from a full handshake: a resumed session's ticket inherits that handshake's time.
  const HOUR = 3_600_000;
  let clock = 1_800_000_000_000;
  const keys = await TicketKeys.open(
    memorySettings(),
    await KeyEncryptionKeys.open(tempDir(t), 'pass', { cost: FAST }),
    () => clock,
  );
  const fullAt = clock;
  const who = { name: 'alice', serialHex: '0a', role: 'client' as const, notAfter: clock + 365 * 24 * HOUR };
  const psk = Buffer.alloc(32, 7);
  const first = keys.issue({ ...who, authenticatedAt: fullAt }, psk);
  t.equal(first.expiresAt, fullAt + 12 * HOUR, 'a fresh chain: the ticket lifetime');
  const opened = openTicket(keys.ring, first.ticket, clock);
  t.equal(opened.authAt, fullAt, 'the ticket carries the full handshake time');
  t.equal(ticketAuthenticatedAt(opened), fullAt);

  // Resumed every 11 hours, each session asking for the next ticket.
  let authAt = ticketAuthenticatedAt(opened);
  let last = first;
  for (clock += 11 * HOUR; clock < fullAt + MAX_RESUMPTION_CHAIN_MS - HOUR; clock += 11 * HOUR) {
    last = keys.issue({ ...who, authenticatedAt: authAt }, psk);
    authAt = ticketAuthenticatedAt(openTicket(keys.ring, last.ticket, clock));
    t.equal(authAt, fullAt, 'the time of the full handshake is kept along the chain');
    t.ok(last.expiresAt <= fullAt + MAX_RESUMPTION_CHAIN_MS, 'never beyond the bound');
  }
  t.equal(last.expiresAt, fullAt + MAX_RESUMPTION_CHAIN_MS, 'the last ticket ends at the bound');
  t.throws(() => openTicket(keys.ring, last.ticket, fullAt + MAX_RESUMPTION_CHAIN_MS), {
    code: 'ticket_invalid',
  });
  clock = fullAt + MAX_RESUMPTION_CHAIN_MS;
  t.throws(
    () => keys.issue({ ...who, authenticatedAt: fullAt }, psk),
    { code: 'forbidden' },
    'a session at the bound gets no ticket',
  );
  // A ticket sealed before authAt existed: its issuedAt stands for the full handshake.
  t.equal(ticketAuthenticatedAt({ issuedAt: 5 }), 5);
});

t.test("a resumed session's ticket carries the time of the full handshake, not its own", async (t) => {
  const { kdc } = await startTestKdc(t);
  const alice = await issueTestClient(kdc.ca, 'alice');
  const credentials = { privateKey: alice.privateKey, certPem: alice.certPem };
  let first: { ticket: Buffer; psk: Buffer } | undefined;
  const full = await openSession({
    server: kdc.url,
    mode: 'auth',
    credentials,
    caCertPem: kdc.ca.caCertPem,
    onTicket: (got) => (first = got),
    ticketWaitOnCloseMs: 60_000,
  });
  await full.close();
  if (first === undefined) throw new Error('no ticket');
  const ring = await (kdc.services.tickets as DeferredTicketKeys).ring();
  const fullAt = openTicket(ring, first.ticket, Date.now()).authAt;
  t.ok(fullAt !== undefined && fullAt <= Date.now(), 'the first ticket has the full handshake time');
  await new Promise((r) => setTimeout(r, 20));
  const resumed = await openSession({
    server: kdc.url,
    mode: 'resume',
    credentials,
    caCertPem: kdc.ca.caCertPem,
    resumption: first,
  });
  try {
    const next = await resumed.request('session.ticket', {});
    const opened = openTicket(ring, next.ticket, Date.now());
    t.ok(opened.issuedAt > fullAt!, 'a new ticket');
    t.equal(opened.authAt, fullAt, 'with the full handshake time of the first');
  } finally {
    await resumed.close();
  }
});
