// Verification verdicts (docs/keys.md "Requirements", flow 1 step 5): the digest a party received
// against the stored record, the record against itself (digest column against the stored ciphertext
// or the KEK-unwrapped key), the receiver's transcript signature, and the key's state.
import { AuthError, InputError } from '../../shared/errors.js';
import { equalBytes } from '../../shared/crypto/ct.js';
import { labOff } from '../../shared/lab-switches.js';
import { ciphertextDigest, kdcKeyDigest } from '../../shared/keys/digest.js';
import { verifyTranscriptSignature } from '../../shared/keys/exchange.js';
import { e2eTranscriptHash, kdcTranscriptHash } from '../../shared/keys/transcript.js';
import { verdictForState, type KeyState, type Verdict } from '../../shared/keys/verdict.js';
import { assertCallerCurrent } from '../kdc/caller-status.js';
import type { SymKeyRecord } from '../store/store.js';
import { verifiedPush } from './deliveries.js';
import type { DeliveryQueue } from './delivery-queue.js';
import type { Caller, KeyContext } from './key-context.js';
import { issuedState, type KeyLookup } from './key-lookup.js';

/** key.verify's request: the caller's digest, the receiver's transcript signature, delivery ids to ack. */
export interface VerifyRequest {
  serial: string;
  digest: Buffer;
  signature?: Buffer;
  ack?: readonly number[];
}

export interface VerifyResult {
  serial: string;
  verdict: Verdict;
  peerVerified: boolean;
  state?: KeyState;
  reason?: string;
  revokedAt?: number;
}

/** One item's answer in key.verify.batch: a verdict, or the code its single key.verify would fail with. */
export type VerifyBatchResult = VerifyResult | { serial: string; error: string; message: string };

interface Checked {
  rec: SymKeyRecord | undefined;
  record: boolean;
  result: VerifyResult;
}

interface VerifyItemFailure {
  failed: { serial: string; error: string; message: string };
}

export class KeyVerification {
  readonly #ctx: KeyContext;
  readonly #lookup: KeyLookup;
  readonly #queue: DeliveryQueue;

  constructor(ctx: KeyContext, lookup: KeyLookup, queue: DeliveryQueue) {
    this.#ctx = ctx;
    this.#lookup = lookup;
    this.#queue = queue;
  }

  /**
   * Flow 1 step 5 (docs/keys.md "Requirements"): "it compares the digest of what Bob received with what it stored, and the
   * key's state". The stored record is checked against itself too (the digest column against the
   * stored ciphertext, or the KEK-unwrapped key), so tampering with either column says `mismatch`.
   * With a signature from the receiver over the transcript, a `valid` verdict also records that the
   * receiver accepted the key and tells the owner (`key.verified`).
   *
   * `ack` (optional) acknowledges the caller's own queued deliveries, as key.ack does, in the same
   * commit as the verification: the receiver sends the id of the key.delivered notice it has stored,
   * which saves a request and a commit per key. The ids are deleted before this answers, whatever the
   * verdict; if the caller disconnects before sending key.verify, the notice stays queued.
   */
  async verify(caller: Caller, req: VerifyRequest): Promise<VerifyResult> {
    const ack = req.ack ?? [];
    const checked = await this.#check(caller, req);
    if (checked.rec === undefined) {
      if (ack.length > 0) await this.#queue.ack(caller, ack);
      return checked.result;
    }
    if (checked.record) {
      await this.#record(caller, [{ rec: checked.rec, result: checked.result }], ack);
    } else if (ack.length > 0) {
      await this.#queue.ack(caller, ack);
    }
    return checked.result;
  }

