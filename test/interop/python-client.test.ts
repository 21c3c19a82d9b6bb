// The protocol documents suffice for an independent implementation: test/interop/kds_client.py is a
// kds client written in Python from docs/protocol.md, docs/messages.md and docs/keys.md alone (its own
// MessagePack and WebSocket code, the `cryptography` package for the primitives). This file re-derives
// both vector files with it, then runs it against a real KDC process with two clients enrolled by the
// kds CLI: the live scenario (handshakes over x25519 and ffdhe2048, requests, a KDC-generated key
// delivered to the peer and verified, a message, resumption, a wrong psk refused) and the edge cases
// (refused upgrades, bad frames and hellos, a bad MAC, request errors, a tampered record, an admin
// token, enrollment with a Python-made CSR, self-revocation). What the KDC recorded is checked from
// the kds side too (`kds client keys --json`, the store), so the program does not only grade itself.
// Without a Python 3 that imports `cryptography` the file fails: .ci/run installs Debian's.
import t, { type Test } from 'tap';
import Database from 'better-sqlite3';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  REPO_ROOT,
  TEST_CA_PASSPHRASE,
  initDataDir,
  parseJson,
  runKds,
  startServer,
  trackChild,
} from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';
import { caPaths } from '../../io/ca-files.js';
import { enrollAll } from '../e2e/keys-helpers.js';

t.setTimeout(120_000);

const SCRIPT = join(REPO_ROOT, 'test', 'interop', 'kds_client.py');
const VECTORS = join(REPO_ROOT, 'test', 'vectors');
/** One line per value of the two vector files the client re-derives (5 handshake cases + the key flows). */
const VECTOR_CHECKS = 181;

/** Debian's interpreter first (python3-cryptography), then whatever `python3` is on PATH. */
function findPython(): string | undefined {
  for (const candidate of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(candidate, ['-c', 'import cryptography'], { stdio: 'ignore', timeout: 30_000 });
    if (r.status === 0) return candidate;
  }
  return undefined;
}

interface PyRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ok: string[];
  failed: string[];
  info: Map<string, string>;
}

function runPython(python: string, args: string[]): Promise<PyRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, [SCRIPT, ...args], {
      cwd: REPO_ROOT,
      // no __pycache__ in the source tree
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    trackChild(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const lines = stdout.split('\n');
      const info = new Map<string, string>();
      for (const line of lines) {
        const m = /^info (\S+) (\S+)$/.exec(line);
        if (m !== null) info.set(m[1]!, m[2]!);
      }
      resolve({
        code,
        stdout,
        stderr,
        ok: lines.filter((l) => l.startsWith('ok   ')).map((l) => l.slice(5)),
        failed: lines.filter((l) => l.startsWith('FAIL ')),
        info,
      });
    });
  });
}

/** Exit 0, no FAIL line, the summary line agreeing with the ok lines; `want` ok lines if given. */
function allPassed(tt: Test, r: PyRun, want?: number): void {
  const diag = { stdout: r.stdout, stderr: r.stderr };
  tt.equal(r.code, 0, 'exit status 0', diag);
  tt.same(r.failed, [], 'no FAIL line', diag);
  tt.match(r.stdout, new RegExp(`\\n${r.ok.length} passed, 0 failed\\n$`), 'its summary line', diag);
  if (want !== undefined) tt.equal(r.ok.length, want, `${want} checks passed`, diag);
}

/** The check named `name` (prefix of an ok line) passed. */
function passed(tt: Test, r: PyRun, name: string): void {
  tt.ok(
    r.ok.some((l) => l.startsWith(name)),
    `ok: ${name}`,
    { stdout: r.stdout, stderr: r.stderr },
  );
}

