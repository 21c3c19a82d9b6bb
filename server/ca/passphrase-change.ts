// `kds server passphrase`: re-encrypt every secret kept under the CA passphrase with a new one, offline
// (no KDC may run on the data directory: it holds the old passphrase and would write new files under it).
//
// Under the passphrase: root_private_key.pem, server/key.pem, admin/key.pem (PKCS#8, credentials.ts),
// the key-encryption keys kek/kek-v<N>.bin (server/keys/kek.ts: the same KEKs, re-encrypted, so every
// key wrapped under them, and the resumption ticket keys in the store's `ticket_keys` setting, still
// open: nothing in the store is re-wrapped), the generated <data-dir>/ca/passphrase when it holds the
// current one, and on a shared store the copies in the `ca.credentials` setting (shared-credentials.ts).
//
// Steps, each one durable before the next:
//   1. verify that the current passphrase opens every one of them (nothing is written before);
//   2. stage the re-encrypted files in <data-dir>/ca/passphrase-change/ (atomic writes, 0600), with a
//      copy of the old root key (previous-root_private_key.pem), so that a re-run can still recognise
//      the old passphrase after the root key was replaced;
//   3. write plan.json there: the commit point. Before it, nothing was replaced and a re-run discards
//      the stage and starts over (with the old passphrase: the new one was never in effect);
//   4. rename each staged file over its target (KEKs, KDC key, admin key, root key, ca/passphrase last);
//   5. copy the new files into the store's `ca.credentials` (when the store keeps them), audit entry;
//   6. remove the stage.
// After a crash between 3 and 6 the files are a mix of old and new: a re-run, with the old or the new
// passphrase as the current one, finishes steps 4-6 (the plan lists what is left), and `kds server
// start` refuses to start on such a directory (`config`) instead of failing later at request time.
import type { KeyObject } from 'node:crypto';
import { readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { randomBytes } from '../../shared/crypto/random.js';
import { AuthError, EnvironmentError, InputError } from '../../shared/errors.js';
import { entryKind } from '../../io/fs-errors.js';
import { ensurePrivateDir, fsyncDir, PRIVATE_FILE_MODE, writeFileAtomic } from '../../io/fs-atomic.js';
import { caPaths, ROOT_CA_NAME, type CaPaths } from '../../io/ca-files.js';
import { resolveCaPassphrase, type PassphraseOptions } from '../../io/ca-passphrase.js';
import { lockDataDir } from '../../io/data-dir-lock.js';
import { crashPoint } from '../../io/crash-point.js';
import { openAsyncStore } from '../store/open-store.js';
import { checkKekFile, kekFiles, reencryptKekFile } from '../keys/kek.js';
import { decryptPrivateKey, encryptPrivateKey, readText } from './credentials.js';
import { materializeCredentials, storeCredentials } from './shared-credentials.js';
import { equalBytes } from '../../shared/crypto/ct.js';

const STAGE_DIR = 'passphrase-change';
const PLAN_FILE = 'plan.json';
const PREVIOUS_ROOT = 'previous-root_private_key.pem';
const CREDENTIALS_SETTING = 'ca.credentials';
/** The same size as a passphrase `kds server init` generates (io/ca-passphrase.ts). */
const GENERATED_BYTES = 32;

/** Where the new passphrase came from (the audit entry and the summary say it; never the passphrase). */
export type NewPassphraseSource = 'file' | 'env' | 'option' | 'generated';

export interface PassphraseChangeOptions {
  dataDir: string;
  storeUrl?: string | undefined;
  /** How to find the current passphrase (the usual way: option, --passphrase-file, env, ca/passphrase). */
  current?: PassphraseOptions;
  /** The new passphrase; without it one is generated, only where the current one is ca/passphrase. */
  next?: { passphrase: string; source: Exclude<NewPassphraseSource, 'generated'> };
  actor: string;
}

export interface PassphraseChangeResult {
  dataDir: string;
  /** What was re-encrypted, relative to the data directory. */
  files: string[];
  kekVersions: number[];
  /** The store's `ca.credentials` copy was rewritten (PostgreSQL stores keep one). */
  storeCopy: boolean;
  newPassphraseSource: NewPassphraseSource;
  /** ca/passphrase now holds the new passphrase (generated, or it held the old one). */
  passphraseFile?: string;
  /** An interrupted change was finished rather than a new one made. */
  resumed: boolean;
  warnings: string[];
}

interface PlanEntry {
  /** File name inside the stage. */
  staged: string;
  /** Target, relative to the data directory. */
  target: string;
}

interface Plan {
  v: 1;
  entries: PlanEntry[];
  kekVersions: number[];
  newPassphraseSource: NewPassphraseSource;
}

function stageDir(paths: CaPaths): string {
  return join(paths.caDir, STAGE_DIR);
}

/**
 * Refuse to start a KDC on a data directory whose passphrase change committed but did not finish: its
 * files are under two passphrases, and whichever one the KDC got, some secret would fail at request
 * time (a KDC-generated key with `bad_passphrase`). One stat; called before the CA is opened.
 */
export function assertNoPassphraseChangePending(dataDir: string): void {
  const plan = join(stageDir(caPaths(dataDir)), PLAN_FILE);
  if (entryKind(plan) !== 'missing') {
    throw new EnvironmentError(
      'config',
      `an interrupted \`kds server passphrase\` left ${dataDir} half re-encrypted: run it again (with the old or the new passphrase) before starting the KDC`,
      { path: plan },
    );
  }
}

export async function changeCaPassphrase(opts: PassphraseChangeOptions): Promise<PassphraseChangeResult> {
  const paths = caPaths(opts.dataDir);
  const url = opts.storeUrl === '' ? undefined : opts.storeUrl;
  const missing = (): EnvironmentError =>
    new EnvironmentError('ca_missing', `no CA in ${opts.dataDir}: run \`kds server init\` first`, {
      dataDir: opts.dataDir,
    });
  if (entryKind(opts.dataDir) === 'missing' || (url === undefined && entryKind(paths.store) === 'missing')) {
    throw missing();
  }
  // The KDC's lock: refused while a KDC runs here, and no KDC starts until this is done.
  const unlock = lockDataDir(opts.dataDir);
  try {
    const store = await openAsyncStore({ dataDir: opts.dataDir, url });
    try {
      // A node of a shared store that lacks a file gets it first, so that it is re-encrypted too.
      if (url !== undefined) await materializeCredentials(store, paths);
      if (entryKind(paths.rootKey) === 'missing') throw missing();
      const current = resolveCaPassphrase(opts.dataDir, opts.current ?? {});
      const warnings = [...current.warnings];
      const stage = stageDir(paths);
      let plan = readPlan(stage);
      const resumed = plan !== undefined;
      if (plan !== undefined) {
        checkPending(stage, paths, current.passphrase, opts.next?.passphrase);
      } else {
        // A stage without a plan never committed: nothing was replaced, start over.
        rmSync(stage, { recursive: true, force: true });
        plan = await stageChange(stage, paths, current, opts.next, warnings);
        crashPoint('passphrase-staged');
        writeFileAtomic(join(stage, PLAN_FILE), JSON.stringify(plan), PRIVATE_FILE_MODE);
      }
      install(stage, paths, plan);
      // The other nodes of a shared store read their missing files from this copy.
      const storeCopy = (await store.getSetting(CREDENTIALS_SETTING)) !== undefined;
      if (storeCopy) await storeCredentials(store, paths);
      const files = plan.entries.map((e) => e.target);
      await store.appendAudit({
        at: Date.now(),
        actor: opts.actor,
        action: 'ca.passphrase',
        subject: ROOT_CA_NAME,
        detail: {
          files,
          kekVersions: plan.kekVersions,
          storeCopy,
          newPassphraseSource: plan.newPassphraseSource,
          ...(resumed ? { resumed } : {}),
        },
      });
      rmSync(stage, { recursive: true, force: true });
      fsyncDir(paths.caDir);
      const passphraseFile = files.includes(relative(paths.dataDir, paths.passphrase))
        ? paths.passphrase
        : undefined;
      return {
        dataDir: opts.dataDir,
        files,
        kekVersions: plan.kekVersions,
        storeCopy,
        newPassphraseSource: plan.newPassphraseSource,
        ...(passphraseFile === undefined ? {} : { passphraseFile }),
        resumed,
        warnings,
      };
    } finally {
      await store.close();
    }
  } finally {
    unlock();
  }
}

/** Steps 1 and 2: verify everything opens with the current passphrase, then stage the new files. */
async function stageChange(
  stage: string,
  paths: CaPaths,
  current: { passphrase: string; source: string },
  next: PassphraseChangeOptions['next'],
  warnings: string[],
): Promise<Plan> {
  for (const staged of [join(paths.serverDir, 'next-key.pem'), join(paths.serverDir, 'next-cert.pem')]) {
    if (entryKind(staged) !== 'missing') {
      throw new EnvironmentError(
        'config',
        `${staged}: an interrupted \`kds server renew\` is pending; \`kds server start\` finishes it, then change the passphrase`,
      );
    }
  }
  // ca/passphrase follows the change when it holds the current passphrase: it is what every command
  // reads when given none, and left as it was it would name a passphrase that opens nothing any more.
  const stored = storedPassphrase(paths);
  const storedIsCurrent = stored !== undefined && samePassphrase(stored, current.passphrase);
  if (stored !== undefined && !storedIsCurrent) {
    warnings.push(`${paths.passphrase} does not hold the current passphrase: left as it is`);
  }
  let newPassphrase: string;
  let newSource: NewPassphraseSource;
  if (next !== undefined) {
    newPassphrase = next.passphrase;
    newSource = next.source;
  } else if (current.source === 'stored') {
    newPassphrase = randomBytes(GENERATED_BYTES).toString('base64url');
    newSource = 'generated';
  } else {
    throw new EnvironmentError(
      'config',
      'no new CA passphrase: pass --new-passphrase-file FILE or set KDS_NEW_CA_PASSPHRASE (one is generated only when the current one is <data-dir>/ca/passphrase)',
    );
  }
  if (samePassphrase(newPassphrase, current.passphrase)) {
    throw new InputError('bad_request', 'the new CA passphrase is the current one');
  }

  // 1. Everything must open before anything is written: with the current passphrase, or already with
  // the new one (then it is left as it is). The second makes a set changed halfway by hand (the PEMs
  // re-encrypted with openssl, the KEKs not) one this command can finish.
  // admin/key.pem exists only where init ran (a node filled from a shared store has none).
  const pems = [
    paths.serverKey,
    ...(entryKind(paths.adminKey) === 'missing' ? [] : [paths.adminKey]),
    paths.rootKey,
  ];
  const keys: { path: string; key: KeyObject }[] = [];
  for (const path of pems) {
    const pem = readText(path);
    try {
      keys.push({ path, key: decryptPrivateKey(pem, current.passphrase) });
    } catch (err) {
      if (!opensWith(() => decryptPrivateKey(pem, newPassphrase))) throw err;
    }
  }
  const keks: { version: number; path: string }[] = [];
  for (const k of kekFiles(paths.dataDir)) {
    try {
      await checkKekFile(k.path, k.version, current.passphrase);
      keks.push(k);
    } catch (err) {
      if (!(err instanceof AuthError) || newSource === 'generated') throw err;
      await checkKekFile(k.path, k.version, newPassphrase).catch(() => {
        throw err;
      });
    }
  }

  // 2. Stage. The order of the entries is the order of the renames: the root key late (until it is
  // replaced, the old passphrase opens it) and ca/passphrase last (until then it names the old one).
  ensurePrivateDir(paths.caDir);
  ensurePrivateDir(stage);
  writeFileAtomic(join(stage, PREVIOUS_ROOT), readText(paths.rootKey), PRIVATE_FILE_MODE);
  const entries: PlanEntry[] = [];
  const put = (target: string, data: string | Buffer): void => {
    const staged = relative(paths.dataDir, target).replaceAll('/', '_');
    writeFileAtomic(join(stage, staged), data, PRIVATE_FILE_MODE);
    entries.push({ staged, target: relative(paths.dataDir, target) });
  };
  for (const k of keks) {
    put(k.path, await reencryptKekFile(k.path, k.version, current.passphrase, newPassphrase));
  }
  for (const { path, key } of keys) put(path, encryptPrivateKey(key, newPassphrase));
  if (storedIsCurrent || newSource === 'generated') put(paths.passphrase, `${newPassphrase}\n`);
  return { v: 1, entries, kekVersions: keks.map((k) => k.version), newPassphraseSource: newSource };
}

/**
 * A committed change is finished by whoever can show either passphrase: the old one opens the copy of
 * the old root key, the new one the new root key (still staged, or already in place). A new passphrase
 * given again must be the one the change was made to.
 */
function checkPending(stage: string, paths: CaPaths, current: string, next: string | undefined): void {
  const stagedRoot = join(stage, relative(paths.dataDir, paths.rootKey).replaceAll('/', '_'));
  const newRoot = readText(entryKind(stagedRoot) === 'missing' ? paths.rootKey : stagedRoot);
  const opens = (pem: string, passphrase: string): boolean =>
    opensWith(() => decryptPrivateKey(pem, passphrase));
  if (next !== undefined && !opens(newRoot, next)) {
    throw new AuthError(
      'bad_passphrase',
      'an interrupted `kds server passphrase` to another new passphrase is pending: run it again with that one (or with no new passphrase)',
    );
  }
  if (!opens(newRoot, current) && !opens(readText(join(stage, PREVIOUS_ROOT)), current)) {
    throw new AuthError('bad_passphrase', 'cannot decrypt the private key: wrong passphrase');
  }
}

/** Step 4: each staged file still in the stage replaces its target (a re-run skips those already moved). */
function install(stage: string, paths: CaPaths, plan: Plan): void {
  let moved = 0;
  for (const e of plan.entries) {
    const from = join(stage, e.staged);
    if (entryKind(from) === 'missing') continue;
    const to = join(paths.dataDir, e.target);
    try {
      renameSync(from, to);
    } catch (err) {
      throw new EnvironmentError('io_error', `cannot move ${from} to ${to}`, { path: from }, { cause: err });
    }
    fsyncDir(dirname(to));
    if (++moved === 1) crashPoint('passphrase-installing');
  }
}

function opensWith(open: () => unknown): boolean {
  try {
    open();
    return true;
  } catch {
    return false;
  }
}

function readPlan(stage: string): Plan | undefined {
  const path = join(stage, PLAN_FILE);
  if (entryKind(path) === 'missing') return undefined;
  let plan: Plan;
  try {
    plan = JSON.parse(readFileSync(path, 'utf8')) as Plan;
  } catch (err) {
    throw new EnvironmentError('config', `${path} is unreadable`, { path }, { cause: err });
  }
  // Written atomically by us; a plan naming anything outside the data directory is not ours.
  const safe = (s: unknown): boolean => typeof s === 'string' && !s.includes('..') && !s.startsWith('/');
  if (
    plan?.v !== 1 ||
    !Array.isArray(plan.entries) ||
    !plan.entries.every((e) => safe(e.staged) && safe(e.target))
  ) {
    throw new EnvironmentError('config', `${path} is not a kds passphrase-change plan`, { path });
  }
  return plan;
}

function storedPassphrase(paths: CaPaths): string | undefined {
  if (entryKind(paths.passphrase) === 'missing') return undefined;
  // env {} and no option: the stored file only, whatever the process environment says.
  return resolveCaPassphrase(paths.dataDir, { env: {} }).passphrase;
}

/** Passphrases are secrets: compared in constant time (shared/crypto/ct.ts), never with ===. */
function samePassphrase(a: string, b: string): boolean {
  return equalBytes(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
