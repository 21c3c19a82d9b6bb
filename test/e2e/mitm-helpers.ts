// The MITM lab matrix (docs/attacks.md), shared by test/e2e/mitm-matrix-secure.test.ts and
// mitm-matrix-insecure.test.ts (two files so tap runs the two modes in parallel). Real processes on
// loopback: one `kds server start` per mode (the insecure one with --insecure-dh and
// KDS_ALLOW_INSECURE=1) whose CA issued certificates to alice, bob, mallory (an insider), zed
// (revoked) and yan (an insider revoked during revoked-ticket) once; one `kds mitm --control` process
// per mode that switches attacks live (revoked-cert and revoked-ticket, which need zed's and yan's
// identities, get a Mallory of their own in the test process: startMitm, what `kds mitm --once` runs);
// and for every attack a victim `kds client ...` process through Mallory. Each cell asserts the
// catalog's expected outcome and defence, that the victim's error names it, that nothing secret
// reaches Mallory in secure mode (her report is grepped for every AES key alice and bob hold and for
// the message text), what she stole in insecure mode, and that the honest parties still work
// afterwards (a direct KDC key from alice to bob, verified by bob).
import { spawn, type ChildProcess } from 'node:child_process';
import type { Test } from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ATTACKS } from '../../client/mitm/catalog.js';
import type { AttackModule, Expectation } from '../../client/mitm/attack.js';
import { writeReport, type MitmReport } from '../../client/mitm/report.js';
import { startMitm } from '../../client/mitm/proxy.js';
import { loadIdentity } from '../../client/mitm/identity.js';
import { createPrivateKey } from 'node:crypto';
import { readClientHome, writeClientHome } from '../../client/home.js';
import { CertificateAuthority } from '../../server/ca/authority.js';
import { generateRsaKeyPair, type RsaKeyPair } from '../../shared/crypto/rsa.js';
import { pooledKeyPair } from '../helpers/template.js';
import { createCsr } from '../../shared/pki/csr.js';
import { ClientKeyStore } from '../../client/keys/key-store.js';
import { openKeyClient } from '../../client/keys/open.js';
import { openHomeSession } from '../../client/session.js';
import { parseCertificate } from '../../shared/pki/x509.js';
import {
  KDS_BIN,
  REPO_ROOT,
  TEST_CA_PASSPHRASE,
  initDataDir,
  kdsEnv,
  runKds,
  startServer,
  type RunResult,
  type ServerProcess,
  trackChild,
} from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';

type Mode = 'secure' | 'insecure';
const NAMES = ['alice', 'bob', 'mallory', 'zed', 'yan'] as const;
type Name = (typeof NAMES)[number];

export interface Lab {
  mode: Mode;
  server: ServerProcess;
  homes: Record<Name, string>;
  dir: string;
}

/** `kds server start`, with KDS_ALLOW_INSECURE=1 and --insecure-dh for the insecure lab. */
function startLabServer(t: Test, dataDir: string, insecure: boolean): Promise<ServerProcess> {
  return insecure
    ? startServer(t, dataDir, ['--insecure-dh'], { env: { KDS_ALLOW_INSECURE: '1' } })
    : startServer(t, dataDir);
}

/**
 * A lab: a data directory whose CA has issued certificates to alice, bob, mallory and zed (zed then
 * revoked), written to their client homes, and a KDC process serving it. The certificates are issued
 * by the CA in this process BEFORE the server starts (no concurrent writers): the same records and
 * files enrollment produces, without eight CLI processes per lab (enrollment over the network has its
 * own tests in test/e2e/channel.test.ts).
 */
export async function startLab(t: Test, mode: Mode): Promise<Lab> {
  const dataDir = await initDataDir(t);
  const homes = Object.fromEntries(NAMES.map((n) => [n, join(dataDir, 'clients', n)])) as Record<
    Name,
    string
  >;
  const ca = await CertificateAuthority.open(dataDir, { passphrase: TEST_CA_PASSPHRASE });
  try {
    for (const name of NAMES) {
      const keys = await keysFor(name);
      const csr = await createCsr(name, keys.privateKeyPem, keys.publicKeyPem);
      const cert = await ca.issueFromCsr(csr, { name, actor: 'test' });
      writeClientHome(
        homes[name],
        { privateKey: createPrivateKey(keys.privateKeyPem), certPem: cert.pem, caPem: ca.caCertPem },
        undefined,
      );
    }
    await ca.revoke({ name: 'zed' }, 'keyCompromise', 'test');
  } finally {
    await ca.close();
  }
  // No assertion here: an assertion at the top level before the subtests exist ends tap's root test.
  const server = await startLabServer(t, dataDir, mode === 'insecure');
  return { mode, server, homes, dir: tempDir(t, 'kds-mitm-') };
}

