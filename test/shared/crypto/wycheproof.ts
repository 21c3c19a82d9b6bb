// Loads a Wycheproof vector file from test/vectors/wycheproof/ (source tree; tsc copies no JSON).
// Compiled to dist/test/shared/crypto/: four levels up is the repository root.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const WYCHEPROOF_DIR = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '../../../../test/vectors/wycheproof',
);

export interface WycheproofFile<G> {
  algorithm: string;
  numberOfTests: number;
  testGroups: G[];
}

export function loadWycheproof<G>(file: string): WycheproofFile<G> {
  return JSON.parse(readFileSync(resolve(WYCHEPROOF_DIR, file), 'utf8')) as WycheproofFile<G>;
}

export const hex = (s: string): Buffer => Buffer.from(s, 'hex');
