// shared/lab-switches.ts: the ablation switches of the MITM lab. Two kinds of test:
// - a scan of every source file: each check reads its own switch through labOff(defences, '<name>')
//   right under a `// LAB SWITCH <name>:` comment naming the same switch, nothing reads a switch any
//   other way, and every switch has at least one check;
// - each switch in the pure layers removes its check and nothing else (record layer, channel,
//   handshake), and the all-on default changes nothing.
import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ALL_DEFENCES_ON,
  LAB_SWITCHES,
  LAB_SWITCH_DEFENCE,
  LAB_SWITCH_EFFECT,
  defencesWithout,
  labOff,
  switchedOff,
  type LabSwitch,
} from '../../shared/lab-switches.js';
import { RecordOpener, RecordSealer } from '../../shared/protocol/record-layer.js';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const SOURCE_DIRS = ['shared', 'server', 'client', 'cli', 'tools', 'bench'];

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const files = SOURCE_DIRS.flatMap((d) => sources(join(ROOT, d)));
const DEFINITION = join(ROOT, 'shared', 'lab-switches.ts');

t.test('the scan sees the source tree', async (t) => {
  t.ok(files.length > 100, `${files.length} source files`);
  t.ok(files.includes(DEFINITION));
});

t.test('every labOff call reads the switch its LAB SWITCH comment names, and only that one', async (t) => {
  const seen = new Map<LabSwitch, string[]>();
  const problems: string[] = [];
  for (const file of files) {
    if (file === DEFINITION) continue;
    const lines = readFileSync(file, 'utf8').split('\n');
    lines.forEach((line, i) => {
      const where = `${relative(ROOT, file)}:${i + 1}`;
      const calls = [...line.matchAll(/\blabOff\(([^,]+),\s*([^)]*)\)/g)];
      // An import (one line, or one name per line of a multi-line import) is not a read.
      if (/\blabOff\b/.test(line) && !/^\s*(import|const \{|labOff,?\s*$)/.test(line) && calls.length === 0)
        problems.push(`${where}: labOff used without a call on one line`);
      for (const call of calls) {
        const literal = /^'([a-z0-9-]+)'$/.exec(call[2]!.trim());
        if (literal === null) {
          problems.push(`${where}: labOff's switch must be a string literal, got ${call[2]}`);
          continue;
        }
        const name = literal[1] as LabSwitch;
        const comment = /\/\/ LAB SWITCH ([a-z0-9-]+):/.exec(lines[i - 1] ?? '');
        if (comment === null)
          problems.push(`${where}: no "// LAB SWITCH ${name}:" comment on the line above`);
        else if (comment[1] !== name)
          problems.push(`${where}: the comment names ${comment[1]} but the check reads ${name}`);
        if (!(LAB_SWITCHES as readonly string[]).includes(name))
          problems.push(`${where}: unknown switch ${name}`);
        seen.set(name, [...(seen.get(name) ?? []), where]);
      }
      // Any other way of reading a switch: an index or a property of a Defences object.
      if (/\bdefences\s*\[\s*['"`a-z]|\bdefences\.(authentication|revocation)\b|\bDefences\[/.test(line))
        problems.push(`${where}: a switch read outside labOff`);
    });
  }
  t.same(problems, [], 'every switch read is a labOff under its own comment');
  t.same(
    LAB_SWITCHES.filter((s) => !seen.has(s)),
    [],
    'every switch has at least one check',
  );
});

t.test('no check outside cli/ looks at the gate (KDS_ALLOW_INSECURE) or the flag', async (t) => {
  const offenders = files.filter((f) => {
    if (relative(ROOT, f).startsWith('cli') || f === DEFINITION) return false;
    const text = readFileSync(f, 'utf8');
    // The gate's key and the flag's name belong to cli/ alone (other settings, e.g. KDS_DEBUG, may be read).
    const code = text
      .split('\n')
      .filter((l) => !/^\s*(\/\/|\*|\/\*)/.test(l))
      .join('\n');
    return /\blabOff\(/.test(code) && /KDS_ALLOW_INSECURE|KDS_LAB_DISABLE|process\.argv/.test(code);
  });
  t.same(
    offenders.map((f) => relative(ROOT, f)),
    [],
  );
});

t.test('docs/attacks.md lists every switch with what it removes', async (t) => {
  const doc = readFileSync(join(ROOT, 'docs', 'attacks.md'), 'utf8');
  for (const s of LAB_SWITCHES)
    t.match(
      doc,
      new RegExp(
        `\\| \`${s}\` +\\| [^|]+\\| [^|]*${LAB_SWITCH_EFFECT[s].slice(0, 30).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`,
      ),
      s,
    );
});

t.test('the default is all on, frozen; a set with switches off is frozen too', async (t) => {
  t.ok(Object.isFrozen(ALL_DEFENCES_ON));
  t.same(switchedOff(ALL_DEFENCES_ON), []);
  t.equal(defencesWithout([]), ALL_DEFENCES_ON);
  const d = defencesWithout(['sequence-number', 'revocation', 'sequence-number']);
  t.ok(Object.isFrozen(d));
  t.same(switchedOff(d), ['sequence-number', 'revocation']);
  t.equal(labOff(d, 'sequence-number'), true);
  t.equal(labOff(d, 'record-authentication'), false);
  t.equal(labOff(undefined, 'sequence-number'), false, 'no set at all: every defence on');
  t.throws(() => {
    (ALL_DEFENCES_ON as Record<string, boolean>)['sequence-number'] = false;
  }, TypeError);
  for (const s of LAB_SWITCHES) {
    t.ok(LAB_SWITCH_EFFECT[s].length > 10, `${s} has its effect documented`);
    t.ok(LAB_SWITCH_DEFENCE[s].length > 0, `${s} names its defence`);
  }
});

const key = Buffer.alloc(32, 0x5a);
const iv = Buffer.from('000102030405060708090a0b', 'hex');
const msgs = ['one', 'two', 'three'].map((m) => Buffer.from(m));

t.test('record layer, sequence-number off: replayed, reordered and skipped records open', async (t) => {
  const off = defencesWithout(['sequence-number']);
  const tx = new RecordSealer(key, iv, 'c2s');
  const sealed = msgs.map((m) => tx.seal(m));
  const rx = new RecordOpener(key, iv, 'c2s', undefined, off);
  t.equal(rx.open(sealed[1]!).toString(), 'two', 'skipped #0');
  t.equal(rx.open(sealed[0]!).toString(), 'one', 'reordered');
  t.equal(rx.open(sealed[0]!).toString(), 'one', 'replayed');
  t.equal(rx.open(sealed[2]!).toString(), 'three');
  const flipped = Buffer.from(sealed[0]!);
  flipped[0]! ^= 1;
  t.throws(() => rx.open(flipped), { code: 'record_auth' }, 'the tag is still checked');
  const on = new RecordOpener(key, iv, 'c2s', undefined, ALL_DEFENCES_ON);
  t.equal(on.open(sealed[0]!).toString(), 'one');
  t.throws(() => on.open(sealed[0]!), { code: 'record_auth' }, 'all on: the replay fails');
});

t.test('record layer, record-authentication off: an altered record opens altered', async (t) => {
  const off = defencesWithout(['record-authentication']);
  const tx = new RecordSealer(key, iv, 'c2s');
  const sealed = msgs.map((m) => tx.seal(m));
  const altered = Buffer.from(sealed[0]!);
  altered[0]! ^= 0x01;
  altered[altered.length - 1]! ^= 0xff; // the tag too: it is not looked at
  const rx = new RecordOpener(key, iv, 'c2s', undefined, off);
  t.equal(rx.open(altered).toString(), 'nne', 'the flipped bit reaches the plaintext');
  t.equal(rx.open(sealed[1]!).toString(), 'two', 'the sequence number is still counted');
  t.throws(() => rx.open(sealed[1]!.subarray(0, 10)), { code: 'record_auth' }, 'shorter than a tag');
  const on = new RecordOpener(key, iv, 'c2s');
  t.throws(() => on.open(altered), { code: 'record_auth' }, 'all on: the tag fails');
});
