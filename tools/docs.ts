// `npm run docs`: regenerate docs/messages.md from the code (tools/message-reference.ts), formatted by
// prettier with the repository's settings so `npm run check` accepts it as written.
//
//   npm run docs            write docs/messages.md
//   npm run docs -- --check exit 1 (and say so) when docs/messages.md is not what the code renders
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import * as prettier from 'prettier';
import '../shared/protocol/catalog.js';
import { registry } from '../server/kdc/dispatch.js';
import '../server/kdc-handlers/index.js';
import { renderMessageReference } from './message-reference.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const MESSAGES_MD = resolve(ROOT, 'docs/messages.md');

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
}