  /**
   * `key.verify.batch` (docs/keys.md "Batches"): each item is checked exactly as `key.verify` checks one,
   * in order, and gets its own answer. An item whose check throws what the caller got wrong for that
   * key alone (a signature that does not verify: `bad_signature`; a signature from the key's owner:
   * `bad_request`) gets that code as its answer, and the others go on. The `valid` verdicts that record
   * the receiver's acceptance are written together, with the acks, by ONE group-commit caller that
   * re-checks the caller's certificate first: refused (`cert_revoked`), the whole request fails and
   * nothing of it is written.
   */
  async verifyBatch(
    caller: Caller,
    req: { items: readonly Omit<VerifyRequest, 'ack'>[]; ack?: readonly number[] },
  ): Promise<VerifyBatchResult[]> {
    const ack = req.ack ?? [];
    const answers: (Checked | VerifyItemFailure)[] = [];
    for (const item of req.items) {
      try {
        answers.push(await this.#check(caller, item));
      } catch (err) {
        if (!(err instanceof AuthError || err instanceof InputError)) throw err;
        answers.push({ failed: { serial: item.serial, error: err.code, message: err.message } });
      }
    }
    const writes = answers.filter(
      (a): a is Checked & { rec: SymKeyRecord } => 'record' in a && a.record && a.rec !== undefined,
    );
    if (writes.length > 0) await this.#record(caller, writes, ack);
    else if (ack.length > 0) await this.#queue.ack(caller, ack);
    return answers.map((a) => ('failed' in a ? a.failed : a.result));
  }

  /**
   * One key's verdict, without writing (flow 1 step 6). `record`: the verdict is `valid` on the
   * receiver's signature and the KDC has not recorded its acceptance yet, so #record must.
   */
  async #check(caller: Caller, req: Omit<VerifyRequest, 'ack'>): Promise<Checked> {
    const ctx = this.#ctx;
    const rec = await this.#lookup.find(caller, req.serial);
    if (rec === undefined) {
      return {
        rec,
        record: false,
        result: { serial: req.serial, verdict: 'not_found', peerVerified: false },
      };
    }
    const isPeer = rec.peer === caller.name;
    if (req.signature !== undefined && !isPeer) {
      throw new InputError('bad_request', 'only the receiver of a key signs its verification');
    }
    // The digests first: if the record no longer matches itself or the caller's copy, that is the
    // answer (`mismatch`), whatever the signature says (a tampered record changes the transcript too).
    const consistent = (await this.#recordConsistent(rec)) && equalBytes(req.digest, rec.digest!);
    // LAB SWITCH e2e-transcript-signature: the receiver's signature over the key transcript is not verified.
    if (consistent && req.signature !== undefined && !labOff(ctx.defences, 'e2e-transcript-signature')) {
      verifyTranscriptSignature(
        'receiver',
        transcriptOf(rec),
        req.digest,
        req.signature,
        await ctx.certificateKey(caller.serialHex),
      );
    }
    const verdict: Verdict = consistent ? verdictForState(issuedState(rec)) : 'mismatch';
    const peerVerified = rec.peerVerifiedAt !== null;
    const record = verdict === 'valid' && isPeer && req.signature !== undefined && !peerVerified;
    const result: VerifyResult = {
      serial: rec.serial,
      verdict,
      peerVerified,
      state: issuedState(rec),
    };
    if (rec.revokedReason !== null) result.reason = rec.revokedReason;
    if (rec.stateChangedAt !== null && rec.state !== 'active') result.revokedAt = rec.stateChangedAt;
    return { rec, record, result };
  }

  /**
   * Record the receiver's acceptance of these keys (and forget the acked deliveries) in one savepoint of
   * the group commit, then push each owner its key.verified notice; each result then says peerVerified.
   */
  async #record(
    caller: Caller,
    checked: readonly { rec: SymKeyRecord; result: VerifyResult }[],
    ack: readonly number[],
  ): Promise<void> {
    const ctx = this.#ctx;
    const now = ctx.now();
    const pushes = await ctx.store.batch(async (tx) => {
      await assertCallerCurrent(tx, caller.serialHex, ctx.now());
      const out = [];
      for (const { rec } of checked) {
        await tx.markSymKeyPeerVerified(rec.serial, now);
        await ctx.audit(tx, caller.name, 'key.verify', rec.serial, { verdict: 'valid' });
      }
      if (ack.length > 0) await tx.deleteDeliveries(caller.name, ack);
      for (const { rec } of checked) {
        // Counted against the key's owner (its own key.create/key.reserve caused it), never against the
        // verifier: verifying a delivered key is never refused, and it happens once per key.
        const notice = await ctx.enqueue(tx, rec.owner, 'key.verified', rec.serial, null, rec.owner);
        out.push(verifiedPush(notice, rec.serial, now));
      }
      return out;
    });
    await ctx.pushAll(pushes);
    for (const c of checked) c.result.peerVerified = true;
  }

  /** Does the stored digest still describe the stored ciphertext / wrapped key? */
  async #recordConsistent(rec: SymKeyRecord): Promise<boolean> {
    if (rec.digest === null || rec.digest.length !== 32) return false;
    if (rec.mode === 'e2e') {
      return rec.ciphertext !== null && equalBytes(ciphertextDigest(rec.ciphertext), rec.digest);
    }
    if (rec.wrappedKey === null || rec.kekVersion === null) return false;
    try {
      const key = (await this.#ctx.kek()).unwrap(rec.serial, rec.wrappedKey, rec.kekVersion);
      return equalBytes(kdcKeyDigest(rec.serial, key), rec.digest);
    } catch (err) {
      if (err instanceof AuthError) return false;
      throw err;
    }
  }
}

/** The transcript hash both parties signed, rebuilt from the KDC's record. */
function transcriptOf(rec: SymKeyRecord): Buffer {
  const sender = { name: rec.owner, certSerial: rec.ownerCert };
  const receiver = { name: rec.peer, certSerial: rec.peerCert };
  if (rec.mode === 'kdc') {
    return kdcTranscriptHash({
      serial: rec.serial,
      sender,
      receiver,
      digest: rec.digest!,
      expiresAt: rec.expiresAt,
    });
  }
  return e2eTranscriptHash({
    serial: rec.serial,
    sender,
    receiver,
    prekeyId: rec.prekeyId ?? '',
    prekeyPublic: rec.prekeyPublic ?? Buffer.alloc(0),
    ephemeralPublic: rec.ephemeral ?? Buffer.alloc(0),
    expiresAt: rec.expiresAt,
  });
}