/**
 * The lab's key pairs: from the run's pool (test/helpers/template.ts; slot 0 is kdc-in-process.ts's), one
 * per name, or generated once per test process for another name.
 */
const POOLED = new Map([
  ['alice', 1],
  ['bob', 2],
  ['mallory', 3],
  ['zed', 4],
  ['yan', 5],
]);
const keyCache = new Map<string, Promise<RsaKeyPair>>();
function keysFor(name: string): Promise<RsaKeyPair> {
  let p = keyCache.get(name);
  if (p === undefined) {
    const slot = POOLED.get(name);
    keyCache.set(name, (p = slot === undefined ? generateRsaKeyPair(2048) : pooledKeyPair(slot)));
  }
  return p;
}

/**
 * Mallory for one victim connection with an identity of her own (zed's revoked certificate, yan's about
 * to be revoked), in this process: what `kds mitm --once --identity H --report R` runs (loadIdentity,
 * startMitm, the report written once the connection and its side tasks have ended), without a process
 * of its own for each of the two cells; the lab's controlled Mallory is the `kds mitm` process.
 */
async function startOwnMallory(
  t: Test,
  lab: Lab,
  attack: AttackModule,
  identity: Name,
): Promise<{ url: string; finish(reportPath: string): Promise<void> }> {
  const mitm = await startMitm({
    attack,
    target: lab.server.url,
    host: '127.0.0.1',
    port: 0,
    identity: loadIdentity(lab.homes[identity]),
  });
  t.teardown(() => mitm.close());
  return {
    url: mitm.url,
    async finish(reportPath) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        mitm.connectionsEnded(1),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, 45_000))),
      ]);
      clearTimeout(timer);
      writeReport(reportPath, await mitm.close());
    },
  };
}

/**
 * One Mallory process for a whole lab (`kds mitm --control --json`): `attack NAME` on stdin switches
 * attacks live, `off` ends the running one and prints its summary (its report file is written first).
 * She owns mallory's identity (impersonate-client, unknown-key-share, stale-key).
 */
export class ControlledMallory {
  readonly url: string;
  readonly reportPath: string;
  readonly #child: ChildProcess;
  readonly #events: { event: string; attack?: string }[];
  readonly #wake: Set<() => void>;

  private constructor(
    url: string,
    reportPath: string,
    child: ChildProcess,
    events: { event: string }[],
    wake: Set<() => void>,
  ) {
    this.url = url;
    this.reportPath = reportPath;
    this.#child = child;
    this.#events = events;
    this.#wake = wake;
  }

  static start(t: Test, lab: Lab): Promise<ControlledMallory> {
    const reportPath = join(lab.dir, 'controlled.json');
    const args = [
      KDS_BIN,
      'mitm',
      '--listen',
      '127.0.0.1:0',
      '--target',
      lab.server.url,
      '--attack',
      'passthrough',
    ];
    args.push(
      '--control',
      '--json',
      '--report',
      reportPath,
      '--identity',
      lab.homes.mallory,
      '--hold-ms',
      '200',
    );
    const child = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      env: kdsEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    trackChild(child);
    const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
    t.teardown(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    });
    const events: { event: string; url?: string }[] = [];
    const wake = new Set<() => void>();
    let buffer = '';
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`mallory did not start: ${stderr}`)), 30_000);
      void exited.then(() => reject(new Error(`mallory exited: ${stderr}`)));
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        buffer += d;
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const e = JSON.parse(buffer.slice(0, nl)) as { event: string; url?: string };
          buffer = buffer.slice(nl + 1);
          events.push(e);
          if (e.event === 'listening') {
            clearTimeout(timer);
            resolve(new ControlledMallory(e.url!, reportPath, child, events, wake));
          }
          for (const w of [...wake]) w();
        }
      });
    });
  }

  /** Resolves once an event at index >= `from` matches `pred`. */
  #waitFor(
    from: number,
    pred: (e: { event: string; attack?: string }) => boolean,
    what: string,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (!this.#events.slice(from).some(pred)) return false;
        this.#wake.delete(check);
        clearTimeout(timer);
        resolve();
        return true;
      };
      const timer = setTimeout(() => {
        this.#wake.delete(check);
        const seen = JSON.stringify(this.#events.slice(from)).slice(0, 2000);
        reject(new Error(`mallory: no ${what} in time; events: ${seen}`));
      }, 60_000);
      if (!check()) this.#wake.add(check);
    });
  }

  async attack(name: string): Promise<void> {
    const from = this.#events.length;
    this.#child.stdin!.write(`attack ${name}\n`);
    await this.#waitFor(from, (e) => e.event === 'attack' && e.attack === name, `switch to ${name}`);
  }

  /** Ends the running attack; returns the report file it wrote, as text. */
  async end(): Promise<string> {
    const from = this.#events.length;
    this.#child.stdin!.write('off\n');
    await this.#waitFor(from, (e) => e.event === 'summary', 'summary');
    return readFileSync(this.reportPath, 'utf8');
  }
}

