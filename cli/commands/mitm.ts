// `kds mitm`: Mallory, the MITM lab (docs/attacks.md). A proxy that clients use as their
// --server; it forwards to --target (the real KDC) and mounts one named attack on what passes. Made to
// be watched: one line per frame (direction, type, size, action), colour on a terminal, the findings as
// they happen and a summary at the end; --json prints one JSON object per event per line instead, and
// --report writes the machine-readable record. Heavy modules load inside the handler.
import type { Argv } from 'yargs';
import { run, type OutputOptions } from '../output.js';
import { integerValue, nameValue, pathValue } from '../option-values.js';
import { onOutputClosed } from '../closed-pipe.js';
import { terminalSafe, terminalSafeJson } from '../../shared/text/terminal-safe.js';

interface MitmArgs extends OutputOptions {
  list: boolean;
  listen: string;
  target: string;
  attack?: string;
  report?: string;
  identity?: string;
  peer?: string;
  'hold-ms': number;
  once: boolean;
  control: boolean;
  ablation: boolean;
  console: boolean;
}

type Mitm = import('../../client/mitm/proxy.js').Mitm;
type MitmReport = import('../../client/mitm/report.js').MitmReport;
type AttackModule = import('../../client/mitm/attack.js').AttackModule;

/** `kds mitm` (its name and description are in cli/commands/index.ts, which loads this lazily). */
export function builder(c: Argv): Argv {
  return c
    .option('list', {
      type: 'boolean',
      default: false,
      describe: 'print the attack catalog, one line each',
    })
    .option('listen', {
      type: 'string',
      default: '127.0.0.1:9443',
      describe: 'host:port victims connect to (port 0: any free port)',
    })
    .option('target', {
      type: 'string',
      default: 'ws://127.0.0.1:8443',
      describe: 'the real KDC (ws://host:port; /kds is added)',
    })
    .option('attack', { type: 'string', describe: 'attack name (see --list)' })
    .option('report', {
      type: 'string',
      describe: 'write the JSON report here (after each connection and at the end)',
      coerce: pathValue('--report'),
    })
    .option('identity', {
      type: 'string',
      describe:
        'a client home Mallory owns (impersonate-client, unknown-key-share, revoked-cert, stale-key; revoked-ticket revokes its certificate)',
    })
    .option('peer', {
      type: 'string',
      describe: 'a peer name for attacks that create keys (default: learned from the victim)',
      coerce: nameValue('--peer'),
    })
    .option('hold-ms', {
      type: 'string',
      default: '400',
      describe: 'reorder/drop: how long to hold a record waiting for the next one (0 to 60000 ms)',
      coerce: integerValue('--hold-ms', 0, 60_000),
    })
    .option('control', {
      type: 'boolean',
      default: false,
      describe:
        'read commands on stdin: "attack NAME" switches live (printing the summary), "off" ends the attack and waits for the next, "end" (or the end of input) stops Mallory',
    })
    .option('ablation', {
      type: 'boolean',
      default: false,
      describe:
        'run the whole ablation table (every attack with all defences on, then with its own off) in a lab of its own; --report writes it as JSON',
    })
    .option('console', {
      type: 'boolean',
      default: false,
      describe:
        "serve Mallory's live console at /console on her own port (its URL is printed): every frame she forwarded, changed, dropped, injected or replayed, her attack and its outcome; loopback clients only unless given the key in the printed URL",
    })
    .option('once', {
      type: 'boolean',
      default: false,
      describe: 'stop after the first victim connection has ended',
    })
    .example('$0 mitm --list', 'the attack catalog')
    .example('$0 mitm --attack substitute-dh --console', "and open the printed URL: Mallory's view, live")
    .example('$0 mitm --ablation --report ablation.json', 'every defence earns its place: the table, live')
    .example(
      '$0 mitm --attack passthrough --control',
      'then type "attack tamper" to switch live, "end" to stop Mallory',
    )
    .example(
      '$0 mitm --listen 127.0.0.1:9443 --target ws://127.0.0.1:8443 --attack substitute-dh',
      'then: kds client send-key ... --server ws://127.0.0.1:9443',
    )
    .example(
      '$0 mitm --listen 127.0.0.1:0 --attack tamper --report out.json --json',
      'any free port; JSON events; a report file',
    );
}

export const handler = run(async (argv: MitmArgs) => handle(argv));

