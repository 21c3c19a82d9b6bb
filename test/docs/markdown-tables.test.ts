// Every Markdown table in docs/*.md renders as its author meant: each row has as many cells as the
// header, and no row holds an unescaped `||` (in a GitHub table a `|` ends the cell even inside a code
// span, so the byte concatenation `a || b` must be written `a \|\| b` there). Fenced code blocks are not
// tables and are skipped.
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cells } from '../helpers/markdown.js';

const DOCS = resolve(dirname(fileURLToPath(import.meta.url)), '../../../docs');

/** The problems of one Markdown text, as `line N: ...`. */
function tableProblems(text: string): string[] {
  const out: string[] = [];
  const lines = text.split('\n');
  let fenced = false;
  let columns: number | undefined;
  lines.forEach((line, i) => {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    const isRow = !fenced && /^\s*\|/.test(line);
    if (!isRow) {
      columns = undefined;
      return;
    }
    if (/(?<!\\)\|\|/.test(line)) out.push(`line ${i + 1}: an unescaped || inside a table row`);
    const n = cells(line).length;
    if (columns === undefined) {
      columns = n; // the header row
      return;
    }
    if (n !== columns) out.push(`line ${i + 1}: ${n} cells, the header has ${columns}`);
  });
  return out;
}

t.test('the checker finds what broke protocol.md', async (t) => {
  t.same(tableProblems('| a | b |\n| - | - |\n| `x || y` | z |\n'), [
    'line 3: an unescaped || inside a table row',
    'line 3: 4 cells, the header has 2',
  ]);
  t.same(tableProblems('| a | b |\n| - | - |\n| `x \\|\\| y` | z |\n'), [], 'escaped pipes are fine');
  t.same(tableProblems('```\n| a || b |\n```\n'), [], 'code blocks are not tables');
  t.same(tableProblems('| a | b |\n| - | - |\n|   | z |\n'), [], 'an empty cell is a cell');
});

for (const name of readdirSync(DOCS).filter((f) => f.endsWith('.md'))) {
  t.test(`docs/${name}: every table row has the header's cells, no unescaped ||`, async (t) => {
    t.same(tableProblems(readFileSync(resolve(DOCS, name), 'utf8')), []);
  });
}
