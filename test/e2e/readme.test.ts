// The README cannot rot: every ```sh block in README.md is executed here, in order, with bash, in a
// temporary directory, the way its reader would run it. How a block is run is said by the HTML comment
// just above it (invisible on GitHub):
//
//   <!-- readme-test: ATTR ... -->    ATTR is key=value or key="value with spaces"; keys may repeat
//     skip="reason"                   not run (only for installing, the test suite itself, benchmarks)
//     background name=N ready=RE      started in the background (a terminal left running); the next
//                                     block runs once its output matches RE; stopped with SIGINT at the
//                                     end, after every expect=RE of it has matched
//     ends                            (with background) the command ends by itself (`kds mitm --once`):
//                                     it is waited for, not interrupted, so no Ctrl-C races its own exit
//     after="N:RE"                    wait until background N has printed RE (what a reader waits for)
//     exit=CODE                       the expected exit status (default 0)
//     expect=RE                       stdout+stderr must match RE (repeatable)
//     capture="VAR=RE"                VAR (exported to later blocks) = RE's first group in the output
//
// Substitutions, so that the README can show the defaults: `npx kds` runs this checkout's bin/kds.js (a
// bash function, no registry involved); 127.0.0.1:8443 and 127.0.0.1:9443 become free ports; the
// environment has KDS_PORT and KDS_SERVER set for the KDC's port, and no other KDS_* variable.
// Inline `npx kds ...` commands in the prose are run too (they must exit 0).
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KDS_BIN, REPO_ROOT } from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';
import { freePort } from './keys-helpers.js';

t.setTimeout(240_000);

interface Marker {
  attrs: Map<string, string[]>;
  line: number;
}

interface Block {
  code: string;
  line: number;
  marker: Marker | undefined;
}

const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

function parseMarker(text: string, line: number): Marker {
  const attrs = new Map<string, string[]>();
  for (const m of text.matchAll(/([a-z][a-z-]*)(?:=(?:"([^"]*)"|(\S+)))?/g)) {
    const value = m[2] ?? m[3] ?? '';
    attrs.set(m[1]!, [...(attrs.get(m[1]!) ?? []), value]);
  }
  return { attrs, line };
}

/** The sh blocks, each with the marker above it (only blank lines may separate them). */
function shBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  let pending: Marker | undefined;
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i]!;
    const marker = /^<!-- readme-test:(.*)-->\s*$/.exec(line);
    if (marker !== null) {
      pending = parseMarker(marker[1]!, i + 1);
      continue;
    }
    const fence = /^```(\w*)\s*$/.exec(line);
    if (fence !== null) {
      const start = i;
      const body: string[] = [];
      for (i += 1; i < lines.length && !/^```\s*$/.test(lines[i]!); i += 1) body.push(lines[i]!);
      if (fence[1] === 'sh' || fence[1] === 'bash')
        blocks.push({ code: body.join('\n'), line: start + 1, marker: pending });
      pending = undefined;
      continue;
    }
    if (line.trim() !== '') pending = undefined;
  }
  return blocks;
}

const one = (m: Marker | undefined, key: string): string | undefined => m?.attrs.get(key)?.[0];
const all = (m: Marker | undefined, key: string): string[] => m?.attrs.get(key) ?? [];

interface Background {
  name: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function waitForOutput(
  what: string,
  output: () => string,
  re: RegExp,
  onData: (fn: () => void) => () => void,
  timeoutMs = 60_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let off = (): void => {};
    const timer = setTimeout(() => {
      off();
      reject(new Error(`${what}: no ${String(re)} within ${timeoutMs} ms; output:\n${output()}`));
    }, timeoutMs);
    const check = (): void => {
      if (!re.test(output())) return;
      clearTimeout(timer);
      off();
      resolve();
    };
    off = onData(check);
    check();
  });
}

