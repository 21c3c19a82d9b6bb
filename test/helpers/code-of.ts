// The error code a promise settles with: `succeeded` when it fulfils; anything that is not a KdsError is
// rethrown (a test that expects a refusal must not mistake a crash for one).
import { KdsError } from '../../shared/errors.js';

export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof KdsError) return err.code;
    throw err;
  }
  return 'succeeded';
}
