// Reading Markdown tables out of docs/*.md for tests that check a document against the code.

/** Cells of one table row: split on `|` not preceded by a backslash, outer pipes dropped, trimmed. */
export function cells(row: string): string[] {
  const inner = row
    .trim()
    .replace(/^\|/, '')
    .replace(/(?<!\\)\|$/, '');
  return inner.split(/(?<!\\)\|/).map((c) => c.trim());
}

/** The rows (header and delimiter excluded) of the first table after the line matching `heading`. */
export function tableAfter(text: string, heading: RegExp): string[][] {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => heading.test(l));
  if (start < 0) throw new Error(`no line matching ${heading.source}`);
  let i = start + 1;
  while (i < lines.length && !lines[i]!.trim().startsWith('|')) i++;
  const rows: string[][] = [];
  for (i += 2; i < lines.length && lines[i]!.trim().startsWith('|'); i++) rows.push(cells(lines[i]!));
  return rows;
}

/** `a` -> a (one code span), and `\|` -> | as GitHub renders it inside a table. */
export function unquote(cell: string): string {
  return cell.replace(/^`(.*)`$/, '$1').replace(/\\\|/g, '|');
}
