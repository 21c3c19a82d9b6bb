// The live authenticated sessions of a KDC, indexed by certificate serial and by identity name, so
// revocation can find every session of a certificate in O(1) and features (key delivery, messages)
// can reach a user who is online. One identity may hold several sessions at once (several processes).
import type { SessionHandle } from './dispatch.js';

export class SessionTable {
  readonly #bySerial = new Map<string, Set<SessionHandle>>();
  readonly #byName = new Map<string, Set<SessionHandle>>();
  readonly #all = new Set<SessionHandle>();

  add(session: SessionHandle): void {
    this.#all.add(session);
    addTo(this.#bySerial, session.identity.serialHex, session);
    addTo(this.#byName, session.identity.name, session);
  }

  delete(session: SessionHandle): void {
    if (!this.#all.delete(session)) return;
    removeFrom(this.#bySerial, session.identity.serialHex, session);
    removeFrom(this.#byName, session.identity.name, session);
  }

  bySerial(serialHex: string): SessionHandle[] {
    return [...(this.#bySerial.get(serialHex) ?? [])];
  }

  byName(name: string): SessionHandle[] {
    return [...(this.#byName.get(name) ?? [])];
  }

  all(): SessionHandle[] {
    return [...this.#all];
  }

  /** Every session, without a copy (do not add or delete while iterating). */
  values(): IterableIterator<SessionHandle> {
    return this.#all.values();
  }

  get size(): number {
    return this.#all.size;
  }
}

function addTo(map: Map<string, Set<SessionHandle>>, key: string, session: SessionHandle): void {
  let set = map.get(key);
  if (set === undefined) {
    set = new Set();
    map.set(key, set);
  }
  set.add(session);
}

function removeFrom(map: Map<string, Set<SessionHandle>>, key: string, session: SessionHandle): void {
  const set = map.get(key);
  if (set === undefined) return;
  set.delete(session);
  if (set.size === 0) map.delete(key);
}
