// `kds mitm` and the insecure flags as a user meets them: the catalog listing, usage errors, the two
// keys of insecure mode (flag AND KDS_ALLOW_INSECURE=1, refused with insecure_refused otherwise), the
// warning banner, and the watch output of one attack with the victim's error naming the defence
// (docs/attacks.md's example: "handshake failed: server signature over transcript invalid (possible MITM)").
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ATTACK_NAMES } from '../../client/mitm/catalog.js';
import { openSession } from '../../client/session.js';
import {
  KDS_BIN,
  REPO_ROOT,
  initDataDir,
  kdsEnv,
  parseJson,
  runKds,
  startServer,
  trackChild,
} from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';
import { enrollAll } from './keys-helpers.js';

t.setTimeout(180_000);
// The subtests are independent (each its own directories, KDC and Mallory, on ports of their own) and
// mostly wait on the `kds` processes they start: tap runs them side by side.
t.jobs = 3;

t.test('kds mitm --list: the catalog, one line each', async (t) => {
  const r = await runKds(['mitm', '--list']);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.same(
    lines.map((l) => l.split(/\s+/)[0]),
    ATTACK_NAMES,
  );
  t.match(lines[1], /^substitute-dh\s+.*\[stopped by transcript signature\]$/);
  const json = parseJson<{ name: string; position: string }[]>(await runKds(['mitm', '--list', '--json']));
  t.same(
    json.map((a) => a.name),
    ATTACK_NAMES,
  );
  t.ok(
    json.every((a) => a.position.length > 0),
    'each says where Mallory sits',
  );
});

t.test('usage errors', async (t) => {
  const none = await runKds(['mitm', '--json']);
  t.equal(none.code, 2);
  t.equal(parseJson<{ error: { code: string } }>(none).error.code, 'bad_request');
  const unknown = await runKds(['mitm', '--attack', 'nope', '--json']);
  t.equal(unknown.code, 2);
  t.match(parseJson<{ error: { message: string } }>(unknown).error.message, /unknown attack "nope"/);
  const listen = await runKds(['mitm', '--attack', 'tamper', '--listen', 'nowhere', '--json']);
  t.equal(parseJson<{ error: { code: string } }>(listen).error.code, 'bad_request');
  const table = await runKds(['mitm', '--ablation', '--console', '--json']);
  t.equal(table.code, 2, 'the console watches one attack, not the ablation table');
  t.match(parseJson<{ error: { message: string } }>(table).error.message, /--console/);
});

t.test("kds mitm --console: the URL of Mallory's view, served on her own port", async (t) => {
  const child = spawn(
    process.execPath,
    [
      KDS_BIN,
      'mitm',
      '--listen',
      '127.0.0.1:0',
      '--target',
      'ws://127.0.0.1:9',
      '--attack',
      'passthrough',
      '--console',
      '--json',
    ],
    { cwd: REPO_ROOT, env: kdsEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  let out = '';
  const listening = await new Promise<{ url: string; consoleUrl: string }>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const line = out.split('\n').find((l) => l.includes('"listening"'));
      if (line !== undefined) resolve(JSON.parse(line) as { url: string; consoleUrl: string });
    });
    child.on('close', () => reject(new Error(`mitm exited: ${out}`)));
  });
  const base = listening.url.replace(/^ws:/, 'http:').replace(/\/kds$/, '');
  t.equal(listening.consoleUrl, `${base}/console`, 'a loopback Mallory prints the URL without a key');
  const page = await fetch(listening.consoleUrl);
  t.equal(page.status, 200);
  t.match(page.headers.get('content-security-policy'), /script-src 'self'/, 'with its CSP');
  await page.text();
  const feed = await fetch(`${base}/console/events`, { method: 'HEAD' });
  t.equal(feed.status, 200, 'the feed answers a loopback client');
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'Ctrl-C stops her cleanly');
});

/**
 * `kds mitm --control --json --report R`; resolves once she listens, with what she printed so far and
 * how she exited. The target is a port nothing listens on: no victim comes, only commands.
 */
