// docs/protocol.md against the code it describes: the type column of each frame table is exactly what
// describeSchema says of that frame's schema (so the hand-written tables cannot drift from the
// validator), every field of every frame is in its table, and every close code in the Errors table is
// the one shared/errors.ts maps the code to.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { closeCodeFor, isErrorCode } from '../../shared/errors.js';
import { FRAME_SCHEMAS } from '../../shared/protocol/messages.js';
import { describeSchema, type MapSchema } from '../../shared/protocol/schema.js';
import { tableAfter, unquote } from '../helpers/markdown.js';

const PROTOCOL_MD = resolve(dirname(fileURLToPath(import.meta.url)), '../../../docs/protocol.md');
const text = readFileSync(PROTOCOL_MD, 'utf8');

const HEADINGS: Record<keyof typeof FRAME_SCHEMAS, RegExp> = {
  client_hello: /^### client_hello /,
  server_hello: /^### server_hello /,
  client_finish: /^### client_finish /,
  alert: /^### alert /,
  r: /^### record /,
};

for (const [frame, schema] of Object.entries(FRAME_SCHEMAS)) {
  t.test(`protocol.md: the ${frame} table says what its schema enforces`, async (t) => {
    const rows = tableAfter(text, HEADINGS[frame as keyof typeof FRAME_SCHEMAS]);
    t.same(
      rows.map((r) => unquote(r[0]!)),
      Object.keys(schema.fields),
      'every field, in schema (encoding) order',
    );
    for (const row of rows) {
      const field = unquote(row[0]!);
      const spec = (schema as MapSchema).fields[field];
      if (spec === undefined) continue;
      t.equal(unquote(row[1]!), describeSchema(spec), `${frame}.${field}`);
    }
  });
}

t.test('protocol.md: each close code of the Errors table is the one shared/errors.ts maps', async (t) => {
  const rows = tableAfter(text, /^## Errors$/);
  t.ok(rows.length > 20);
  for (const row of rows) {
    const codes = [...row[0]!.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!);
    t.ok(codes.length > 0, `codes in ${row[0]}`);
    for (const code of codes) {
      t.ok(isErrorCode(code), `${code} is a code`);
      if (isErrorCode(code)) t.equal(closeCodeFor(code), Number(row[2]), `${code} closes with ${row[2]}`);
    }
  }
});
