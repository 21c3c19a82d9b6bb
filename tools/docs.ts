// `npm run docs`: regenerate docs/messages.md from the code (tools/message-reference.ts), formatted by
// prettier with the repository's settings so `npm run check` accepts it as written.
//
//   npm run docs            write docs/messages.md
//   npm run docs -- --check exit 1 (and say so) when docs/messages.md is not what the code renders
//   npm run docs -- --ablation  also run the MITM lab's ablation table (`kds mitm --ablation`, a minute
//                           or two of real processes) and write it into docs/attacks.md
//   npm run docs -- --ablation-from FILE  the same from the report of `kds mitm --ablation --report FILE`
//   npm run docs -- --demo  also run `kds demo` (half a minute of real processes) and write the KDC's
//                           lines under each step into docs/attacks.md ("The KDC's side")
//   npm run docs -- --demo-from FILE  the same from a saved `kds demo --json > FILE`
import { readFileSync, writeFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import * as prettier from 'prettier';
import '../shared/protocol/catalog.js';
import { HandlerRegistry } from '../server/kdc/dispatch.js';
import { KDC_HANDLERS } from '../server/kdc-handlers/index.js';
import { renderMessageReference } from './message-reference.js';
import { renderAblationTable, spliceAblationTable } from './ablation-table.js';
import type { AblationResult } from '../client/mitm/ablation.js';
import { renderKdcSide, spliceKdcSide, type DemoLogEvent } from './kdc-side.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const MESSAGES_MD = resolve(ROOT, 'docs/messages.md');
export const ATTACKS_MD = resolve(ROOT, 'docs/attacks.md');

/** docs/attacks.md with the ablation table of `results`, prettier-formatted. */
export async function attacksMarkdown(results: readonly AblationResult[]): Promise<string> {
  const doc = spliceAblationTable(readFileSync(ATTACKS_MD, 'utf8'), renderAblationTable(results));
  const config = (await prettier.resolveConfig(ATTACKS_MD)) ?? {};
  return prettier.format(doc, { ...config, filepath: ATTACKS_MD });
}

/** docs/attacks.md with the KDC's side of the demo run whose --json log is `events`, prettier-formatted. */
async function attacksMarkdownWithKdcSide(events: readonly DemoLogEvent[]): Promise<string> {
  const doc = spliceKdcSide(readFileSync(ATTACKS_MD, 'utf8'), renderKdcSide(events));
  const config = (await prettier.resolveConfig(ATTACKS_MD)) ?? {};
  return prettier.format(doc, { ...config, filepath: ATTACKS_MD });
}

function parseJsonLines(text: string): DemoLogEvent[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as DemoLogEvent);
}

/** A real `kds demo --json` run in this process; its event log. */
async function runDemoForDocs(): Promise<DemoLogEvent[]> {
  const { runDemo } = await import('../client/demo/run-demo.js');
  const out = new PassThrough();
  let text = '';
  out.setEncoding('utf8').on('data', (d: string) => (text += d));
  const plain = (x: string): string => x;
  const code = await runDemo({
    json: true,
    step: false,
    out,
    promptOut: process.stderr,
    input: new PassThrough(),
    style: { symbol: (ok) => (ok ? 'OK' : 'FAIL'), ok: plain, bad: plain, bold: plain, dim: plain },
  });
  if (code !== 0) throw new Error(`the demo failed (exit ${code}): nothing written`);
  return parseJsonLines(text);
}

/** docs/messages.md as the code renders it, prettier-formatted. */
export async function messagesMarkdown(): Promise<string> {
  const handlers = new HandlerRegistry(KDC_HANDLERS);
  const text = renderMessageReference({ rolesOf: (type) => handlers.rolesOf(type) });
  const config = (await prettier.resolveConfig(MESSAGES_MD)) ?? {};
  return prettier.format(text, { ...config, filepath: MESSAGES_MD });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const wanted = await messagesMarkdown();
  if (process.argv.includes('--check')) {
    const current = readFileSync(MESSAGES_MD, 'utf8');
    if (current !== wanted) {
      process.stderr.write('docs/messages.md is out of date: run `npm run docs`\n');
      process.exit(1);
    }
  } else {
    writeFileSync(MESSAGES_MD, wanted);
    process.stdout.write('wrote docs/messages.md\n');
  }
  const from = process.argv.indexOf('--ablation-from');
  if (from > 0) {
    // The report of a `kds mitm --ablation --report FILE` run: the same table without running it again.
    const results = JSON.parse(readFileSync(process.argv[from + 1] ?? '', 'utf8')) as AblationResult[];
    writeFileSync(ATTACKS_MD, await attacksMarkdown(results));
    process.stdout.write('wrote the ablation table into docs/attacks.md\n');
  } else if (process.argv.includes('--ablation')) {
    const { runAblation } = await import('../client/mitm/ablation.js');
    const { issueLabIdentities } = await import('../cli/ablation-lab.js');
    const results = await runAblation({
      issueIdentities: issueLabIdentities,
      onCell: (c) =>
        process.stderr.write(`${c.attack} [${c.defences.join(' + ') || 'all on'}]: ${c.outcome}\n`),
    });
    writeFileSync(ATTACKS_MD, await attacksMarkdown(results));
    process.stdout.write('wrote the ablation table into docs/attacks.md\n');
  }
  const demoFrom = process.argv.indexOf('--demo-from');
  if (demoFrom > 0 || process.argv.includes('--demo')) {
    const events =
      demoFrom > 0
        ? parseJsonLines(readFileSync(process.argv[demoFrom + 1] ?? '', 'utf8'))
        : await runDemoForDocs();
    writeFileSync(ATTACKS_MD, await attacksMarkdownWithKdcSide(events));
    process.stdout.write("wrote the KDC's side of the demo into docs/attacks.md\n");
  }
}
