// `kds mitm --ablation`: the whole ablation table, live (docs/attacks.md, "Ablation"). Self-contained
// like `kds demo`: a temporary directory (0700) with a CA of its own (`kds server init` as a child
// process), certificates for alice, bob, mallory, zed (zed then revoked) and yan (an insider revoked
// during revoked-ticket); a real KDC child process with every defence on that the all-on cells share
// one after the other (each sets its own scene, as in the matrix test), and for every cell with switches off a fresh copy of the lab and a KDC of its own;
// the honest clients and the victim as `kds client` children, and Mallory in this process. Every attack runs twice: with all defences on, and with its row's
// switches off (client/mitm/ablation-plan.ts); only the children of that second run get the switches
// (`--lab-disable`, with KDS_ALLOW_INSECURE=1 in their environment only). Nothing is left behind: every
// child is stopped and the directory removed, on success, on failure and on Ctrl-C.
//
// Outcomes are Mallory's own verdicts (client/mitm/verdict.ts): she judges each attack by what she saw
// (a replayed request answered, a victim that carried on after an altered record, a session the KDC
// accepted), never by which switches were given.
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { EnvironmentError } from '../../shared/errors.js';
import type { LabSwitch } from '../../shared/lab-switches.js';
import { throwawayScene, type ProcessGroup, type KdcProcess } from '../demo/processes.js';
import type { Outcome } from './attack.js';
import { ABLATION_ROWS, cellPlan, rowSwitches, type AblationRow, type LabName } from './ablation-plan.js';
import { findAttack } from './catalog.js';
import { loadIdentity } from './identity.js';
import { startMitm } from './proxy.js';
import type { MitmReport } from './report.js';

const NAMES: readonly LabName[] = ['alice', 'bob', 'mallory', 'zed', 'yan'];
/** The lab's CA: RSA-2048 to be quick (the default is 3072), as in `kds demo`. */
const LAB_CA_BITS = '2048';
const VICTIM_TIMEOUT_MS = 45_000;

/** One line of the JSON report (`kds mitm --ablation --report FILE`). */
export interface AblationResult {
  attack: string;
  /** The switches off in the row's second run (KDC and clients together). */
  defences: LabSwitch[];
  /** Mallory's verdict with every defence on. */
  withDefences: Outcome;
  /** Mallory's verdict with `defences` off. */
  without: Outcome;
  /** The defence that stopped the attack with every defence on (null unless it failed). */
  stoppedBy: string | null;
  /** The defence that still stopped it with `defences` off (null unless it failed). */
  stoppedWithout: string | null;
}

/** A finished cell, for progress output. */
export interface CellEvent {
  attack: string;
  defences: LabSwitch[];
  outcome: Outcome;
  summary: string;
}

/**
 * Issues certificates to `names` from the CA in `dataDir` (passphrase given) into client homes under
 * `homesDir/<name>`, then revokes `revoke`'s, and makes the KDC's key-encryption key in `dataDir`.
 * Supplied by the caller (cli/ablation-lab.ts): client/ never links the CA's code, and no KDC runs yet,
 * so it is the only writer.
 */
export type IssueLabIdentities = (
  dataDir: string,
  passphrase: string,
  homesDir: string,
  names: readonly string[],
  revoke: string,
) => Promise<void>;

export interface AblationOptions {
  issueIdentities: IssueLabIdentities;
  /** The attacks to run (default: every row, in catalog order). */
  attacks?: readonly string[];
  /** Cells run at once (default 2: one per core of a small machine). */
  concurrency?: number;
  onCell?: (cell: CellEvent) => void;
  signal?: AbortSignal;
}

interface Lab {
  tmp: string;
  base: string;
  procs: ProcessGroup;
  cells: number;
}