t.test('every sh block of README.md runs as documented', async (t) => {
  const blocks = shBlocks(README);
  t.ok(blocks.length >= 10, `found ${blocks.length} sh blocks`);
  const skipped = blocks.filter((b) => one(b.marker, 'skip') !== undefined);
  t.same(
    skipped.map((b) => b.code.trim()),
    [
      'npm install && npm run demo',
      'npm test',
      'npm run bench\nnpm run bench -- startup keys',
      'npm run coverage',
    ],
    'only installing, the test suite itself (with or without coverage) and the benchmarks are not run here',
  );
  t.ok(
    existsSync(join(REPO_ROOT, 'test', 'e2e', 'demo.test.ts')),
    'npm run demo is run by test/e2e/demo.test.ts',
  );

  const dir = tempDir(t, 'kds-readme-');
  const kdcPort = await freePort();
  const malloryPort = await freePort();
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KDS_')) env[k] = v;
  env.NO_COLOR = '1';
  env.KDS_PORT = String(kdcPort);
  env.KDS_SERVER = `ws://127.0.0.1:${kdcPort}/kds`;
  const preamble = [
    'set -euo pipefail',
    `npx() { if [ "$1" = kds ]; then shift; node ${JSON.stringify(KDS_BIN)} "$@"; else command npx "$@"; fi; }`,
  ].join('\n');
  const script = (code: string): string =>
    `${preamble}\n${code.replaceAll('127.0.0.1:8443', `127.0.0.1:${kdcPort}`).replaceAll('127.0.0.1:9443', `127.0.0.1:${malloryPort}`)}\n`;

  const background = new Map<string, Background & { listeners: Set<() => void> }>();
  t.teardown(async () => {
    for (const bg of background.values()) {
      if (bg.child.exitCode === null && bg.child.signalCode === null) {
        process.kill(-bg.child.pid!, 'SIGKILL');
        await bg.exited;
      }
    }
  });

  for (const block of blocks) {
    const m = block.marker;
    if (one(m, 'skip') !== undefined) continue;
    const where = `README.md line ${block.line}`;
    const after = one(m, 'after');
    if (after !== undefined) {
      const [name, re] = [after.slice(0, after.indexOf(':')), after.slice(after.indexOf(':') + 1)];
      const bg = background.get(name);
      t.ok(bg, `${where}: background ${name} exists`);
      if (bg !== undefined)
        await waitForOutput(
          `${where} (after ${name})`,
          bg.output,
          new RegExp(re),
          (fn) => (bg.listeners.add(fn), () => bg.listeners.delete(fn)),
        );
    }
    if (m?.attrs.has('background') === true) {
      const name = one(m, 'name') ?? `bg${background.size}`;
      // Its own process group, so that SIGINT reaches the command and not only bash.
      const child = spawn('bash', ['-c', script(block.code)], {
        cwd: dir,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      let out = '';
      const listeners = new Set<() => void>();
      const onData = (d: string): void => {
        out += d;
        for (const fn of [...listeners]) fn();
      };
      child.stdout!.setEncoding('utf8').on('data', onData);
      child.stderr!.setEncoding('utf8').on('data', onData);
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      const bg = { name, child, output: () => out, exited, listeners };
      background.set(name, bg);
      await waitForOutput(
        `${where} (${name})`,
        bg.output,
        new RegExp(one(m, 'ready') ?? '.'),
        (fn) => (listeners.add(fn), () => listeners.delete(fn)),
      );
      continue;
    }
    const run = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn('bash', ['-c', script(block.code)], {
        cwd: dir,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, out });
      });
    });
    const diag = { block: block.code, output: run.out };
    t.equal(run.code, Number(one(m, 'exit') ?? 0), `${where}: exit status`, diag);
    for (const re of all(m, 'expect'))
      t.match(run.out, new RegExp(re), `${where}: output matches ${re}`, diag);
    for (const capture of all(m, 'capture')) {
      const [name, re] = [capture.slice(0, capture.indexOf('=')), capture.slice(capture.indexOf('=') + 1)];
      const found = new RegExp(re).exec(run.out)?.[1];
      t.ok(found, `${where}: captured ${name}`, diag);
      if (found !== undefined) env[name] = found;
    }
  }

  // The terminals left running: what they had to show, then Ctrl-C.
  for (const block of blocks.filter((b) => b.marker?.attrs.has('background') === true)) {
    const name = one(block.marker, 'name')!;
    const bg = background.get(name)!;
    for (const re of all(block.marker, 'expect')) {
      await waitForOutput(
        `background ${name}`,
        bg.output,
        new RegExp(re),
        (fn) => (bg.listeners.add(fn), () => bg.listeners.delete(fn)),
        20_000,
      );
      t.match(bg.output(), new RegExp(re), `background ${name}: output matches ${re}`);
    }
  }
  for (const block of blocks.filter((b) => b.marker?.attrs.has('background') === true).reverse()) {
    const bg = background.get(one(block.marker, 'name')!)!;
    const endsItself = block.marker!.attrs.has('ends');
    // A command that ends by itself gets time to do so; Ctrl-C only if it overstays (then it fails).
    const code = endsItself
      ? await Promise.race([
          bg.exited,
          new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000).unref()),
        ])
      : undefined;
    if (code === 'timeout' || (!endsItself && bg.child.exitCode === null && bg.child.signalCode === null))
      process.kill(-bg.child.pid!, 'SIGINT');
    const exited = code === undefined || code === 'timeout' ? await bg.exited : code;
    const diag = { output: bg.output(), signal: bg.child.signalCode };
    if (endsItself) {
      t.not(code, 'timeout', `background ${bg.name} ended by itself within 30 s`, diag);
      t.equal(exited, 0, `background ${bg.name} exit status`, diag);
    } else t.equal(exited, 0, `background ${bg.name} stops cleanly on Ctrl-C`, diag);
  }
});

t.test('inline `npx kds ...` commands in the prose run', async (t) => {
  const inline = [...new Set([...README.matchAll(/`(npx kds [^`]*)`/g)].map((m) => m[1]!))];
  t.ok(inline.length >= 2, `found ${inline.length}: ${inline.join(' | ')}`);
  for (const command of inline) {
    const args = command.split(' ').slice(2);
    const r = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [KDS_BIN, ...args], { cwd: tempDir(t), stdio: 'ignore' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    t.equal(r, 0, command);
  }
});

t.test('relative links in README.md point at files of the checkout', async (t) => {
  const links = [...new Set([...README.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)].map((m) => m[1]!))].filter(
    (l) => !/^[a-z]+:/.test(l),
  );
  t.ok(links.length >= 8, `found ${links.length} links`);
  for (const link of links) t.ok(existsSync(join(REPO_ROOT, link)), `${link} exists`);
});
