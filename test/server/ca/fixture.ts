// Shared set-up for the CA tests: a freshly initialised data directory (RSA-2048 root to keep keygen
// quick), openssl runs, and CSRs made by openssl (a tool nobody here wrote).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { initCa, type InitResult } from '../../../server/ca/init.js';
import { tempDir } from '../../helpers/tmp.js';

const run = promisify(execFile);

export const PASSPHRASE = 'test passphrase: correct horse battery staple';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export async function freshCa(
  t: Teardown,
  extra: { hosts?: string[]; port?: number; publicUrl?: string } = {},
): Promise<{ dir: string; init: InitResult }> {
  const dir = tempDir(t);
  const init = await initCa({ dataDir: dir, caKeyBits: 2048, passphrase: PASSPHRASE, ...extra });
  return { dir, init };
}

export interface OpensslResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run openssl; never throws for a non-zero exit (the tests assert on it). */
export async function openssl(args: string[], cwd?: string): Promise<OpensslResult> {
  try {
    const { stdout, stderr } = await run('openssl', args, { cwd, maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

export interface CsrOptions {
  cn: string;
  san?: string | null; // default DNS:<cn>; null for none
  key?: 'rsa:1024' | 'rsa:2048' | 'ec';
  addext?: string[];
}

/** Make a CSR with `openssl req` in dir; returns its PEM. */
export async function opensslCsr(dir: string, file: string, o: CsrOptions): Promise<string> {
  const out = join(dir, file);
  const args = ['req', '-new', '-nodes', '-subj', `/CN=${o.cn}`, '-keyout', `${out}.key`, '-out', out];
  if (o.key === 'ec') args.push('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256');
  else args.push('-newkey', o.key ?? 'rsa:2048');
  const san = o.san === undefined ? `DNS:${o.cn}` : o.san;
  if (san !== null) args.push('-addext', `subjectAltName=${san}`);
  for (const e of o.addext ?? []) args.push('-addext', e);
  const r = await openssl(args, dir);
  if (r.code !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  return readFileSync(out, 'utf8');
}