/** Runs the table; resolves with one result per row, in the order of ABLATION_ROWS. */
export async function runAblation(opts: AblationOptions): Promise<AblationResult[]> {
  const rows = ABLATION_ROWS.filter((r) => opts.attacks === undefined || opts.attacks.includes(r.attack));
  const { tmp, passphrase, procs, lastResort } = throwawayScene('kds-ablation-');
  const abort = (): void => void procs.stopAll(500);
  opts.signal?.addEventListener('abort', abort, { once: true });
  try {
    const lab: Lab = { tmp, base: join(tmp, 'base'), procs, cells: 0 };
    await prepareLab(lab, passphrase, opts.issueIdentities);
    type Job = { row: AblationRow; off: boolean };
    // The all-on cells share one KDC, one after the other (as the matrix test does: each cell sets its
    // own scene); every cell with switches off gets a fresh copy of the lab and a KDC of its own.
    const onJobs: Job[] = rows.map((row) => ({ row, off: false }));
    const offJobs: Job[] = rows.map((row) => ({ row, off: true }));
    let shared: Promise<Scene> | undefined;
    const results = new Map<string, { on?: MitmReport; off?: MitmReport }>();
    const worker = async (takesAllOn: boolean): Promise<void> => {
      const next = (): Job | undefined =>
        takesAllOn ? (onJobs.shift() ?? offJobs.shift()) : offJobs.shift();
      for (let job = next(); job !== undefined; job = next()) {
        if (opts.signal?.aborted === true) throw new EnvironmentError('unavailable', 'interrupted');
        let report: MitmReport;
        if (job.off) {
          const scene = await openScene(lab, job.row.kdc);
          try {
            report = await playCell(lab, scene, job.row, job.row.client);
          } finally {
            await scene.close();
          }
        } else {
          shared ??= openScene(lab, []);
          report = await playCell(lab, await shared, job.row, []);
        }
        const entry = results.get(job.row.attack) ?? {};
        if (job.off) entry.off = report;
        else entry.on = report;
        results.set(job.row.attack, entry);
        opts.onCell?.({
          attack: job.row.attack,
          defences: job.off ? rowSwitches(job.row) : [],
          outcome: report.outcome,
          summary: report.summary,
        });
      }
    };
    const n = Math.max(1, Math.min(opts.concurrency ?? 2, rows.length * 2));
    try {
      await Promise.all(Array.from({ length: n }, (_, i) => worker(i === 0)));
    } finally {
      await (await shared?.catch(() => undefined))?.close();
    }
    return rows.map((row) => {
      const r = results.get(row.attack)!;
      return {
        attack: row.attack,
        defences: rowSwitches(row),
        withDefences: r.on!.outcome,
        without: r.off!.outcome,
        stoppedBy: r.on!.defence,
        stoppedWithout: r.off!.defence,
      };
    });
  } finally {
    opts.signal?.removeEventListener('abort', abort);
    await procs.stopAll(2_000);
    rmSync(tmp, { recursive: true, force: true });
    process.off('exit', lastResort);
  }
}

/**
 * The lab every cell copies: a data directory whose CA issued certificates to alice, bob, mallory, zed
 * (zed's then revoked) and yan, written to their client homes, and a KDC's key-encryption key. Issued by
 * the CA in this process before any KDC runs (no concurrent writer): the same records and files
 * enrollment and a KDC's first start produce.
 */
async function prepareLab(lab: Lab, passphrase: string, issue: IssueLabIdentities): Promise<void> {
  const dataDir = join(lab.base, 'certs');
  mkdirSync(lab.base, { recursive: true, mode: 0o700 });
  await lab.procs.runKds(['server', 'init', '--data-dir', dataDir, '--ca-key-bits', LAB_CA_BITS, '--json']);
  await issue(dataDir, passphrase, join(lab.base, 'homes'), NAMES, 'zed');
}

function labArgs(off: readonly LabSwitch[]): string[] {
  return off.flatMap((s) => ['--lab-disable', s]);
}