const python = findPython();
if (python === undefined) {
  t.fail(
    'no Python 3 with the `cryptography` package: tried /usr/bin/python3 and python3 on PATH ' +
      '(Debian: apt-get install python3-cryptography; .ci/run installs it)',
  );
} else {
  const py = python;
  t.comment(`interpreter: ${py}`);

  t.test('re-derives test/vectors/protocol-v1.json and keys-v1.json', async (tt) => {
    const r = await runPython(py, [
      'vectors',
      '--protocol',
      join(VECTORS, 'protocol-v1.json'),
      '--keys',
      join(VECTORS, 'keys-v1.json'),
    ]);
    allPassed(tt, r, VECTOR_CHECKS);
    for (const name of ['auth-x25519', 'auth-ffdhe2048', 'enroll-x25519', 'insecure-x25519', 'resume-x25519'])
      passed(tt, r, `${name}: client_finish bytes`);
    passed(tt, r, 'resume-x25519: binder');
    passed(tt, r, 'keys: e2e ciphertext');
    passed(tt, r, 'keys: kdc receiver signed content');
    passed(tt, r, 'keys: message ciphertext');
  });

  t.test('against a live KDC', async (tt) => {
    const dataDir = await initDataDir(tt);
    const server = await startServer(tt, dataDir);
    // Enrolled from the test process (keys-helpers.ts: the same protocol and home files as `kds client
    // enroll`, without four CLI processes); what is tested here is the Python client against them.
    const homes = await enrollAll(server, ['alice', 'bob']);
    const alice = { home: homes.alice! };
    const bob = { home: homes.bob! };
    const common = ['--server', server.url, '--pin', server.fingerprint, '--home', alice.home];

    await tt.test('live scenario', async (tt) => {
      const r = await runPython(py, ['live', ...common, '--peer', 'bob', '--peer-home', bob.home]);
      allPassed(tt, r);
      for (const name of [
        'GET /ca.pem matches the pinned fingerprint',
        'auth handshake (x25519)',
        'key.create (KDC mode) for bob',
        'bob: auth handshake (ffdhe2048)',
        'bob: key.verify with the receiver signature -> valid',
        'bob: message opens with the key and its AAD',
        'resumed handshake',
        'key.list in the resumed session: the key, verified by bob',
        'resumption with a wrong psk -> ticket_invalid (close 4001)',
        'key.create.batch of 3 for bob',
        'bob: one key.delivered per key of the batch',
        'bob: key.verify.batch -> valid, peerVerified for each key, in order',
        "bob: the batch's deliveries were acknowledged",
      ])
        passed(tt, r, name);

      // The kds side agrees: both kds clients see the key alice's Python client made, verified by bob.
      const serial = r.info.get('key-serial');
      tt.match(serial, /^[0-9a-f]{32}$/, 'the client printed the key serial');
      for (const [name, home] of [
        ['alice', alice.home],
        ['bob', bob.home],
      ] as const) {
        const k = await runKds([
          'client',
          'keys',
          '--name',
          name,
          '--home',
          home,
          '--server',
          server.url,
          '--json',
        ]);
        tt.equal(k.code, 0, `kds client keys --name ${name}`, { stderr: k.stderr });
        const key = parseJson<{ keys: Record<string, unknown>[] }>(k).keys.find((x) => x.serial === serial);
        tt.match(
          key,
          { mode: 'kdc', owner: 'alice', peer: 'bob', state: 'active', peerVerified: true },
          `${name}'s kds client sees the key verified`,
        );
      }
    });

    await tt.test('edge cases', async (tt) => {
      const passphraseFile = join(tempDir(tt), 'ca-passphrase');
      writeFileSync(passphraseFile, `${TEST_CA_PASSPHRASE}\n`, { mode: 0o600 });
      const r = await runPython(py, [
        'edges',
        ...common,
        '--admin-dir',
        join(dataDir, 'admin'),
        '--ca-passphrase-file',
        passphraseFile,
        '--enroll-name',
        'dave',
      ]);
      allPassed(tt, r);
      for (const name of [
        'upgrade on another path -> 404',
        'upgrade with an Origin header -> 403',
        'text message -> alert bad_frame, close 4000',
        'client_hello v=2 -> alert version_unsupported, close 4006',
        'client_hello all-zero x25519 share -> alert bad_dh_public, close 4001',
        'client_finish with a wrong MAC -> alert bad_mac, close 4001',
        'second session.ticket in one session -> forbidden',
        'unknown request type -> unknown_type',
        'record with a bad tag -> no answer, close 4005 record_auth',
        'admin.token for dave',
        'ping in an enroll session -> not_authenticated',
        'enroll with a CSR made here: certificate for dave on this key',
        'session.closing cert_revoked, close 4002',
        'handshake with the revoked certificate -> cert_revoked (close 4002)',
      ])
        passed(tt, r, name);

      // The store agrees: dave's certificate (issued for the Python-made CSR) is there, revoked.
      const serial = r.info.get('enrolled-serial');
      tt.match(serial, /^[0-9a-f]+$/, 'the client printed the enrolled serial');
      const db = new Database(caPaths(dataDir).store, { readonly: true, fileMustExist: true });
      try {
        const row = db.prepare('SELECT name, status FROM certificates WHERE serial = ?').get(serial) as
          | { name: string; status: string }
          | undefined;
        tt.same(row, { name: 'dave', status: 'revoked' }, "the store holds dave's certificate, revoked");
      } finally {
        db.close();
      }
    });
  });
}
