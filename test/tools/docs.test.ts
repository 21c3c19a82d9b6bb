// docs/messages.md is what tools/message-reference.ts renders from the code, byte for byte: a schema
// changed without `npm run docs` fails here, so the reference cannot drift from what validate()
// enforces. Also: the catalog and the KDC's handler table name the same request types.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { appTypeNames, getAppType } from '../../shared/protocol/catalog.js';
import { HandlerRegistry } from '../../server/kdc/dispatch.js';
import { KDC_HANDLERS } from '../../server/kdc-handlers/index.js';
import { messagesMarkdown, MESSAGES_MD } from '../../tools/docs.js';

t.test('docs/messages.md is what the code renders (regenerate with `npm run docs`)', async (t) => {
  const wanted = await messagesMarkdown();
  const current = readFileSync(MESSAGES_MD, 'utf8');
  if (current !== wanted) {
    const a = current.split('\n');
    const b = wanted.split('\n');
    const at = a.findIndex((line, i) => line !== b[i]);
    t.fail(
      `docs/messages.md differs from the code at line ${at + 1}: run \`npm run docs\` and commit the result\n` +
        `  file: ${JSON.stringify(a[at])}\n  code: ${JSON.stringify(b[at])}`,
    );
  } else t.pass('docs/messages.md is up to date');
});

t.test('the reference shows every type, every field and every rule of the catalog', async (t) => {
  const text = await messagesMarkdown();
  for (const name of appTypeNames()) {
    t.match(text, new RegExp(`^### ${name.replace(/\./g, '\\.')}$`, 'm'), name);
    const spec = getAppType(name)!;
    for (const part of ['request', 'response', 'push'] as const) {
      for (const field of Object.keys(spec[part]?.fields ?? {})) {
        t.ok(text.includes(`| \`${field}\``), `${name} ${part}.${field}`);
      }
      if (spec[part]?.rule !== undefined) t.ok(text.includes(spec[part]!.rule!), `${name} ${part} rule`);
    }
  }
  // Fields an implementer once had to find out by probing the server.
  t.match(
    text,
    /### key\.verify[\s\S]*?Response body[\s\S]*?\| `state` +\| `enum\{active, revoked, expired, superseded\}` +\| optional/,
  );
  t.match(text, /### key\.ack[\s\S]*?\| `acknowledged` +\| `uint` +\| required/);
  t.match(
    text,
    /### key\.prekeys[\s\S]*?\| `prekeys\[\]\.id` +\| `str\[16\] ~ \^\[0-9a-f\]\{16\}\$` +\| required/,
  );
  t.match(text, /### ready[\s\S]*?\| `expiresAt` +\| `uint \(epoch ms\)` +\| optional/);
});

t.test('every request type of the catalog has a KDC handler, and every handler a catalog type', async (t) => {
  const requests = appTypeNames().filter((n) => getAppType(n)!.request !== undefined);
  t.same(new HandlerRegistry(KDC_HANDLERS).types(), requests);
});
