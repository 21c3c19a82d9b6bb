// Client load for the KDC benchmarks, in its own process: the real client library (client/session.ts
// openSession, the same code `kds client ...` runs), driven over IPC:
//   handshakes {url, caCertPem, clients, count, concurrency} -> authenticated sessions opened and closed,
//                                       `concurrency` in flight; latency per session
//   hold {url, caCertPem, client, count, concurrency}        -> open `count` sessions and keep them idle
//   armPush {}    -> from now on, note when each held session receives its `cert.revoked` push
//   waitPush {timeoutMs} -> once every held session got it (or closed): the hrtime of the first and last
//   closeAll      -> close the held sessions
//   enroll {url, caCertPem, requests: [{token, csr}], concurrency, mode}
//                 -> certificates issued over `enroll`-mode sessions: `established` (sessions opened
//                    first, only the requests timed) or `full` (one new session per certificate)
//   openEnroll {url, caCertPem, count} / closeEnroll -> enroll sessions opened (closed) BEFORE (after)
//                 the benchmark's CPU window; `established` enrollments use them while they are open
//   primeTickets {url, caCertPem, clients} -> one full session per client, keeping the resumption ticket
//                                       it asks for (docs/protocol.md "Resumption")
//   resumed {url, caCertPem, clients, count, concurrency} -> sessions resumed with the clients' tickets,
//                                       each asking for the next ticket before it closes when the client
//                                       would (client/ticket-renewal.ts: a ticket is kept until it is due)
//   holdResumable {url, caCertPem, clients, count, concurrency} -> `count` sessions opened and held (full
//                                       handshakes), client i on certificate i mod clients.length, each
//                                       keeping its ticket (bench/reconnect.ts)
//   reconnect {url, caCertPem, clients, resume, concurrency} -> the held sessions (dead: their KDC was
//                                       killed) opened again, `concurrency` at a time, resumed with their
//                                       tickets or full; `ms` until the last is in session, then every
//                                       new ticket asked for awaited (not timed) for the next reconnect
//   cpu           -> microseconds of CPU (user + system, every thread) this process used so far
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { openSession, type ClientSession, type OpenSessionOptions } from '../../client/session.js';
import { wantsNewTicket } from '../../client/ticket-renewal.js';
import { serve } from './ipc.js';

interface ClientSpec {
  certPem: string;
  keyPem: string;
}

const keys = new Map<string, KeyObject>();
function keyOf(pem: string): KeyObject {
  let key = keys.get(pem);
  if (key === undefined) {
    key = createPrivateKey(pem);
    keys.set(pem, key);
  }
  return key;
}

function open(
  url: string,
  caCertPem: string,
  client: ClientSpec,
  extra: Partial<OpenSessionOptions> = {},
): Promise<ClientSession> {
  return openSession({
    server: url,
    mode: 'auth',
    credentials: { privateKey: keyOf(client.keyPem), certPem: client.certPem },
    caCertPem,
    connectTimeoutMs: 120_000,
    ...extra,
  });
}

type Ticket = { ticket: Buffer; psk: Buffer; expiresAt: number };
/** The last ticket of each client (by its certificate); the KDC accepts a ticket more than once. */
const tickets = new Map<string, Ticket>();

/**
 * A session of `client`, resumed when `resume` is given, that waits for its next ticket before closing
 * when it asks for one (a full session always does; a resumed one when its ticket is due:
 * client/ticket-renewal.ts).
 */
async function sessionWithTicket(
  url: string,
  caCertPem: string,
  client: ClientSpec,
  resume: Ticket | undefined,
): Promise<void> {
  let got!: () => void;
  const ticketed = new Promise<void>((r) => (got = r));
  const session = await open(url, caCertPem, client, {
    ...(resume === undefined ? {} : { mode: 'resume', resumption: resume }),
    onTicket: (t) => {
      tickets.set(client.certPem, { ticket: t.ticket, psk: Buffer.from(t.psk), expiresAt: t.expiresAt });
      got();
    },
  });
  if (resume !== undefined && session.facts.mode !== 'resume') throw new Error('not resumed');
  if (asksTicket(session, resume)) await ticketed;
  await session.close();
}