async function handle(argv: MitmArgs): Promise<number> {
  const { ATTACKS, findAttack } = await import('../../client/mitm/catalog.js');
  const { emit } = await import('../output.js');
  if (argv.list) {
    const width = Math.max(...ATTACKS.map((a) => a.name.length));
    emit(
      argv,
      ATTACKS.map((a) => ({
        name: a.name,
        summary: a.summary,
        position: a.position,
        secure: a.secure,
        insecure: a.insecure,
        needsIdentity: a.needsIdentity === true,
      })),
      ATTACKS.map((a) => `${a.name.padEnd(width)}  ${a.summary} [stopped by ${a.secure.defence ?? '-'}]`),
    );
    return 0;
  }
  if (argv.ablation && argv.console) {
    const { InputError } = await import('../../shared/errors.js');
    throw new InputError('bad_request', '--console watches one attack; it does not go with --ablation');
  }
  if (argv.report !== undefined) {
    // Before listening (or a long ablation run): a report that can never be written is a typo.
    const { checkOutputPath } = await import('../../io/user-files.js');
    checkOutputPath(argv.report, '--report');
  }
  if (argv.ablation) return ablation(argv);
  if (argv.attack === undefined) {
    const { InputError } = await import('../../shared/errors.js');
    throw new InputError('bad_request', 'name an --attack (kds mitm --list shows them)');
  }
  const attack = findAttack(argv.attack);
  if (argv.once && argv.control) {
    const { InputError } = await import('../../shared/errors.js');
    throw new InputError('bad_request', '--once and --control do not go together');
  }
  const { startMitm, parseListen } = await import('../../client/mitm/proxy.js');
  const { writeReport } = await import('../../client/mitm/report.js');
  const { loadIdentity } = await import('../../client/mitm/identity.js');
  const listen = parseListen(argv.listen);
  const identity = argv.identity === undefined ? undefined : loadIdentity(argv.identity);
  const print = printer(argv.json === true);
  const { toKdsError } = await import('../../shared/errors.js');
  /** The exit code of the last failed report write, cleared by a write that succeeds. */
  let reportFailure: number | undefined;
  // A write that fails (the directory went away, the disk is full) is one error line and Mallory keeps
  // watching: the victims' connections matter more than the file, which the next write may still save.
  const writeReportOrSay = (path: string, report: MitmReport): void => {
    try {
      writeReport(path, report);
      reportFailure = undefined;
    } catch (err) {
      const e = toKdsError(err);
      reportFailure = e.exitCode;
      if (argv.json)
        process.stdout.write(`${terminalSafeJson({ event: 'error', code: e.code, message: e.message })}\n`);
      else process.stderr.write(`error [${e.code}]: ${terminalSafe(e.message)}\n`);
    }
  };
  // The report is rewritten after every victim connection; the proxy exists by then.
  const running: { mitm?: Awaited<ReturnType<typeof startMitm>> } = {};
  const saveReport = (): void => {
    if (argv.report !== undefined && running.mitm !== undefined)
      writeReportOrSay(argv.report, running.mitm.report());
  };
  const mitm = await startMitm({
    attack,
    target: argv.target,
    host: listen.host,
    port: listen.port,
    holdMs: argv['hold-ms'],
    ...(identity === undefined ? {} : { identity }),
    ...(argv.peer === undefined ? {} : { peer: argv.peer }),
    onEvent: print,
    onConnectionEnd: saveReport,
    ...(argv.console ? { console: true } : {}),
  });
  running.mitm = mitm;
  const target = mitm.context.settings.target;
  if (argv.json) {
    process.stdout.write(
      `${terminalSafeJson({ event: 'listening', url: mitm.url, target, attack: attack.name, ...(mitm.consoleUrl === undefined ? {} : { consoleUrl: mitm.consoleUrl }) })}\n`,
    );
  } else {
    process.stdout.write(
      `mallory listening on ${mitm.url}\n  target: ${target}\n  attack: ${attack.name}: ${attack.summary}\n  where:  ${attack.position}\n${mitm.consoleUrl === undefined ? '' : `console: ${mitm.consoleUrl}\n`}`,
    );
  }
  const { style } = await import('../output.js');
  let reported: object | undefined;
  /** The end of one attack: report file, then the summary (a JSON line, or the coloured verdict). */
  const summarize = (report: MitmReport): void => {
    reported = report;
    if (argv.report !== undefined) writeReportOrSay(argv.report, report);
    if (argv.json) {
      const { frames: _f, ...rest } = report;
      process.stdout.write(`${terminalSafeJson({ event: 'summary', ...rest })}\n`);
      return;
    }
    const paint =
      report.outcome === 'succeeded' ? style.bad : report.outcome === 'failed' ? style.ok : style.dim;
    const d = report.findings.find((f) => f.outcome === report.outcome);
    process.stdout.write(
      `${paint(style.bold(terminalSafe(report.summary)))}\n${d === undefined ? '' : `  ${terminalSafe(d.detail)}${d.code === undefined ? '' : ` (${terminalSafe(d.code)})`}\n`}`,
    );
  };
  const { untilStopped } = await import('../stop-signal.js');
  const { done, stop } = untilStopped();
  const stopControl = argv.control
    ? controlFromStdin(argv, mitm, summarize, findAttack, stop)
    : async (): Promise<void> => {};
  // The reader of the watch output went away: stop as on Ctrl-C (cli/closed-pipe.ts).
  onOutputClosed(stop);
  if (argv.once) void mitm.connectionsEnded(1).then(stop);
  await done;
  await stopControl();
  const report = await mitm.close();
  if (report !== reported) summarize(report);
  // The report asked for is not on disk: say so in the exit code too (the error line was printed).
  return reportFailure ?? 0;
}