const LAB_ENV = { KDS_ALLOW_INSECURE: '1' };

/** A copy of the lab and a KDC serving it, with `kdcOff` switched off. */
interface Scene {
  dir: string;
  kdc: KdcProcess;
  close(): Promise<void>;
}

async function openScene(lab: Lab, kdcOff: readonly LabSwitch[]): Promise<Scene> {
  const dir = join(lab.tmp, `cell-${++lab.cells}`);
  cpSync(lab.base, dir, { recursive: true });
  try {
    const kdc = await lab.procs.startKdc(
      ['--data-dir', join(dir, 'certs'), ...labArgs(kdcOff)],
      kdcOff.length > 0 ? LAB_ENV : {},
    );
    return {
      dir,
      kdc,
      // Killed, not stopped gracefully: its cell is over (Mallory has reported) and the directory it
      // would close its store in is removed next.
      close: async () => {
        await kdc.kill();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** One attack in a scene: the honest steps, Mallory, the victim (with `clientOff`), Mallory's report. */
async function playCell(
  lab: Lab,
  scene: Scene,
  row: AblationRow,
  clientOff: readonly LabSwitch[],
): Promise<MitmReport> {
  const { dir, kdc } = scene;
  const env = LAB_ENV;
  const home = (name: LabName): string => join(dir, 'homes', name);
  const client = (
    name: LabName,
    args: string[],
    server: string,
    off: readonly LabSwitch[] = clientOff,
  ): Promise<ChildResult> =>
    runChild(
      lab.procs,
      ['client', ...args, '--name', name, '--home', home(name), '--server', server, ...labArgs(off)],
      off.length > 0 ? env : {},
    );
  // The honest steps that set the scene keep their authentication (an end-to-end key needs it); they
  // share the record-layer switches, without which they could not talk to this KDC at all.
  const honestOff = clientOff.filter((s) => s !== 'authentication');
  const plan = cellPlan(row.attack);
  const ownSerial = (name: LabName): string[] => ['--serial', loadIdentity(home(name)).cert.serialHex];
  for (const step of plan.before ?? []) {
    if (step === 'bob-keys') await expectOk(client('bob', ['keys', '--json'], kdc.url, honestOff));
    else if (step === 'alice-ticket')
      await expectOk(client('alice', ['cert-status', ...ownSerial('alice'), '--json'], kdc.url, honestOff));
    else {
      const mode = step === 'e2e-key' ? 'e2e' : 'kdc';
      await expectOk(
        client('alice', ['send-key', '--to', 'bob', '--mode', mode, '--json'], kdc.url, honestOff),
      );
    }
  }
  const mitm = await startMitm({
    attack: findAttack(row.attack),
    target: kdc.url,
    host: '127.0.0.1',
    port: 0,
    holdMs: 200,
    ...(plan.identity === undefined ? {} : { identity: loadIdentity(home(plan.identity)) }),
  });
  try {
    await client(plan.victim, [...plan.args, ...(plan.ownSerial ? ownSerial(plan.victim) : [])], mitm.url);
    await Promise.race([mitm.connectionsEnded(1), delay(5_000)]);
  } catch (err) {
    await mitm.close().catch(() => undefined);
    throw err;
  }
  // Ends the attack: live links cut, side tasks (a replayed handshake, Mallory's own sessions) awaited.
  return await mitm.close();
}

interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runChild(procs: ProcessGroup, args: string[], env: Record<string, string>): Promise<ChildResult> {
  const child = procs.spawnKds(args, env);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), VICTIM_TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.on('error', () => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr });
    });
  });
}

async function expectOk(p: Promise<ChildResult>): Promise<void> {
  const r = await p;
  if (r.code !== 0) {
    const last = `${r.stdout}${r.stderr}`.trim().split('\n').slice(-3).join(' ');
    throw new EnvironmentError('unavailable', `an honest step of the ablation lab failed: ${last}`);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