/** `kds client <args> --home H --server U [--insecure-dh]` (KDS_ALLOW_INSECURE=1 for insecure clients). */
function victim(lab: Lab, name: Name, args: string[], server: string, insecure: boolean): Promise<RunResult> {
  const full = ['client', ...args, '--name', name, '--home', lab.homes[name], '--server', server];
  if (insecure) full.push('--insecure-dh');
  return runKds(full, { env: insecure ? { KDS_ALLOW_INSECURE: '1' } : {}, timeoutMs: 60_000 });
}

/** Every AES key alice and bob hold, hex and base64 (what must never appear in a secure report). */
function heldKeys(lab: Lab): { serial: string; hex: string; b64: string }[] {
  const out: { serial: string; hex: string; b64: string }[] = [];
  for (const name of ['alice', 'bob'] as const) {
    const files = readClientHome(lab.homes[name], undefined);
    for (const k of ClientKeyStore.open(lab.homes[name], name, files.privateKey).listKeys()) {
      if (k.key === undefined) continue;
      out.push({ serial: k.serial, hex: Buffer.from(k.key, 'base64').toString('hex'), b64: k.key });
    }
  }
  return out;
}

/** A KDC key from alice to bob straight to the KDC (no Mallory), not yet fetched by bob. */
async function directKey(lab: Lab, mode: 'kdc' | 'e2e'): Promise<string> {
  const a = await openKeyClient({ name: 'alice', home: lab.homes.alice, server: lab.server.url });
  try {
    return (await a.client.sendKey({ to: 'bob', mode })).serial;
  } finally {
    await a.close();
  }
}

/** The honest parties still work: a direct key from alice to bob that bob receives and verifies. */
async function honestExchange(lab: Lab): Promise<{ serial: string; bobState: string | undefined }> {
  const serial = await directKey(lab, 'kdc');
  // Opening bob's key client takes his queued deliveries and verifies each (key.verify: valid).
  const b = await openKeyClient({ name: 'bob', home: lab.homes.bob, server: lab.server.url });
  const bobState = b.client.store.getKey(serial)?.state;
  await b.close();
  return { serial, bobState };
}

interface CellPlan {
  victim: Name;
  args: string[];
  /** Mallory's identity: `mallory` (the controlled Mallory has it) or another (a Mallory of her own). */
  identity?: Name;
  /** Runs before Mallory starts (queue a delivery for bob, ...). */
  before?: (lab: Lab) => Promise<void>;
}

const SECRET_TEXT = 'the eagle lands at dawn';

function ownSerial(lab: Lab, name: Name): string {
  return parseCertificate(readClientHome(lab.homes[name], undefined).certPem).serialHex;
}

/** An honest session of `name` straight to the KDC, which leaves a resumption ticket in its home. */
async function leaveTicket(lab: Lab, name: Name): Promise<void> {
  const session = await openHomeSession({ name, home: lab.homes[name], server: lab.server.url });
  try {
    // The ticket was asked for first: its answer (and the file) comes before this one.
    await session.request('ping', {});
  } finally {
    await session.close();
  }
}

function planFor(attack: string, lab: Lab, insecureClient: boolean): CellPlan {
  const sendKdcKey: CellPlan = {
    victim: 'alice',
    args: ['send-key', '--to', 'bob', '--mode', 'kdc', '--json'],
  };
  switch (attack) {
    case 'passthrough':
      // A message under an active key (the previous honest exchange made one): the text must not leak.
      return {
        victim: 'alice',
        args: ['send', '--to', 'bob', '--message', SECRET_TEXT, '--json'],
        before: async (lab) => void (await honestExchange(lab)),
      };
    case 'reorder':
    case 'drop':
      // Bob fetches a queued delivery: key.sync pushes it right before its reply, two records in a row.
      return {
        victim: 'bob',
        args: ['keys', '--json'],
        before: async (lab) => void (await directKey(lab, 'kdc')),
      };
    case 'unknown-key-share':
      return {
        victim: 'bob',
        args: ['keys', '--json'],
        identity: 'mallory',
        before: async (lab) => void (await directKey(lab, 'e2e')),
      };
    case 'relay-substitute':
      return { victim: 'alice', args: ['send-key', '--to', 'bob', '--json'] };
    case 'impersonate-client':
    case 'stale-key':
      return { ...sendKdcKey, identity: 'mallory' };
    case 'revoked-cert':
      return { ...sendKdcKey, identity: 'zed' };
    case 'ticket-replay':
    case 'resume-downgrade':
      // An insecure victim has no ticket. The key commands always run a full handshake; `cert-status`
      // resumes with the ticket alice's honest session left her.
      if (insecureClient) return sendKdcKey;
      return {
        victim: 'alice',
        args: ['cert-status', '--serial', ownSerial(lab, 'alice'), '--json'],
        before: (lab) => leaveTicket(lab, 'alice'),
      };
    case 'revoked-ticket':
      // yan, an insider: Mallory keeps a ticket of his, revokes his certificate, then resumes.
      return { ...sendKdcKey, identity: 'yan' };
    default:
      return sendKdcKey;
  }
}

