// The parties of a new key (docs/keys.md "Requirements"): the peer's certificate and its status (flow 1
// step 1, and every key creation: "Sending to a revoked, expired or unknown peer fails with its code"),
// and the key a rotation replaces (an active key of the same two parties and mode).
import { InputError, StateError } from '../../shared/errors.js';
import { assertValidName } from '../../shared/pki/names.js';
import type { ActiveCertificateSummary, SymKeyMode } from '../store/store.js';
import type { Caller, KeyContext } from './key-context.js';
import { refuseUnusable, type KeyLookup } from './key-lookup.js';

export class KeyParties {
  readonly #ctx: KeyContext;
  readonly #lookup: KeyLookup;

  constructor(ctx: KeyContext, lookup: KeyLookup) {
    this.#ctx = ctx;
    this.#lookup = lookup;
  }

  /** Flow 1 step 1 (docs/keys.md "Requirements"): "Alice asks the KDC for Bob's certificate; the KDC answers with it and its revocation status." */
  async peer(
    caller: Caller,
    name: string,
  ): Promise<{ name: string; cert: Buffer; serial: string; notAfter: number; status: 'good' }> {
    const cert = await this.peerCertificate(caller, name);
    return {
      name,
      cert: (await this.#ctx.certificate(cert.serialHex)).der,
      serial: cert.serialHex,
      notAfter: cert.notAfter,
      status: 'good',
    };
  }

  /**
   * The peer's active certificate, or the code docs/keys.md names: peer_revoked / peer_unavailable. Its
   * serial, role and validity only: read on every key.create and key.reserve, the PEM is not (a
   * certificate's content is cached by serial, KeyContext.certificate).
   */
  async peerCertificate(caller: Caller, name: string): Promise<ActiveCertificateSummary> {
    const ctx = this.#ctx;
    assertValidName(name);
    if (caller.role !== 'client') throw new InputError('bad_request', 'only enrolled clients exchange keys');
    if (name === caller.name) throw new InputError('bad_request', 'a key needs two different parties');
    const cert = await ctx.store.activeCertificateSummary(name);
    if (cert === undefined || cert.role !== 'client') {
      const latest = await ctx.store.latestCertificate(name);
      if (latest?.status === 'revoked' && latest.role === 'client') {
        throw new StateError('peer_revoked', `the certificate of ${name} is revoked`);
      }
      throw new StateError('peer_unavailable', `no enrolled client named ${name}`);
    }
    if (ctx.ca.revocationOf(cert.serialHex) !== undefined) {
      throw new StateError('peer_revoked', `the certificate of ${name} is revoked`);
    }
    const now = ctx.now();
    if (cert.notAfter <= now || cert.notBefore > now) {
      throw new StateError('peer_unavailable', `the certificate of ${name} is not valid now`);
    }
    return cert;
  }

  /** A rotation must name an active key of the same two parties and mode. */
  async replaceable(caller: Caller, serial: string, peer: string, mode: SymKeyMode): Promise<void> {
    const rec = await this.#lookup.find(caller, serial);
    const pair = rec === undefined ? [] : [rec.owner, rec.peer].sort();
    if (
      rec === undefined ||
      caller.role !== 'client' ||
      pair.join('\0') !== [caller.name, peer].sort().join('\0')
    ) {
      throw new StateError('not_found', 'no such key');
    }
    if (rec.mode !== mode)
      throw new InputError('bad_request', `key ${serial} is a ${rec.mode} key, not ${mode}`);
    refuseUnusable(rec);
  }
}