/** Whether `session` asked for a ticket (the client's own rule), so that one is on its way. */
function asksTicket(session: ClientSession, resumedWith: Ticket | undefined): boolean {
  return wantsNewTicket(session.facts.mode, resumedWith, session.facts.identity.expiresAt, Date.now());
}

/** Run `count` tasks with `concurrency` in flight; returns per-task latencies (ms) and the errors. */
async function pool(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
): Promise<{ ms: number; latencies: number[]; errors: number; firstError?: string }> {
  let next = 0;
  let errors = 0;
  let firstError: string | undefined;
  const latencies: number[] = [];
  const t0 = process.hrtime.bigint();
  const runner = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const s = process.hrtime.bigint();
      try {
        await task(i);
        latencies.push(Number(process.hrtime.bigint() - s) / 1e6);
      } catch (err) {
        errors += 1;
        firstError ??= `${(err as { code?: string }).code ?? ''} ${(err as Error).message}`;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, runner));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return firstError === undefined ? { ms, latencies, errors } : { ms, latencies, errors, firstError };
}

/** One reconnecting client of bench/reconnect.ts: its live session and the ticket it keeps. */
interface Resumable {
  client: ClientSpec;
  session?: ClientSession;
  ticket?: Ticket;
}
let resumable: Resumable[] = [];

/**
 * Open a session for slot `r` (resumed with its ticket when `resume`). Resolves once in session, with
 * a promise of its next ticket (settled at once when it asks for none).
 */
async function openResumable(
  r: Resumable,
  url: string,
  caCertPem: string,
  resume: boolean,
): Promise<{ ticketed: Promise<void> }> {
  let got!: () => void;
  const ticketed = new Promise<void>((resolve) => (got = resolve));
  const ticket = r.ticket;
  if (resume && ticket === undefined) throw new Error('no ticket to resume with');
  r.session = await open(url, caCertPem, r.client, {
    ...(resume && ticket !== undefined ? { mode: 'resume', resumption: ticket } : {}),
    onTicket: (t) => {
      r.ticket = { ticket: t.ticket, psk: Buffer.from(t.psk), expiresAt: t.expiresAt };
      got();
    },
  });
  if (resume && r.session.facts.mode !== 'resume') throw new Error('not resumed');
  return { ticketed: asksTicket(r.session, resume ? ticket : undefined) ? ticketed : Promise.resolve() };
}

const held: ClientSession[] = [];
/** Enroll sessions held open between openEnroll and closeEnroll. */
let enrollSessions: ClientSession[] = [];
let pushTimes: bigint[] = [];
let armed = false;