export interface CellOptions {
  /** The victim's mode (default: the lab's). */
  clientInsecure?: boolean;
  label?: string;
  expect?: Expectation;
}

/**
 * One attack against one lab: Mallory (the lab's controlled one, or one of her own in this process when
 * the attack needs another identity: revoked-cert presents zed's revoked certificate), the victim, and
 * every assertion of the matrix.
 */
export async function runCell(
  t: Test,
  lab: Lab,
  controlled: ControlledMallory,
  attack: AttackModule,
  opts: CellOptions = {},
): Promise<void> {
  const insecureClient = opts.clientInsecure ?? lab.mode === 'insecure';
  const expected = opts.expect ?? (insecureClient ? attack.insecure : attack.secure);
  const plan = planFor(attack.name, lab, insecureClient);
  await plan.before?.(lab);
  let raw: string;
  let v: RunResult;
  if (plan.identity === undefined || plan.identity === 'mallory') {
    await controlled.attack(attack.name);
    v = await victim(lab, plan.victim, plan.args, controlled.url, insecureClient);
    raw = await controlled.end();
  } else {
    const reportPath = join(lab.dir, `${attack.name}-${opts.label ?? lab.mode}.json`);
    const mallory = await startOwnMallory(t, lab, attack, plan.identity);
    v = await victim(lab, plan.victim, plan.args, mallory.url, insecureClient);
    await mallory.finish(reportPath);
    raw = readFileSync(reportPath, 'utf8');
  }
  const report = JSON.parse(raw) as MitmReport;
  const why = `${report.summary}\nvictim (${v.code}): ${v.stdout}${v.stderr}`;

  t.equal(report.attack, attack.name);
  t.equal(report.outcome, expected.outcome, `outcome: ${why}`);
  if (expected.outcome === 'failed') t.equal(report.defence, expected.defence, `defence: ${why}`);
  t.ok(report.frames.length > 0, 'the report records the frames');
  if (v.code !== 0) {
    // --json: the error object carries the defence (shared/defences.ts via cli/output.ts).
    const out = JSON.parse(v.stdout) as { error: { code: string }; defence?: string; explanation?: string };
    t.ok(
      out.defence !== undefined && out.explanation !== undefined,
      `the victim's error names the defence: ${v.stdout}`,
    );
  }

  if (!insecureClient) {
    // Secure: nothing stolen, and no byte of any key the honest parties hold, nor the message text.
    t.equal(report.stolen, null, 'secure: nothing stolen');
    const keys = heldKeys(lab);
    const leaked = keys.filter((k) => raw.includes(k.hex) || raw.includes(k.b64));
    t.same(
      leaked.map((k) => k.serial),
      [],
      `secure: none of ${keys.length} AES keys held by alice and bob is in the report`,
    );
    t.notOk(raw.includes(SECRET_TEXT), 'secure: no plaintext in the report');
  } else if (
    expected.outcome === 'succeeded' &&
    ['substitute-dh', 'impersonate-server', 'impersonate-client'].includes(attack.name)
  ) {
    t.ok(
      report.stolen !== null && report.stolen.keys.length > 0,
      'insecure: Mallory stole at least one AES key',
    );
    const held = new Map(heldKeys(lab).map((k) => [k.serial, k.hex]));
    if (attack.name !== 'impersonate-client') {
      // The very key the victim received from the KDC.
      const sent = JSON.parse(v.stdout) as { serial: string; fingerprint: string };
      const stolen = report.stolen?.keys.find((k) => k.serial === sent.serial);
      t.ok(stolen !== undefined, `the victim's key ${sent.serial} is in Mallory's loot`);
      t.equal(stolen?.fingerprint, sent.fingerprint, 'same fingerprint as the victim printed');
      t.equal(stolen?.key, held.get(sent.serial), "byte for byte the key in alice's store");
    }
  }

  const honest = await honestExchange(lab);
  t.equal(
    honest.bobState,
    'active',
    `the honest parties still work after ${attack.name}: bob verified ${honest.serial}`,
  );
}

export { ATTACKS };
