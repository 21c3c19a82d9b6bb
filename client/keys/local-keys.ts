// This client's keys as its own encrypted key store records them, without the KDC: what `kds client
// keys` and the menu's "List keys" show when the KDC cannot be reached. The records are as fresh as
// the last session: a key revoked, verified or delivered since then is not reflected, so callers say
// the view may be stale. Expiry is computed here (nothing is written).
import { readClientHome, resolveHome, type HomeLocation } from '../home.js';
import type { KeyListing } from './key-client.js';
import { ClientKeyStore } from './key-store.js';

export function listLocalKeys(loc: HomeLocation, now: number = Date.now()): KeyListing[] {
  const home = resolveHome(loc);
  const files = readClientHome(home);
  const store = ClientKeyStore.open(home, loc.name, files.privateKey);
  return store
    .listKeys()
    .map((k): KeyListing => {
      const expired = (k.state === 'active' || k.state === 'pending') && k.expiresAt <= now;
      const state = expired ? 'expired' : k.state;
      return {
        serial: k.serial,
        mode: k.mode,
        owner: k.owner,
        peer: k.peer,
        state,
        local: state,
        createdAt: k.createdAt,
        expiresAt: k.expiresAt,
        // An active key is one the receiver verified; pending ones wait for it.
        peerVerified: state === 'active',
        fingerprint: k.fingerprint,
        ...(k.reason === undefined ? {} : { reason: k.reason }),
        ...(k.revokedAt === undefined ? {} : { revokedAt: k.revokedAt }),
      };
    })
    .sort((a, b) => b.createdAt - a.createdAt);
}
