// Session resumption with real KDC processes (docs/protocol.md "Resumption"): a client's first session
// leaves a ticket in its home, the next ones resume with it (also after a KDC restart: the ticket keys
// live in the store) and keep it until it is due, a revoked identity cannot resume, and a ticket the KDC
// no longer opens falls back to a full handshake.
import t from 'tap';
import { codeOf } from '../helpers/code-of.js';
import Database from 'better-sqlite3';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { openHomeSession } from '../../client/session.js';
import { readClientHome } from '../../client/home.js';
import { readTicket, saveTicket, TICKET_FILE } from '../../client/ticket-file.js';
import { TICKET_RENEW_BEFORE_MS } from '../../client/ticket-renewal.js';
import { parseCertificate } from '../../shared/pki/x509.js';
import { initDataDir, runKds, startServer, type ServerProcess } from '../helpers/kds-process.js';
import { admin, enrollAll, type Clients } from './keys-helpers.js';

t.setTimeout(180_000);
// Servers restarted inside a subtest live as long as the file (the root's teardown kills them).
const root = t;

const dataDir = await initDataDir(t);
const c: Clients = { server: await startServer(t, dataDir), homes: {} };
c.homes = await enrollAll(c.server, ['alice', 'bob']);

async function waitForTicket(home: string): Promise<void> {
  for (let i = 0; i < 200 && !existsSync(join(home, TICKET_FILE)); i++) {
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** One session of `name`: its mode, then closed (a ticket pushed meanwhile is kept). */
async function sessionMode(name: string, server: ServerProcess = c.server): Promise<string> {
  const home = c.homes[name]!;
  const session = await openHomeSession({ name, home, server: server.url });
  try {
    await session.request('ping', {});
    await waitForTicket(home);
    return session.facts.mode;
  } finally {
    await session.close();
  }
}

t.test('the first session leaves a ticket; the next ones resume with it and keep it', async (t) => {
  const home = c.homes.alice!;
  t.notOk(existsSync(join(home, TICKET_FILE)), 'no ticket before any session');
  t.equal(await sessionMode('alice'), 'auth');
  const path = join(home, TICKET_FILE);
  t.ok(existsSync(path), 'a ticket was kept');
  t.equal(statSync(path).mode & 0o777, 0o600, 'readable by the client only');
  const first = readFileSync(path);
  t.equal(first.subarray(0, 8).toString('latin1'), 'KDSTKT1\0', 'sealed, not clear');
  t.equal(await sessionMode('alice'), 'resume');
  t.equal(await sessionMode('alice'), 'resume');
  // A ticket is replay-bounded, not single-use (docs/protocol.md "Ticket reuse"): no new one is sealed
  // while it has more than client/ticket-renewal.ts's margin left.
  t.same(readFileSync(path), first, 'the same ticket served both resumptions');
});

t.test('a resumed session replaces a ticket that is due', async (t) => {
  const home = c.homes.alice!;
  const path = join(home, TICKET_FILE);
  const files = readClientHome(home);
  const serialHex = parseCertificate(files.certPem).serialHex;
  const stored = readTicket(home, 'alice', files.privateKey, serialHex);
  if (stored === undefined) throw new Error('alice has no ticket');
  // The same ticket, remembered as expiring within the renewal margin.
  saveTicket(home, 'alice', files.privateKey, { ...stored, expiresAt: Date.now() + 60_000 });
  const due = readFileSync(path);
  const session = await openHomeSession({ name: 'alice', home, server: c.server.url });
  try {
    t.equal(session.facts.mode, 'resume', 'the due ticket still resumes');
    for (let i = 0; i < 200 && readFileSync(path).equals(due); i++)
      await new Promise((r) => setTimeout(r, 25));
  } finally {
    await session.close();
  }
  t.notSame(readFileSync(path), due, 'the session brought a new ticket');
  const renewed = readTicket(home, 'alice', files.privateKey, serialHex);
  t.ok(
    renewed !== undefined && renewed.expiresAt > Date.now() + TICKET_RENEW_BEFORE_MS,
    'for a full lifetime',
  );
  t.notSame(renewed?.ticket, stored.ticket, 'a different ticket');
  t.equal(await sessionMode('alice'), 'resume', 'the new ticket resumes');
});

t.test('the CLI resumes too, and `client status` always shows the full handshake', async (t) => {
  const r = await runKds([
    'client',
    'status',
    '--name',
    'alice',
    '--home',
    c.homes.alice!,
    '--server',
    c.server.url,
    '--json',
  ]);
  t.equal(r.code, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { serverCertificate: { subjectCN: 'kdc' } });
  const keys = await runKds([
    'client',
    'send-key',
    '--name',
    'alice',
    '--home',
    c.homes.alice!,
    '--server',
    c.server.url,
    '--to',
    'bob',
    '--mode',
    'kdc',
    '--json',
  ]);
  t.equal(keys.code, 0, keys.stderr);
});

t.test('a KDC restart keeps the ticket keys: the client resumes', async (t) => {
  t.equal(await sessionMode('alice'), 'resume');
  t.equal((await c.server.stop('SIGTERM')).code, 0);
  c.server = await startServer(root, dataDir);
  t.equal(await sessionMode('alice'), 'resume', 'resumed on the restarted KDC');
});

t.test('a ticket the KDC no longer opens: a full handshake instead', async (t) => {
  t.equal(await sessionMode('bob'), 'auth');
  t.equal(await sessionMode('bob'), 'resume');
  // The KDC loses its ticket keys (e.g. restored from an old backup): a new key, old tickets refused.
  t.equal((await c.server.stop('SIGTERM')).code, 0);
  const db = new Database(join(dataDir, 'kds.sqlite'), { timeout: 10_000 });
  db.prepare("DELETE FROM settings WHERE key = 'ticket_keys'").run();
  db.close();
  c.server = await startServer(root, dataDir);
  t.equal(await sessionMode('bob'), 'auth', 'ticket_invalid, then the full handshake');
  t.equal(await sessionMode('bob'), 'resume');
});

t.test('a revoked identity cannot resume: the refusal stands, no fallback', async (t) => {
  // alice's ticket predates the key loss above: her next session is a full one, then she resumes.
  t.equal(await sessionMode('alice'), 'auth');
  t.equal(await sessionMode('alice'), 'resume');
  t.ok(existsSync(join(c.homes.alice!, TICKET_FILE)));
  const rc = await admin(c, 'revoke-cert', ['--name', 'alice', '--reason', 'keyCompromise']);
  t.equal(rc.code, 0, rc.stderr);
  t.equal(
    await codeOf(openHomeSession({ name: 'alice', home: c.homes.alice!, server: c.server.url })),
    'cert_revoked',
  );
});