/**
 * `--control`: commands on stdin, one per line, run in order. `attack NAME` ends the running attack
 * (its summary is printed, its live connections are cut) and starts NAME; `off` only ends it (victims
 * are turned away until the next `attack`); `end`, or the end of input, stops Mallory as Ctrl-C does
 * (the summary of a running attack, the report, exit 0). For a class switching attacks live, and for
 * the matrix test (one Mallory per mode). Returns what releases stdin, once the commands read so far
 * have run.
 */
function controlFromStdin(
  argv: MitmArgs,
  mitm: Mitm,
  summarize: (r: MitmReport) => void,
  findAttack: (name: string) => AttackModule,
  stop: () => void,
): () => Promise<void> {
  let queue: Promise<void> = Promise.resolve();
  let ended = false;
  const run = async (line: string): Promise<void> => {
    const [verb = '', name] = line.trim().split(/\s+/);
    if (verb === '' || ended) return;
    if (verb === 'end') {
      ended = true;
      stop();
      return;
    }
    try {
      if (verb !== 'attack' && verb !== 'off') throw new Error('commands: attack NAME | off | end');
      const next = verb === 'attack' ? findAttack(name ?? '') : undefined;
      const report = await mitm.switchAttack(next);
      if (report !== undefined) summarize(report);
      if (next !== undefined) {
        if (argv.json) process.stdout.write(`${terminalSafeJson({ event: 'attack', attack: next.name })}\n`);
        else process.stdout.write(`now attacking: ${next.name}: ${next.summary}\n`);
      }
    } catch (err) {
      const message = (err as Error).message;
      if (argv.json) process.stdout.write(`${terminalSafeJson({ event: 'error', message })}\n`);
      else process.stderr.write(`mallory: ${terminalSafe(message)}\n`);
    }
  };
  process.stdin.setEncoding('utf8');
  let buffer = '';
  process.stdin.on('data', (d: string) => {
    buffer += d;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      queue = queue.then(() => run(line));
    }
  });
  // The end of input is an `end` after the last line (a last line without a newline still runs): a
  // Mallory whose controller went away would otherwise keep listening with nobody to stop her.
  process.stdin.on('end', () => {
    const last = buffer;
    buffer = '';
    queue = queue.then(() => run(last)).then(() => run('end'));
  });
  // An open stdin keeps the process alive: let it go when Mallory stops.
  return async () => {
    ended = true;
    process.stdin.destroy();
    await queue;
  };
}

type Event = import('../../client/mitm/context.js').MitmEvent;

const ARROWS: Record<string, string> = {
  c2s: 'client  -> kdc   ',
  s2c: 'kdc     -> client',
  m2s: 'mallory -> kdc   ',
  m2c: 'mallory -> client',
  side: 'mallory <> kdc   ',
};

/**
 * One line per event: JSON lines with --json, else the watch format (colour only on a terminal). What
 * Mallory relays and decrypts is attacker- or victim-controlled: every field is made terminal-safe.
 */
