// The verdict of the fuzz tests on one server answer: what "every bad frame is answered by an error code
// and a close" means in code. Acceptable: the mutant was still valid (progress), or an alert /
// session.closing with a KNOWN error code followed by exactly the close code shared/errors.ts maps it to
// (ws's own 1009 for a message over maxPayload, which has no room for an alert; a bare 4005 close with
// reason record_auth for a record that failed authentication, which is never answered). Not acceptable: a
// hang, a close without a code, an unknown code, or a code that blames the server for the client's
// bytes (`internal`, `store_error`, `io_error`: an exception nobody anticipated, or a constraint the
// handler should have checked first).
import { closeCodeFor, isErrorCode, type ErrorCode } from '../../shared/errors.js';
import { MAX_FRAME_BYTES } from '../../shared/protocol/limits.js';
import type { Mutant } from './mutate.js';

export type Outcome =
  | { kind: 'alert'; code: string; closeCode: number | undefined }
  | { kind: 'progress' }
  /** An `error` response to a request whose envelope was readable: the session deliberately stays open. */
  | { kind: 'answered'; code: string }
  /** A close with no alert or push before it; `closeReason` is the close frame's reason text. */
  | { kind: 'closed-silently'; closeCode: number | undefined; closeReason?: string }
  | { kind: 'hang' };

/** Codes that mean the server failed, not the input: hostile input must never produce them. */
export const SERVER_FAULT_CODES: ReadonlySet<string> = new Set(['internal', 'store_error', 'io_error']);

export function expectedClose(code: ErrorCode): number {
  return code === 'unavailable' ? 1001 : closeCodeFor(code);
}

/** Returns the outcome's label ('accepted' or the error code); throws with the mutant when unacceptable. */
export function judge(m: Mutant, out: Outcome, context = ''): string {
  const where = `${context}${m.kind} ${m.bytes.subarray(0, 96).toString('hex')}`;
  if (out.kind === 'hang') throw new Error(`no answer within the timeout to ${where}`);
  if (out.kind === 'progress') return 'accepted';
  if (out.kind === 'closed-silently') {
    if (out.closeCode === 1009 && m.bytes.length > MAX_FRAME_BYTES) return 'frame_too_large';
    // A record that fails authentication is never answered (docs/protocol.md "Transport"): the close
    // (4005, reason record_auth) is the whole answer.
    if (out.closeReason === 'record_auth' && out.closeCode === expectedClose('record_auth'))
      return 'record_auth';
    throw new Error(`closed (${out.closeCode}) without an error code for ${where}`);
  }
  if (!isErrorCode(out.code)) throw new Error(`unknown error code ${out.code} for ${where}`);
  if (SERVER_FAULT_CODES.has(out.code)) throw new Error(`server fault ${out.code} for ${where}`);
  if (out.kind === 'answered') return out.code;
  if (out.closeCode !== expectedClose(out.code)) {
    throw new Error(
      `${out.code} closed with ${out.closeCode}, expected ${expectedClose(out.code)} (${where})`,
    );
  }
  return out.code;
}
