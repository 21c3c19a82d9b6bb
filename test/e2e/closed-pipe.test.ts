// A reader that stops reading is not an error: `kds demo --json | head -1` and
// `kds client listen --json | head -1` end quietly (exit 0, nothing on stderr, no stack trace), and
// the demo still stops its KDC and removes its temporary directory. Real shell pipelines into `head`.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { KDS_BIN, REPO_ROOT, initDataDir, kdsEnv, startServer, trackChild } from '../helpers/kds-process.js';
import { enrollAll, keyClient, type Clients } from './keys-helpers.js';

t.setTimeout(180_000);

interface Pipeline {
  /** What `head` printed, as soon as it printed it. */
  firstLine: Promise<string>;
  /** kds's exit status (PIPESTATUS[0]) and everything kds and head wrote to stderr. */
  done: Promise<{ status: number; stderr: string }>;
}

/** `set -o pipefail; node bin/kds.js ARGS | head -1`, reporting kds's own exit status. */
function pipeToHead(args: string[]): Pipeline {
  const quoted = args.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const child = spawn(
    'bash',
    ['-c', `'${process.execPath}' '${KDS_BIN}' ${quoted} | head -1; echo "kds-status=\${PIPESTATUS[0]}" >&2`],
    { cwd: REPO_ROOT, env: kdsEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  trackChild(child);
  let stdout = '';
  let stderr = '';
  const firstLine = new Promise<string>((resolve) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (stdout.includes('\n')) resolve(stdout.slice(0, stdout.indexOf('\n')));
    });
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<{ status: number; stderr: string }>((resolve) =>
    child.on('close', () => {
      const m = /kds-status=(\d+)/.exec(stderr);
      resolve({ status: m === null ? -1 : Number(m[1]), stderr: stderr.replace(/kds-status=\d+\n?/, '') });
    }),
  );
  return { firstLine, done };
}

t.test('kds demo --json | head -1: exit 0, quiet, nothing left behind', async (t) => {
  const p = pipeToHead(['demo', '--json']);
  const first = JSON.parse(await p.firstLine) as { event: string; tmp: string };
  t.equal(first.event, 'start');
  const { status, stderr } = await p.done;
  t.equal(status, 0, `kds exit status (stderr: ${stderr})`);
  t.equal(stderr, '', 'nothing on stderr: no EPIPE, no stack trace');
  t.notOk(existsSync(first.tmp), 'the temporary directory was removed');
});

t.test('kds client listen --json | head -1: exit 0 at the next event, quiet', async (t) => {
  const dataDir = await initDataDir(t);
  const server = await startServer(t, dataDir);
  const c: Clients = { server, homes: await enrollAll(server, ['alice', 'bob']) };
  const p = pipeToHead([
    'client',
    'listen',
    '--name',
    'bob',
    '--home',
    c.homes.bob!,
    '--server',
    server.url,
    '--json',
  ]);
  t.match(JSON.parse(await p.firstLine), { event: 'connected', name: 'bob' });
  // head has exited; the listener notices the closed pipe when it next writes: give it an event.
  const alice = await keyClient(t, c, 'alice');
  await alice.client.sendKey({ to: 'bob', mode: 'kdc' });
  const { status, stderr } = await p.done;
  t.equal(status, 0, `kds exit status (stderr: ${stderr})`);
  t.equal(stderr, '', 'nothing on stderr: no EPIPE, no stack trace');
  await alice.close();
});
