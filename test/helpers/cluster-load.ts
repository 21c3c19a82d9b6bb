// A load generator for the cluster failure tests (test/e2e/cluster-*.test.ts): clients in this process,
// on the client library, each with a `--server a,b` list, issuing operations in a loop and recording
// what the KDC acknowledged (and, apart, every attempt that ended without an answer). After the load,
// checkLoad() compares those records with the PostgreSQL store: everything acknowledged is there exactly
// once, and what was not acknowledged either completed once or left nothing behind.
//
// - key workers: enrolled clients sending keys to one passive recipient (the sink), KDC-generated and
//   end-to-end in turn (key.create; key.peer + key.reserve + key.deposit). A failed operation is not
//   retried (nothing on the wire makes it idempotent): the session is closed and opened again, which is
//   where failover happens;
// - enroll workers: an admin token for a new name (admin session), then an enrollment with it. enroll()
//   itself sends the same CSR once more when an answer is lost (the KDC replays the certificate already
//   issued); an enrollment that still got no answer is retried with the same token and a NEW key, as a
//   person re-running the command would, so a token consumed by an attempt whose answers were lost
//   must give `token_invalid`, never a second certificate.
import { join } from 'node:path';
import type pg from 'pg';
import { openAdminSession } from '../../client/admin.js';
import { enroll } from '../../client/enroll.js';
import { openKeyClient, type OpenedKeyClient } from '../../client/keys/open.js';
import type { ClientSession } from '../../client/session.js';
import { KdsError } from '../../shared/errors.js';
import { TEST_CA_PASSPHRASE } from './kds-process.js';

export type AckKind = 'kdc-key' | 'e2e-key' | 'enroll';

export interface Ack {
  kind: AckKind;
  /** The key serial, or the enrolled name. */
  id: string;
  worker: string;
  /** The node (one URL of the list) whose session acknowledged it. */
  node: string;
  /** Position in the run's order of acknowledgements (LoadRun.mark() compares with it). */
  seq: number;
  /** The certificate serial of an enrollment. */
  serialHex?: string;
}

export interface Unacked {
  kind: AckKind | 'session' | 'token';
  worker: string;
  /** The error code, or `not a KdsError: ...` (a crash, which the tests refuse). */
  code: string;
  message: string;
  /** The enrollment's name. */
  id?: string;
}

/** Codes of an operation that got no answer: the client cannot know whether it was applied. */
const NO_ANSWER = new Set(['unavailable', 'session_closed', 'timeout']);
const RETRY_PAUSE_MS = 150;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function describe(err: unknown): { code: string; message: string } {
  if (err instanceof KdsError) return { code: err.code, message: err.message };
  return { code: `not a KdsError: ${String(err)}`, message: (err as Error)?.stack ?? String(err) };
}

export class LoadRun {
  readonly acks: Ack[] = [];
  readonly unacked: Unacked[] = [];
  /** Per enrolled name: the token was acknowledged (the name was handed to enroll). */
  readonly tokens = new Set<string>();
  readonly #workers: Promise<void>[] = [];
  readonly #waiters = new Set<() => void>();
  #stopped = false;

  get stopped(): boolean {
    return this.#stopped;
  }

  /** The current position in the order of acknowledgements. */
  mark(): number {
    return this.acks.length;
  }

