// The loader hooks of test/cli/module-trace.ts: append each loaded module's URL to the trace file.
import { appendFileSync } from 'node:fs';

let out = '';

export function initialize(data: { out: string }): void {
  out = data.out;
}

export async function load(
  url: string,
  context: unknown,
  nextLoad: (url: string, context: unknown) => Promise<unknown>,
): Promise<unknown> {
  appendFileSync(out, `${url}\n`);
  return nextLoad(url, context);
}