serve({
  handshakes: async (arg: {
    url: string;
    caCertPem: string;
    clients: ClientSpec[];
    count: number;
    concurrency: number;
  }) => {
    return pool(arg.count, arg.concurrency, async (i) => {
      const session = await open(arg.url, arg.caCertPem, arg.clients[i % arg.clients.length]!);
      await session.close();
    });
  },
  primeTickets: async (arg: { url: string; caCertPem: string; clients: ClientSpec[] }) => {
    for (const client of arg.clients) await sessionWithTicket(arg.url, arg.caCertPem, client, undefined);
    return tickets.size;
  },
  resumed: async (arg: {
    url: string;
    caCertPem: string;
    clients: ClientSpec[];
    count: number;
    concurrency: number;
  }) => {
    return pool(arg.count, arg.concurrency, async (i) => {
      const client = arg.clients[i % arg.clients.length]!;
      const ticket = tickets.get(client.certPem);
      if (ticket === undefined) throw new Error('no ticket: primeTickets first');
      await sessionWithTicket(arg.url, arg.caCertPem, client, ticket);
    });
  },
  holdResumable: async (arg: {
    url: string;
    caCertPem: string;
    clients: ClientSpec[];
    count: number;
    concurrency: number;
  }) => {
    resumable = Array.from({ length: arg.count }, (_, i) => ({
      client: arg.clients[i % arg.clients.length]!,
    }));
    const tickets: Promise<void>[] = [];
    const r = await pool(arg.count, arg.concurrency, async (i) => {
      tickets.push((await openResumable(resumable[i]!, arg.url, arg.caCertPem, false)).ticketed);
    });
    await Promise.all(tickets);
    return { ms: r.ms, errors: r.errors, firstError: r.firstError, held: resumable.length };
  },
  reconnect: async (arg: { url: string; caCertPem: string; resume: boolean; concurrency: number }) => {
    // The old sessions died with their KDC; closing them only drops them.
    await Promise.all(resumable.map((r) => r.session?.close().catch(() => {}) ?? Promise.resolve()));
    const tickets: Promise<void>[] = [];
    const r = await pool(resumable.length, arg.concurrency, async (i) => {
      tickets.push((await openResumable(resumable[i]!, arg.url, arg.caCertPem, arg.resume)).ticketed);
    });
    await Promise.all(tickets);
    return { ms: r.ms, errors: r.errors, firstError: r.firstError, sessions: resumable.length };
  },
  hold: async (arg: {
    url: string;
    caCertPem: string;
    client: ClientSpec;
    count: number;
    concurrency: number;
  }) => {
    const r = await pool(arg.count, arg.concurrency, async () => {
      const session = await open(arg.url, arg.caCertPem, arg.client);
      held.push(session);
      session.onPush('cert.revoked', () => {
        if (armed) pushTimes.push(process.hrtime.bigint());
      });
    });
    return { ms: r.ms, errors: r.errors, firstError: r.firstError, held: held.length };
  },
  armPush: () => {
    pushTimes = [];
    armed = true;
    return held.length;
  },
  waitPush: async (arg: { timeoutMs: number }) => {
    const deadline = Date.now() + arg.timeoutMs;
    while (pushTimes.length < held.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    armed = false;
    const sorted = [...pushTimes].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return { received: sorted.length, held: held.length, first: sorted[0], last: sorted[sorted.length - 1] };
  },
  closeAll: async () => {
    const all = held.splice(0);
    await Promise.all(all.map((s) => s.close().catch(() => {})));
    return all.length;
  },
  enroll: async (arg: {
    url: string;
    caCertPem: string;
    requests: { token: string; csr: string }[];
    concurrency: number;
    /** 'established': `concurrency` enroll sessions opened first (not timed), requests spread over them;
     *  'full': every certificate is a new enroll session (handshake + request), as real clients do. */
    mode: 'established' | 'full';
  }) => {
    const openEnroll = (): Promise<ClientSession> =>
      openSession({ server: arg.url, mode: 'enroll', caCertPem: arg.caCertPem, connectTimeoutMs: 120_000 });
    let issued = 0;
    const enrollOne = async (session: ClientSession, i: number): Promise<void> => {
      const reply = await session.request('enroll', arg.requests[i]!, { timeoutMs: 120_000 });
      if (typeof reply.cert === 'string') issued += 1;
    };
    if (arg.mode === 'full') {
      const r = await pool(arg.requests.length, arg.concurrency, async (i) => {
        const session = await openEnroll();
        try {
          await enrollOne(session, i);
        } finally {
          await session.close();
        }
      });
      return { ms: r.ms, issued, errors: r.errors, firstError: r.firstError, latencies: r.latencies };
    }
    const own = enrollSessions.length === 0;
    const sessions = own
      ? await Promise.all(Array.from({ length: arg.concurrency }, openEnroll))
      : enrollSessions;
    let slot = 0;
    const free = [...sessions];
    const r = await pool(arg.requests.length, arg.concurrency, async (i) => {
      const session = free.pop() ?? sessions[slot++ % sessions.length]!;
      try {
        await enrollOne(session, i);
      } finally {
        free.push(session);
      }
    });
    if (own) await Promise.all(sessions.map((s) => s.close()));
    return { ms: r.ms, issued, errors: r.errors, firstError: r.firstError, latencies: r.latencies };
  },
  openEnroll: async (arg: { url: string; caCertPem: string; count: number }) => {
    const opened = await Promise.all(
      Array.from({ length: arg.count }, () =>
        openSession({ server: arg.url, mode: 'enroll', caCertPem: arg.caCertPem, connectTimeoutMs: 120_000 }),
      ),
    );
    enrollSessions.push(...opened);
    return enrollSessions.length;
  },
  closeEnroll: async () => {
    const all = enrollSessions;
    enrollSessions = [];
    await Promise.all(all.map((s) => s.close().catch(() => {})));
    return all.length;
  },
  cpu: () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  },
});