async function controlledMallory(t: Test, report: string) {
  const child = spawn(
    process.execPath,
    [
      KDS_BIN,
      'mitm',
      '--listen',
      '127.0.0.1:0',
      '--target',
      'ws://127.0.0.1:9',
      '--attack',
      'passthrough',
      '--control',
      '--json',
      '--report',
      report,
    ],
    { cwd: REPO_ROOT, env: kdsEnv(), stdio: ['pipe', 'pipe', 'pipe'] },
  );
  trackChild(child);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.resume();
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  await new Promise<void>((resolve, reject) => {
    const check = (): void => {
      if (out.includes('"listening"')) resolve();
    };
    child.stdout!.on('data', check);
    void exited.then(() => reject(new Error(`mitm exited: ${out}`)));
  });
  const events = (): { event: string; attack?: string }[] =>
    out
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { event: string; attack?: string });
  return { child, exited, events };
}

t.test('kds mitm --control: "end" and the end of input stop Mallory, with her report', async (t) => {
  const dir = tempDir(t, 'kds-mitm-control-');
  for (const how of ['end', 'end of input', 'off, then end']) {
    const report = join(dir, `${how.replace(/\W+/g, '-')}.json`);
    const m = await controlledMallory(t, report);
    if (how === 'end') m.child.stdin!.write('end\n');
    else if (how === 'end of input') m.child.stdin!.end();
    else {
      m.child.stdin!.write('off\nattack tamper\nend\n');
    }
    t.equal(await m.exited, 0, `${how}: she exits 0`);
    const summaries = m.events().filter((e) => e.event === 'summary');
    const attacks = how === 'off, then end' ? ['passthrough', 'tamper'] : ['passthrough'];
    t.same(
      summaries.map((e) => e.attack),
      attacks,
      `${how}: one summary per attack that ran`,
    );
    const written = JSON.parse(readFileSync(report, 'utf8')) as { attack: string; outcome: string };
    t.equal(written.attack, attacks.at(-1), `${how}: the report of the last attack is written`);
  }
});

t.test('insecure mode needs both keys', async (t) => {
  const dataDir = await initDataDir(t);
  const server = await runKds([
    'server',
    'start',
    '--insecure-dh',
    '--data-dir',
    dataDir,
    '--port',
    '0',
    '--json',
  ]);
  t.equal(server.code, 7, 'server: exit 7 (authentication)');
  const e = parseJson<{ error: { code: string; message: string }; defence?: string }>(server);
  t.equal(e.error.code, 'insecure_refused');
  t.match(e.error.message, /KDS_ALLOW_INSECURE=1/);
  t.equal(e.defence, undefined, 'a local refusal is not reported as a MITM defence');

  const client = await runKds([
    'client',
    'keys',
    '--name',
    'alice',
    '--insecure-dh',
    '--data-dir',
    dataDir,
    '--json',
  ]);
  t.equal(client.code, 7);
  t.equal(parseJson<{ error: { code: string } }>(client).error.code, 'insecure_refused');

  const enroll = await runKds(
    ['client', 'enroll', '--name', 'alice', `--token=${'x'.repeat(43)}`, '--insecure-dh', '--json'],
    { env: { KDS_ALLOW_INSECURE: '1' } },
  );
  t.equal(enroll.code, 7);
  t.match(
    parseJson<{ error: { message: string } }>(enroll).error.message,
    /does not apply to `kds client enroll`/,
    'enrollment stays secure',
  );

  const flag = await runKds(['mitm', '--list', '--allow-insecure', '1']);
  t.equal(flag.code, 2, 'KDS_ALLOW_INSECURE is not a flag');
  t.match(flag.stderr, /environment, never as a flag/);

  const envOk = await runKds(['mitm', '--list'], { env: { KDS_ALLOW_INSECURE: '1' } });
  t.equal(envOk.code, 0, `the environment variable is accepted by every command: ${envOk.stderr}`);

  const warned = await runKds(
    [
      'client',
      'keys',
      '--name',
      'alice',
      '--insecure-dh',
      '--data-dir',
      dataDir,
      '--server',
      'ws://127.0.0.1:1/kds',
    ],
    {
      env: { KDS_ALLOW_INSECURE: '1' },
    },
  );
  t.match(
    warned.stderr,
    /WARNING INSECURE MODE \(--insecure-dh\): this client uses UNAUTHENTICATED Diffie-Hellman/,
    'a loud warning on start',
  );
});

