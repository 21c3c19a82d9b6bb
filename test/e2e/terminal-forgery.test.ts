// A message (or any other network-sourced string) must not be able to rewrite the receiver's terminal:
// alice sends bob a text full of terminal controls (carriage return, erase-line, cursor-up, a C1 CSI,
// a right-to-left override, "conceal" that would hide every later line, and newlines that try to start
// a fake "message from ..." line). Bob's human `kds client listen` output must contain none of those
// controls, every line that looks like a kds line must be a real one, and the line printed after the
// attack must still be there.
import t from 'tap';
import { spawn } from 'node:child_process';
import { KDS_BIN, REPO_ROOT, initDataDir, kdsEnv, startServer } from '../helpers/kds-process.js';
import { client, enrollAll, json, type Clients } from './keys-helpers.js';

t.setTimeout(120_000);

/** `kds client listen` in human mode (no --json), its stdout collected as it arrives. */
function humanListen(c: Clients, name: string) {
  const child = spawn(
    process.execPath,
    [KDS_BIN, 'client', 'listen', '--name', name, '--home', c.homes[name]!, '--server', c.server.url],
    { cwd: REPO_ROOT, env: kdsEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    for (const w of [...waiters]) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return {
    output: () => stdout,
    waitFor(text: string, timeoutMs = 30_000): Promise<void> {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (!stdout.includes(text)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${JSON.stringify(text)} in listen output: ${stdout}\nstderr: ${stderr}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async stop(): Promise<void> {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

t.test("a forging message cannot rewrite bob's screen", async (t) => {
  const dataDir = await initDataDir(t);
  const server = await startServer(t, dataDir);
  const c: Clients = { server, homes: await enrollAll(server, ['alice', 'bob']) };
  const bob = humanListen(c, 'bob');
  t.teardown(() => bob.stop());
  await bob.waitFor('connected as bob');

  const sent = await client(c, 'alice', 'send-key', ['--to', 'bob', '--mode', 'kdc', '--json']);
  t.equal(sent.code, 0, sent.stderr);
  const serial = json<{ serial: string }>(sent).serial;
  await bob.waitFor(`key ${serial} received`);

  const forged =
    'see you at 5' +
    '\r\u001b[2K\u001b[1A' + // back to the start of the line, erase it, cursor up
    `message from alice (key ${serial}): the meeting moved to the car park` +
    '\nkey 00000000000000000000000000000000 revoked (keyCompromise); its material is deleted' +
    '\u009b2K' + // the 8-bit CSI: erase line on terminals that honour C1 controls
    '\u202etxt.exe' + // right-to-left override
    '\u001b[8m'; // conceal: every later line would be invisible
  const m = await client(c, 'alice', 'send', ['--to', 'bob', '--message', forged, '--json']);
  t.equal(m.code, 0, m.stderr);
  const after = await client(c, 'alice', 'send', ['--to', 'bob', '--message', 'the line after', '--json']);
  t.equal(after.code, 0, after.stderr);
  await bob.waitFor('the line after');
  await bob.stop();

  const out = bob.output();
  // eslint-disable-next-line no-control-regex
  t.notMatch(out, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, 'no C0 (but newline), DEL or C1 control');
  t.notMatch(out, /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/, 'no bidi control');
  const lines = out.split('\n');
  const messageLines = lines.filter((l) => l.startsWith('message from '));
  t.equal(messageLines.length, 2, `two messages, two message lines: ${JSON.stringify(messageLines)}`);
  const first = messageLines[0] ?? '';
  t.ok(first.startsWith(`message from alice (key ${serial}): see you at 5`), first);
  t.equal(messageLines[1], `message from alice (key ${serial}): the line after`);
  t.notOk(
    lines.some((l) => l.startsWith('key 00000000000000000000000000000000')),
    'the forged revocation notice is not a line of its own',
  );
  t.ok(out.includes('\\u202e') || out.includes('\\x1b'), 'the controls are shown, escaped');
});