export function printer(json: boolean): (e: Event) => void {
  const isTty =
    Boolean(process.stdout.isTTY) && process.env.NO_COLOR === undefined && process.env.TERM !== 'dumb';
  const c = (code: string, text: string): string => (isTty ? `\u001b[${code}m${text}\u001b[0m` : text);
  const actionColour: Record<string, string> = {
    forward: '2',
    hold: '36',
    drop: '31',
    modify: '33',
    inject: '35',
    replay: '33',
    reorder: '33',
    reflect: '33',
    're-encrypt': '35',
    terminate: '35',
    close: '2',
    session: '36',
    refused: '32',
    accepted: '31',
  };
  return (e) => {
    if (json) {
      process.stdout.write(`${terminalSafeJson({ ...e, at: Date.now() })}\n`);
      return;
    }
    let line: string;
    switch (e.event) {
      case 'frame':
        line = `#${e.conn} ${ARROWS[e.dir] ?? terminalSafe(e.dir)} ${terminalSafe(e.type).padEnd(13)} ${String(e.size).padStart(6)} B  ${c(actionColour[e.action] ?? '0', terminalSafe(e.action).padEnd(10))}${e.note === undefined ? '' : ` ${c('2', terminalSafe(e.note))}`}`;
        break;
      case 'info':
        line = c('36', `#${e.conn} ${terminalSafe(e.text)}`);
        break;
      case 'finding':
        line = `#${e.conn} ${e.outcome === 'succeeded' ? c('31;1', 'ATTACK SUCCEEDED') : e.outcome === 'failed' ? c('32;1', `STOPPED by ${terminalSafe(e.defence ?? '?')}`) : c('2', 'inconclusive')}: ${terminalSafe(e.detail)}${e.code === undefined ? '' : ` (${terminalSafe(e.code)})`}`;
        break;
      case 'stolen-key':
        line = c(
          '31;1',
          `#${e.conn} STOLEN KEY ${terminalSafe(e.key)} (serial ${terminalSafe(e.serial)}, fingerprint ${terminalSafe(e.fingerprint)}, from ${terminalSafe(e.source)})`,
        );
        break;
      case 'plaintext':
        line = c(
          '31',
          `#${e.conn} decrypted ${terminalSafe(e.dir)} ${terminalSafe(e.type)}: ${terminalSafe(e.text)}`,
        );
        break;
    }
    process.stdout.write(`${line}\n`);
  };
}

/**
 * `kds mitm --ablation`: client/mitm/ablation.ts in a temporary lab; one line per finished cell on
 * stderr, the table on stdout (--json: the report's array), the report file when --report is given.
 * Exit 0 when every row shows what docs/attacks.md says it shows, 1 otherwise.
 */
async function ablation(argv: MitmArgs): Promise<number> {
  const { runAblation } = await import('../../client/mitm/ablation.js');
  const { ABLATION_ROWS, rowSwitches } = await import('../../client/mitm/ablation-plan.js');
  const { ATTACKS } = await import('../../client/mitm/catalog.js');
  const { writeFileSync } = await import('node:fs');
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let results;
  try {
    const { issueLabIdentities } = await import('../ablation-lab.js');
    results = await runAblation({
      issueIdentities: issueLabIdentities,
      signal: controller.signal,
      onCell: (c) =>
        process.stderr.write(
          `${terminalSafe(c.attack)} [${c.defences.join(' + ') || 'all defences on'}]: ${c.outcome} — ${terminalSafe(c.summary)}\n`,
        ),
    });
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  const report = results.map((r) => ({
    attack: r.attack,
    defences: r.defences,
    withDefences: r.withDefences,
    without: r.without,
    stoppedBy: r.stoppedBy,
    stoppedWithout: r.stoppedWithout,
  }));
  if (argv.report !== undefined)
    writeFileSync(argv.report, `${JSON.stringify(report, null, 2)}\n`, { mode: 0o600 });
  if (argv.json) process.stdout.write(`${terminalSafeJson(report)}\n`);
  else {
    const w = Math.max(...results.map((r) => r.attack.length));
    const cell = (o: string, d: string | null): string =>
      o === 'failed' ? `failed (${d ?? '?'})` : o.toUpperCase();
    process.stdout.write(`${'attack'.padEnd(w)}  ${'all defences on'.padEnd(34)}  switched off -> outcome\n`);
    for (const r of results)
      process.stdout.write(
        `${r.attack.padEnd(w)}  ${cell(r.withDefences, r.stoppedBy).padEnd(34)}  ${r.defences.join(' + ')} -> ${cell(r.without, r.stoppedWithout)}\n`,
      );
  }
  // Every row as docs/attacks.md states it: all on, the catalog's defence stops it; off, the row's outcome.
  const asDocumented = results.every((r) => {
    const row = ABLATION_ROWS.find((x) => x.attack === r.attack);
    const attack = ATTACKS.find((a) => a.name === r.attack);
    return (
      row !== undefined &&
      attack !== undefined &&
      r.withDefences === 'failed' &&
      r.stoppedBy === attack.secure.defence &&
      r.without === row.without &&
      r.defences.join() === rowSwitches(row).join()
    );
  });
  return asDocumented ? 0 : 1;
}