t.test('the insecure switch cannot come from the environment alone', async (t) => {
  // yargs .env('KDS') would read KDS_INSECURE_DH=true as --insecure-dh: with KDS_ALLOW_INSECURE=1 also in
  // the environment, a KDC (or a client) went insecure with no flag typed at all.
  const both = { KDS_INSECURE_DH: 'true', KDS_ALLOW_INSECURE: '1' };
  const dataDir = await initDataDir(t);
  const server = await startServer(t, dataDir, [], { env: both });
  t.notMatch(server.stderr(), /INSECURE MODE/, 'no insecure warning: the server is not insecure');
  await t.rejects(
    openSession({ server: server.url, mode: 'insecure', insecureName: 'alice' }),
    { code: 'insecure_refused' },
    'the KDC refuses insecure sessions',
  );
  t.match(server.stderr(), /KDS_INSECURE_DH is ignored/, 'and says why the variable had no effect');

  const client = await runKds(
    ['client', 'keys', '--name', 'alice', '--data-dir', dataDir, '--server', 'ws://127.0.0.1:1/kds'],
    { env: both },
  );
  t.notMatch(client.stderr, /WARNING INSECURE MODE/, 'the client stays authenticated');
  t.match(client.stderr, /KDS_INSECURE_DH is ignored/);

  const flagged = await runKds(
    [
      'client',
      'keys',
      '--name',
      'alice',
      '--data-dir',
      dataDir,
      '--server',
      'ws://127.0.0.1:1/kds',
      '--insecure-dh',
    ],
    { env: both },
  );
  t.match(
    flagged.stderr,
    /WARNING INSECURE MODE/,
    'the flag (with the environment key) still switches it on',
  );
});

t.test('the watch output of substitute-dh, and the victim naming the defence', async (t) => {
  const dataDir = await initDataDir(t);
  const server = await startServer(t, dataDir);
  // Alice is enrolled from the test process (keys-helpers.ts), not with two CLI processes: what is
  // tested here is Mallory's watch output and the victim's error.
  const home = (await enrollAll(server, ['alice'])).alice!;
  t.ok(existsSync(join(home, 'cert.pem')), 'alice is enrolled');

  const child = spawn(
    process.execPath,
    [
      KDS_BIN,
      'mitm',
      '--listen',
      '127.0.0.1:0',
      '--target',
      server.url.replace(/\/kds$/, ''),
      '--attack',
      'substitute-dh',
      '--once',
    ],
    {
      cwd: REPO_ROOT,
      env: kdsEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  trackChild(child);
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const url = await new Promise<string>((resolve) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /mallory listening on (ws:\/\/\S+)/.exec(out);
      if (m !== null) resolve(m[1]!);
    });
  });
  t.match(url, /^ws:\/\/127\.0\.0\.1:\d+\/kds$/, 'the bound URL is printed (port 0)');
  // As in docs/attacks.md: the victim points --server at Mallory's host:port.
  const victim = await runKds([
    'client',
    'send-key',
    '--name',
    'alice',
    '--to',
    'bob',
    '--mode',
    'kdc',
    '--home',
    home,
    '--server',
    url.replace(/\/kds$/, ''),
  ]);
  t.equal(victim.code, 7);
  t.match(victim.stderr, /error \[bad_signature\]: signature verification failed/);
  t.match(victim.stderr, /handshake failed: server signature over transcript invalid \(possible MITM\)/);
  t.match(victim.stderr, /stopped by: transcript signature/);
  t.equal(await exited, 0);
  // Against an authenticated client Mallory keeps each hello and sends her own in its place.
  t.match(
    out,
    /#1 client {2}-> kdc {4}client_hello +\d+ B {2}terminate/,
    'one line per frame: direction, type, size, action',
  );
  t.match(out, /#1 mallory -> kdc {4}client_hello +\d+ B {2}inject/);
  t.match(out, /#1 kdc {5}-> client server_hello +\d+ B {2}terminate/);
  t.match(out, /#1 mallory -> client server_hello +\d+ B {2}inject/);
  t.notOk(out.includes('\u001b['), 'no colour when not on a terminal');
  t.match(out, /attack substitute-dh: FAILED — stopped by transcript signature/);
});
