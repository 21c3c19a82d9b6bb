// `npm run docs`: regenerate docs/messages.md from the code (tools/message-reference.ts), formatted by
// prettier with the repository's settings so `npm run check` accepts it as written.
//
//   npm run docs            write docs/messages.md
//   npm run docs -- --check exit 1 (and say so) when docs/messages.md is not what the code renders
//   npm run docs -- --ablation  also run the MITM lab's ablation table (`kds mitm --ablation`, a minute
//                           or two of real processes) and write it into docs/attacks.md
//   npm run docs -- --ablation-from FILE  the same from the report of `kds mitm --ablation --report FILE`
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import * as prettier from 'prettier';
import '../shared/protocol/catalog.js';
import { registry } from '../server/kdc/dispatch.js';
import '../server/kdc-handlers/index.js';
import { renderMessageReference } from './message-reference.js';
import { renderAblationTable, spliceAblationTable } from './ablation-table.js';
import type { AblationResult } from '../client/mitm/ablation.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const MESSAGES_MD = resolve(ROOT, 'docs/messages.md');
export const ATTACKS_MD = resolve(ROOT, 'docs/attacks.md');

/** docs/attacks.md with the ablation table of `results`, prettier-formatted. */
export async function attacksMarkdown(results: readonly AblationResult[]): Promise<string> {
  const doc = spliceAblationTable(readFileSync(ATTACKS_MD, 'utf8'), renderAblationTable(results));
  const config = (await prettier.resolveConfig(ATTACKS_MD)) ?? {};
  return prettier.format(doc, { ...config, filepath: ATTACKS_MD });
}

/** docs/messages.md as the code renders it, prettier-formatted. */
export async function messagesMarkdown(): Promise<string> {
  const text = renderMessageReference({ rolesOf: (type) => registry.get(type)?.roles });
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
}
