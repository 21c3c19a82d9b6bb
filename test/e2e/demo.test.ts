// `npm run demo`, the README's quick-start command, run for real: every step does what its
// narration says (checked on the --json event log), Mallory steals the key in insecure mode and is
// stopped by the transcript signature in secure mode, and nothing is left behind: no temporary
// directory, no KDC process. The KDC's own log lines appear under the steps that caused them, and
// docs/attacks.md shows the same lines. Then `--step` waits for Enter, and Ctrl-C in the middle cleans
// up too (with the KDC's lines switched off).
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { ATTACKS_MD } from '../../tools/docs.js';
import { extractKdcSide, kdcSideShape, renderKdcSide } from '../../tools/kdc-side.js';
import { KDS_BIN, REPO_ROOT, kdsEnv } from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';

t.setTimeout(200_000);

type Event = { event: string; ms: number } & Record<string, unknown>;

interface TestLike {
  teardown(fn: () => void | Promise<void>): void;
}

interface DemoRun {
  events: Event[];
  stderr(): string;
  waitFor(pred: (e: Event) => boolean, what: string, timeoutMs?: number): Promise<Event>;
  waitForStderr(re: RegExp, timeoutMs?: number): Promise<void>;
  type(line: string): void;
  /** Send a signal to the whole process group (what Ctrl-C on a terminal does). */
  signal(sig: NodeJS.Signals): void;
  exited: Promise<number | null>;
}

