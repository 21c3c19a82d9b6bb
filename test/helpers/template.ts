// What every test process would otherwise make for itself, made once per tap run: an initialised data
// directory (RSA-2048 CA, KDC and admin credentials, CA passphrase TEST_CA_PASSPHRASE, and the KEK a
// KDC's first start makes: initDataDir in kds-process.ts says why) and a pool of
// RSA-2048 key pairs. RSA keygen is the slow part (~0.8 s of CPU for a data directory), and some forty
// test files want one. The first test process of a run that needs it builds it into
// .tap/kds-template-<pid of the tap runner>/ (under a lock directory, so the processes running at once
// build it once); the others, children of the same runner, find it by their parent's pid. A test file
// run outside tap (`node dist/test/x.test.js`) makes its own, as before. The builder of a run removes
// the templates of runs that no longer run, so at most the last run's template stays in .tap/ (tap's
// own state directory, git-ignored).
//
// Not tap's `before:` script: tap records coverage of that script even with coverage off, and then
// fails the run for the coverage being incomplete.
//
// Tests never share state through it: initDataDir copies the directory for each caller, and a pooled
// key pair only ever signs CSRs (each test issues its own certificates from its own CA).
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateRsaKeyPair, type RsaKeyPair } from '../../shared/crypto/rsa.js';
import { makeTestKek, REPO_ROOT, TEST_CA_PASSPHRASE } from './kds-process.js';

/**
 * Key pairs in the pool. Each user has slots of its own, so that no two roles in one test process (a CA
 * and a client, say) ever share a key: 0 kdc-in-process.ts (and, in renewal.test.ts, which has no
 * in-process KDC, a client's new key); 1-5 named clients (mitm-helpers.ts, inproc.ts, keys-helpers.ts);
 * 6-9 the CA and clients of test/server/keys/fixtures.ts; 10-12 the CA, server and client of
 * test/shared/protocol/fixtures.ts; 13-16 the CAs makeCa (pki-fixtures.ts) makes without a given key; 17
 * the leaf key of the shared/pki and server/ca tests.
 */
export const POOL_SIZE = 18;
/** How long a process waits for another one's build before it makes its own (a crashed builder). */
const WAIT_MS = 60_000;
const TAP_DIR = join(REPO_ROOT, '.tap');

/** The template directory of the tap run `runnerPid` (default: the one running this process). */
export function templateDir(runnerPid = process.ppid): string {
  return join(TAP_DIR, `kds-template-${runnerPid}`);
}

const ready = (dir: string): boolean => existsSync(join(dir, 'keys.json'));

let shared: Promise<string | undefined> | undefined;

/** This run's template directory, built by the first process that asks; undefined outside tap. */
export function runTemplate(): Promise<string | undefined> {
  shared ??= (async () => {
    if (process.env.TAP !== '1') return undefined;
    const dir = templateDir();
    if (ready(dir)) return dir;
    mkdirSync(TAP_DIR, { recursive: true });
    try {
      mkdirSync(`${dir}.lock`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      for (const end = Date.now() + WAIT_MS; Date.now() < end; await sleep(100)) if (ready(dir)) return dir;
      return undefined;
    }
    removeStale();
    await buildTemplate(dir);
    rmSync(`${dir}.lock`, { recursive: true, force: true });
    return dir;
  })();
  return shared;
}

/** Builds a template into `dir` (0700, private files 0600); `dir` appears complete or not at all. */
export async function buildTemplate(dir: string): Promise<void> {
  const building = `${dir}.building`;
  rmSync(building, { recursive: true, force: true });
  mkdirSync(building, { mode: 0o700 });
  chmodSync(building, 0o700);
  const { initCa } = await import('../../server/ca/init.js');
  const [, ...pool] = await Promise.all([
    initCa({
      dataDir: join(building, 'data'),
      caKeyBits: 2048,
      passphrase: TEST_CA_PASSPHRASE,
      actor: 'test',
    }),
    ...Array.from({ length: POOL_SIZE }, () => generateRsaKeyPair(2048)),
  ]);
  await makeTestKek(join(building, 'data'));
  writeFileSync(join(building, 'keys.json'), JSON.stringify(pool), { mode: 0o600 });
  renameSync(building, dir);
}

/** Templates (and locks, half-built ones) of tap runners that are gone. */
function removeStale(): void {
  for (const name of readdirSync(TAP_DIR)) {
    const m = /^kds-template-(\d+)(\.lock|\.building)?$/.exec(name);
    if (m === null || Number(m[1]) === process.ppid || running(Number(m[1]))) continue;
    rmSync(join(TAP_DIR, name), { recursive: true, force: true });
  }
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

let pool: RsaKeyPair[] | undefined;
const fresh = new Map<number, Promise<RsaKeyPair>>();

/**
 * Key pair `i` of this run's pool (0 <= i < POOL_SIZE), or a fresh one without a template. The same i
 * gives the same pair within a process, distinct i distinct pairs.
 */
export async function pooledKeyPair(i: number): Promise<RsaKeyPair> {
  if (!Number.isInteger(i) || i < 0 || i >= POOL_SIZE) throw new RangeError(`pool index ${i}`);
  const dir = await runTemplate();
  if (dir !== undefined) pool ??= JSON.parse(readFileSync(join(dir, 'keys.json'), 'utf8')) as RsaKeyPair[];
  const pair = pool?.[i];
  if (pair !== undefined) return pair;
  let made = fresh.get(i);
  if (made === undefined) fresh.set(i, (made = generateRsaKeyPair(2048)));
  return made;
}