  ack(a: Omit<Ack, 'seq'>): void {
    this.acks.push({ ...a, seq: this.acks.length });
    for (const w of [...this.#waiters]) w();
  }

  fail(u: Unacked): void {
    this.unacked.push(u);
    for (const w of [...this.#waiters]) w();
  }

  /** Resolves once `pred` holds (checked after every ack and failure); rejects after timeoutMs. */
  waitFor(pred: () => boolean, what: string, timeoutMs = 45_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!pred()) return;
        this.#waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`load: no ${what} within ${timeoutMs} ms; ${this.summary()}`));
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  summary(): string {
    const codes = new Map<string, number>();
    for (const u of this.unacked)
      codes.set(`${u.kind}:${u.code}`, (codes.get(`${u.kind}:${u.code}`) ?? 0) + 1);
    return `${this.acks.length} acknowledged, unanswered ${JSON.stringify(Object.fromEntries(codes))}`;
  }

  /** Stop every worker after its current operation and wait for them. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#workers);
  }

  /** A client sending keys to `peer` in a loop (see the header). */
  keyWorker(opts: { name: string; home: string; servers: string; peer: string }): void {
    this.#workers.push(this.#keyLoop(opts));
  }

  async #keyLoop(opts: { name: string; home: string; servers: string; peer: string }): Promise<void> {
    let opened: OpenedKeyClient | undefined;
    let turn = 0;
    while (!this.#stopped) {
      if (opened === undefined) {
        try {
          opened = await openKeyClient({ name: opts.name, home: opts.home, server: opts.servers });
        } catch (err) {
          this.fail({ kind: 'session', worker: opts.name, ...describe(err) });
          await sleep(RETRY_PAUSE_MS);
          continue;
        }
      }
      const mode = turn++ % 2 === 0 ? 'kdc' : 'e2e';
      const kind = mode === 'kdc' ? 'kdc-key' : 'e2e-key';
      try {
        const r = await opened.client.sendKey({ to: opts.peer, mode });
        this.ack({ kind, id: r.serial, worker: opts.name, node: opened.session.server });
      } catch (err) {
        this.fail({ kind, worker: opts.name, ...describe(err) });
        await opened.close().catch(() => undefined);
        opened = undefined;
        await sleep(RETRY_PAUSE_MS);
      }
    }
    await opened?.close().catch(() => undefined);
  }

  /** Enrollments of new names `${prefix}-N` in a loop (see the header). */
  enrollWorker(opts: {
    prefix: string;
    dataDir: string;
    homes: string;
    servers: string;
    caFingerprint: string;
  }): void {
    this.#workers.push(this.#enrollLoop(opts));
  }

  async #enrollLoop(opts: {
    prefix: string;
    dataDir: string;
    homes: string;
    servers: string;
    caFingerprint: string;
  }): Promise<void> {
    let admin: ClientSession | undefined;
    let n = 0;
    while (!this.#stopped) {
      const name = `${opts.prefix}-${n++}`;
      let token: string;
      try {
        admin ??= await openAdminSession({
          dataDir: opts.dataDir,
          server: opts.servers,
          passphrase: TEST_CA_PASSPHRASE,
        });
        token = String((await admin.request('admin.token', { name })).token);
      } catch (err) {
        this.fail({ kind: 'token', worker: opts.prefix, id: name, ...describe(err) });
        await admin?.close().catch(() => undefined);
        admin = undefined;
        await sleep(RETRY_PAUSE_MS);
        continue;
      }
      this.tokens.add(name);
      // The same token again while the answer is lost (bounded: the outage test has seconds of them).
      for (let attempt = 0; attempt < 40; attempt += 1) {
        try {
          const r = await enroll({
            server: opts.servers,
            name,
            token,
            home: join(opts.homes, name),
            caFingerprint: opts.caFingerprint,
          });
          // enroll() does not say which node issued it: the first of the list that answered.
          this.ack({ kind: 'enroll', id: name, worker: opts.prefix, node: '', serialHex: r.serialHex });
          break;
        } catch (err) {
          const d = describe(err);
          this.fail({ kind: 'enroll', worker: opts.prefix, id: name, ...d });
          if (!NO_ANSWER.has(d.code)) break;
          await sleep(RETRY_PAUSE_MS);
        }
      }
    }
    await admin?.close().catch(() => undefined);
  }
}

/** One finding of checkLoad: what was checked, and the records that break it (none: it holds). */
export interface LoadCheck {
  what: string;
  problems: unknown[];
}

/** Error codes a load operation may end with when a node or the database goes away, and nothing else. */
export function unexpectedFailures(run: LoadRun, allowed: readonly string[]): Unacked[] {
  return run.unacked.filter(
    (u) =>
      !NO_ANSWER.has(u.code) &&
      !allowed.includes(u.code) &&
      // The retry of an enrollment whose first answer was lost finds its token spent: checkLoad checks
      // that it then has exactly one certificate.
      !(u.kind === 'enroll' && u.code === 'token_invalid'),
  );
}

/**
 * The store after the load (raw SQL in the store's schema), against what the run recorded: every
 * acknowledged key and certificate is there exactly once with its delivery and audit entry, and every
 * unacknowledged attempt completed once or left nothing.
 */
export async function checkLoad(
  raw: pg.Client,
  run: LoadRun,
  opts: { sink: string; keyWorkers: readonly string[] },
): Promise<LoadCheck[]> {
  const checks: LoadCheck[] = [];
  const check = (what: string, problems: unknown[]): void => {
    checks.push({ what, problems });
  };
  const keys = (
    await raw.query<{ serial: string; mode: string; owner: string; peer: string; state: string }>(
      'SELECT serial, mode, owner, peer, state FROM sym_keys WHERE owner = ANY($1)',
      [opts.keyWorkers],
    )
  ).rows;
  const bySerial = new Map(keys.map((k) => [k.serial, k]));
  const deliveries = new Map<string, number>();
  for (const r of (
    await raw.query<{ key_serial: string; n: number }>(
      `SELECT key_serial, count(*)::int AS n FROM pending_deliveries
       WHERE recipient = $1 AND kind = 'key.delivered'
         AND key_serial IN (SELECT serial FROM sym_keys WHERE owner = ANY($2))
       GROUP BY key_serial`,
      [opts.sink, opts.keyWorkers],
    )
  ).rows)
    deliveries.set(r.key_serial, r.n);
  const orphans = (
    await raw.query<{ id: number; key_serial: string }>(
      `SELECT d.id, d.key_serial FROM pending_deliveries d LEFT JOIN sym_keys k ON k.serial = d.key_serial
       WHERE d.kind <> 'msg' AND k.serial IS NULL`,
    )
  ).rows;
  const audited = new Map<string, number>();
  for (const r of (
    await raw.query<{ subject: string; n: number }>(
      `SELECT subject, count(*)::int AS n FROM audit_log
       WHERE action IN ('key.create', 'key.deposit') GROUP BY subject`,
    )
  ).rows)
    audited.set(r.subject, r.n);

  const keyAcks = run.acks.filter((a) => a.kind !== 'enroll');
  const acked = new Set(keyAcks.map((a) => a.id));
  check(
    'no serial acknowledged twice',
    keyAcks.filter((a, i) => keyAcks.findIndex((b) => b.id === a.id) !== i),
  );
  const missing = keyAcks.filter((a) => {
    const k = bySerial.get(a.id);
    return (
      k === undefined ||
      k.owner !== a.worker ||
      k.peer !== opts.sink ||
      k.mode !== (a.kind === 'kdc-key' ? 'kdc' : 'e2e') ||
      k.state !== 'active' ||
      deliveries.get(a.id) !== 1 ||
      audited.get(a.id) !== 1
    );
  });
  check(
    `every acknowledged key (${keyAcks.length}) is stored active, once, with one delivery and one audit entry`,
    missing.map((a) => ({
      ...a,
      stored: bySerial.get(a.id),
      deliveries: deliveries.get(a.id),
      audited: audited.get(a.id),
    })),
  );
  // Not acknowledged: a key whose answer was lost (active, delivered once, audited once), or an
  // end-to-end reservation never deposited (reserved: no delivery, no audit entry); never more of them
  // than a worker had unanswered attempts.
  const extra = keys.filter((k) => !acked.has(k.serial));
  const badExtra = extra.filter((k) =>
    k.state === 'active'
      ? deliveries.get(k.serial) !== 1 || audited.get(k.serial) !== 1
      : !(k.state === 'reserved' && k.mode === 'e2e' && !deliveries.has(k.serial) && !audited.has(k.serial)),
  );
  check(`the ${extra.length} unacknowledged keys completed once or are a bare reservation`, badExtra);
  for (const worker of opts.keyWorkers) {
    const lost = run.unacked.filter(
      (u) => u.worker === worker && (u.kind === 'kdc-key' || u.kind === 'e2e-key'),
    );
    const kept = extra.filter((k) => k.owner === worker);
    check(
      `${worker}: no more unacknowledged keys than unanswered sends (${lost.length})`,
      kept.length <= lost.length ? [] : kept,
    );
  }
  check(
    'one delivery per key',
    [...deliveries].filter(([, n]) => n !== 1),
  );
  check('no delivery of a key that does not exist', orphans);

  // Enrollments: per name with a token, one certificate if the token was spent, none if not; the
  // acknowledged one is that certificate.
  const names = [...run.tokens];
  const certs = (
    await raw.query<{ name: string; serial: string; status: string }>(
      'SELECT name, serial, status FROM certificates WHERE name = ANY($1)',
      [names],
    )
  ).rows;
  const tokens = (
    await raw.query<{ name: string; used_at: number | null }>(
      'SELECT name, used_at FROM enrollment_tokens WHERE name = ANY($1)',
      [names],
    )
  ).rows;
  const serials = (
    await raw.query<{ serial: string }>('SELECT serial FROM certificates GROUP BY serial HAVING count(*) > 1')
  ).rows;
  check('certificate serials are unique', serials);
  const enrollAcks = new Map(run.acks.filter((a) => a.kind === 'enroll').map((a) => [a.id, a]));
  const wrong: unknown[] = [];
  for (const name of names) {
    const mine = certs.filter((c) => c.name === name);
    const tok = tokens.filter((r) => r.name === name);
    const ack = enrollAcks.get(name);
    const spent = tok.length === 1 && tok[0]!.used_at !== null;
    const ok =
      tok.length === 1 &&
      mine.length === (spent ? 1 : 0) &&
      (ack === undefined || (mine[0]?.serial === ack.serialHex && mine[0]?.status === 'active'));
    if (!ok) wrong.push({ name, certs: mine, tokens: tok, ack });
  }
  check(`${names.length} tokens: each spent at most once, one certificate per spent token`, wrong);
  const issued = new Map<string, number>();
  for (const r of (
    await raw.query<{ subject: string; n: number }>(
      `SELECT subject, count(*)::int AS n FROM audit_log WHERE action = 'cert.issue' AND subject = ANY($1)
       GROUP BY subject`,
      [names],
    )
  ).rows)
    issued.set(r.subject, r.n);
  check(
    'one cert.issue audit entry per certificate',
    names.filter((n) => (issued.get(n) ?? 0) !== certs.filter((c) => c.name === n).length),
  );
  // A token request whose answer was lost: at most one token for that name, never used (nobody knows
  // it), and no certificate.
  const lostTokens = run.unacked.filter((u) => u.kind === 'token').map((u) => u.id!);
  const unknown = (
    await raw.query<{ name: string; used_at: number | null }>(
      `SELECT t.name, t.used_at FROM enrollment_tokens t WHERE t.name = ANY($1)
       UNION ALL SELECT c.name, -1 FROM certificates c WHERE c.name = ANY($1)`,
      [lostTokens],
    )
  ).rows;
  const perName = new Map<string, number>();
  for (const r of unknown) perName.set(r.name, (perName.get(r.name) ?? 0) + 1);
  check(
    `${lostTokens.length} unanswered token requests left at most an unused token`,
    unknown.filter((r) => r.used_at !== null || perName.get(r.name)! > 1),
  );
  return checks;
}