/** Spawn the demo with its own TMPDIR (so leftovers would be visible) and parse its JSON lines. */
function startDemo(t: TestLike, command: string, args: string[], tmp: string): DemoRun {
  const env = kdsEnv({ TMPDIR: tmp, KDS_CA_PASSPHRASE: undefined });
  // Its own process group, like a terminal's foreground job: Ctrl-C reaches the demo and its KDC.
  const child = spawn(command, args, {
    cwd: REPO_ROOT,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const group = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      // the group is gone already
    }
  };
  t.teardown(async () => {
    group('SIGKILL');
    if (child.exitCode === null && child.signalCode === null) await exited;
  });
  const events: Event[] = [];
  const waiters = new Set<() => void>();
  let buffer = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buffer += d;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.trim() !== '') events.push(JSON.parse(line) as Event);
    }
    for (const w of [...waiters]) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    for (const w of [...waiters]) w();
  });
  child.stdin!.on('error', () => {});
  const until = (ok: () => boolean, what: string, timeoutMs: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (!ok()) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(
          new Error(
            `demo: no ${what} within ${timeoutMs} ms; events: ${JSON.stringify(events.slice(-5))}; stderr: ${err}`,
          ),
        );
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  return {
    events,
    stderr: () => err,
    async waitFor(pred, what, timeoutMs = 60_000) {
      await until(() => events.some(pred), what, timeoutMs);
      return events.find(pred)!;
    },
    waitForStderr: (re, timeoutMs = 60_000) => until(() => re.test(err), String(re), timeoutMs),
    type: (line) => child.stdin!.write(`${line}\n`),
    signal: group,
    exited,
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const results = (events: Event[]): Event[] => events.filter((e) => e.event === 'result');

t.test('npm run demo: the whole story, every check passing, nothing left behind', async (t) => {
  const tmp = tempDir(t, 'kds-demo-test-');
  // The README's command, with --json so that each step can be checked.
  const demo = startDemo(t, 'npm', ['run', '--silent', 'demo', '--', '--json'], tmp);
  const code = await demo.exited;
  t.equal(code, 0, 'exit 0', { stderr: demo.stderr() });
  const { events } = demo;
  t.ok(
    events.every((e) => typeof e.event === 'string' && typeof e.ms === 'number'),
    'one JSON event per line',
  );
  t.same(
    events.filter((e) => e.event === 'step').map((e) => e.title),
    [
      'Create the certificate authority',
      'Start the KDC',
      'Enroll Alice and Bob',
      'Authenticated handshakes',
      'End-to-end key exchange (the KDC never sees the key)',
      "Bob's verification",
      'Encrypted messages both ways',
      'A KDC-generated key (the classic key distribution centre)',
      'Revoke a key',
      'Revoke a certificate',
      'Mallory against the insecure mode (the control group)',
      'Mallory against the secure mode',
      'Clean up',
    ],
    'the steps, in order',
  );
  t.same(
    results(events).filter((r) => r.ok !== true),
    [],
    'every result is a success',
  );
  t.match(events[events.length - 1], { event: 'done', ok: true, steps: 13 });

  // What crossed the wire: the handshake frames, then records only.
  const wire = events.filter((e) => e.event === 'wire');
  for (const frame of ['client_hello', 'server_hello', 'client_finish', 'record']) {
    t.ok(
      wire.some((w) => w.frame === frame),
      `the wire shows ${frame}`,
    );
  }
  t.ok(
    wire.some((w) => w.frame === 'alert' && String(w.detail).startsWith('cert_revoked')),
    "bob's revoked certificate is refused with an alert",
  );

  // The story's facts.
  t.ok(
    results(events).some((r) => r.verdict === 'valid'),
    "bob's verdict: valid",
  );
  t.ok(
    results(events).some((r) => r.sameKey === true),
    'same fingerprint on both sides',
  );
  t.ok(
    results(events).some((r) => r.verdict === 'revoked'),
    'the revoked key verifies as revoked',
  );
  t.ok(
    results(events).some((r) => r.code === 'cert_revoked'),
    'the revoked certificate is refused',
  );
  t.ok(
    results(events).some((r) => r.reason === 'certificateRevoked'),
    'alice got the certificateRevoked notice',
  );

  // Mallory: insecure succeeds with the key, secure fails on the transcript signature with nothing stolen.
  const insecure = results(events).find((r) => r.mode === 'insecure');
  const secure = results(events).find((r) => r.mode === 'secure');
  t.match(insecure, { attack: 'substitute-dh', outcome: 'succeeded' });
  t.match(secure, { attack: 'substitute-dh', outcome: 'failed', defence: 'transcript signature' });
  const stolen = events.find((e) => e.event === 'mallory' && e.kind === 'stolen-key');
  t.match(stolen, { key: /^[0-9a-f]{64}$/ }, 'the stolen key is printed (insecure mode)');
  t.ok(
    results(events).some(
      (r) => typeof r.stolenFingerprint === 'string' && r.stolenFingerprint === stolen?.fingerprint,
    ),
    "it is alice's key",
  );
  t.ok(
    events.some(
      (e) => e.event === 'mallory' && e.kind === 'plaintext' && String(e.text).includes('the vault code'),
    ),
    'Mallory read the message',
  );
  t.ok(
    results(events).some((r) => r.code === 'bad_signature' && r.defence === 'transcript signature'),
    "alice's error names the defence",
  );
  const secureStep = events.findIndex(
    (e) => e.event === 'step' && e.title === 'Mallory against the secure mode',
  );
  const afterSecure = events.slice(secureStep);
  t.notOk(
    afterSecure.some((e) => e.event === 'mallory' && (e.kind === 'stolen-key' || e.kind === 'plaintext')),
    'nothing stolen in secure mode',
  );
  t.notOk(JSON.stringify(afterSecure).includes(String(stolen?.key)), 'the stolen key never reappears');

  // Nothing left behind.
  const start = events.find((e) => e.event === 'start');
  t.ok(typeof start?.tmp === 'string' && !existsSync(String(start.tmp)), 'the temporary directory is gone');
  t.same(readdirSync(tmp), [], 'nothing else in TMPDIR either');
  const pids = results(events)
    .map((r) => r.pid)
    .filter((p): p is number => typeof p === 'number');
  t.ok(pids.length >= 1, 'the KDC ran as a child process');
  for (const pid of pids) t.notOk(alive(pid), `KDC process ${pid} has exited`);

  // The KDC's side of each step: its own log lines (the text log of `kds server start`), under the
  // step that caused them.
  const kdcOf = (title: string): string[] => {
    const at = events.findIndex((e) => e.event === 'step' && e.title === title);
    const next = events.findIndex((e, i) => i > at && e.event === 'step');
    return events
      .slice(at, next < 0 ? undefined : next)
      .filter((e) => e.event === 'kdc')
      .map((e) => String(e.text));
  };
  const expectKdc: [string, RegExp[]][] = [
    ['Start the KDC', [/^kdc +started \(kds /]],
    [
      'Enroll Alice and Bob',
      [
        /^admin +enrollment token for alice/,
        /^127\.0\.0\.1 +enrollment session open/,
        /^alice +certificate [0-9a-f]{8}\.\.\. issued \(client/,
        /^bob +certificate [0-9a-f]{8}\.\.\. issued \(client/,
      ],
    ],
    ['Authenticated handshakes', [/^alice +handshake ok \(x25519, /, /^bob +handshake ok \(x25519, /]],
    [
      'End-to-end key exchange (the KDC never sees the key)',
      [/^alice +key \S+ created for bob \(end-to-end\)/, /^bob +key \S+ delivered from alice/],
    ],
    ["Bob's verification", [/^bob +key \S+ verified valid/]],
    ['Encrypted messages both ways', [/^alice +message to bob relayed \(\d+ bytes/]],
    ['A KDC-generated key (the classic key distribution centre)', [/created for bob \(KDC-generated\)/]],
    ['Revoke a key', [/^alice +key \S+ revoked: keyCompromise/]],
    [
      'Revoke a certificate',
      [
        /^bob +certificate \S+ revoked: keyCompromise \(1 session closed\)/,
        /^bob +\d+ keys? revoked with certificate/,
        /^kdc +CRL \d+ published \(1 entry/,
        /^bob\? +handshake refused: cert_revoked \(revocation\)/,
      ],
    ],
    [
      'Mallory against the insecure mode (the control group)',
      [/^WARNING INSECURE MODE/, /^alice +handshake ok \(x25519, INSECURE: name not verified/],
    ],
    [
      'Mallory against the secure mode',
      [/^127\.0\.0\.1 +handshake refused by the client: bad_signature \(transcript signature\)$/],
    ],
    ['Clean up', [/^kdc +stopped after /]],
  ];
  for (const [title, res] of expectKdc) {
    const lines = kdcOf(title);
    for (const re of res)
      t.ok(
        lines.some((l) => re.test(l)),
        `KDC | ${String(re)} in "${title}"`,
        { lines },
      );
  }
  t.notOk(
    kdcOf('Mallory against the secure mode').some((l) => /^alice/.test(l)),
    'the KDC never learns the name of the client Mallory attacked in secure mode',
  );

  // docs/attacks.md shows what this run's KDC said, step by step (serials, durations, sizes aside).
  const documented = kdcSideShape(extractKdcSide(readFileSync(ATTACKS_MD, 'utf8')));
  const ran = kdcSideShape(renderKdcSide(events));
  t.same(
    Object.fromEntries(documented),
    Object.fromEntries(ran),
    'docs/attacks.md "The KDC\'s side" matches this run (regenerate: npm run docs -- --demo)',
  );
});

t.test('--step waits for Enter; Ctrl-C stops the KDC and removes the temporary directory', async (t) => {
  const tmp = tempDir(t, 'kds-demo-test-');
  const demo = startDemo(t, process.execPath, [KDS_BIN, 'demo', '--step', '--json', '--no-kdc-log'], tmp);
  await demo.waitForStderr(/press Enter for step 2: Start the KDC/);
  t.same(
    demo.events.filter((e) => e.event === 'step').map((e) => e.n),
    [1],
    'paused after step 1',
  );
  demo.type('');
  const kdc = await demo.waitFor((e) => e.event === 'result' && typeof e.pid === 'number', 'the KDC started');
  await demo.waitForStderr(/press Enter for step 3/);
  t.ok(alive(Number(kdc.pid)), 'the KDC is running while the demo waits');
  demo.signal('SIGINT');
  t.equal(await demo.exited, 130, 'exit 130 after Ctrl-C');
  t.match(demo.events[demo.events.length - 1], { event: 'done', ok: false, interrupted: true });
  const start = demo.events.find((e) => e.event === 'start');
  t.notOk(existsSync(String(start?.tmp)), 'the temporary directory is gone');
  t.same(readdirSync(tmp), [], 'nothing left in TMPDIR');
  t.notOk(alive(Number(kdc.pid)), 'the KDC process has exited');
  t.notOk(
    demo.events.some((e) => e.event === 'kdc'),
    '--no-kdc-log: no KDC line, though the KDC started',
  );
});

t.test('kds demo refuses unknown flags', async (t) => {
  const r = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, [KDS_BIN, 'demo', '--fast'], { env: kdsEnv(), stdio: 'ignore' });
    child.on('close', (code) => resolve(code));
  });
  t.equal(r, 2);
});
