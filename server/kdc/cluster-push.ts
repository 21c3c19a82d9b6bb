// Pushes across the KDC nodes of one PostgreSQL store (docs/deployment.md "Several nodes"). A node learns
// what another node committed through the store's notifications (LISTEN/NOTIFY), and acts on its own
// sessions exactly as for what it committed itself:
//   - `revoked` (a certificate revocation, payload: its serial): sync the revocations from the store; the
//     CA's onRevoked listeners then close the certificate's sessions here with cert_revoked and cascade
//     to its keys, as for a local revocation;
//   - `delivery` (a queued notice, payload: node, delivery id, recipient; never its content): when the
//     recipient has a session here, read the delivery from the store and push it.
// When notifications may have been missed (the listening connection was lost and is back), the node
// catches up from the store: a revocation sync, and the queued backlog of every identity connected here.
// The KDC's periodic revocation sync stays, as the safety net. The loss and the return are each one log
// line (kdc.warning): while it lasts, nothing another node does reaches this node's sessions live.
//
// A single node on SQLite listens to nothing: it pushes what it commits itself, as it always did, and
// nothing else writes to its sessions (a `kds cert revoke` from a shell is picked up by the periodic
// sync and before every handshake).
import type { CertificateAuthority } from '../ca/authority.js';
import { REVOKED_CHANNEL } from '../ca/revoke.js';
import { DELIVERY_CHANNEL } from '../keys/deliveries.js';
import type { KeyService } from '../keys/service.js';
import type { AsyncStore } from '../store/async-store.js';
import type { SessionTable } from './session-table.js';

export interface ClusterPushDeps {
  store: AsyncStore;
  ca: CertificateAuthority;
  keys: KeyService;
  sessions: SessionTable;
  log: (line: string) => void;
}

/** Start listening (PostgreSQL only); resolves once listening, with the function that stops it. */
export async function listenAcrossNodes(deps: ClusterPushDeps): Promise<() => Promise<void>> {
  if (deps.store.engine !== 'postgres') return () => Promise.resolve();
  const { store, ca, keys, sessions, log } = deps;
  const syncRevocations = coalesced(
    () => ca.syncRevocations(),
    (err) => {
      log(`revocation sync failed: ${err.message}`);
    },
  );
  const pushBacklogs = (): void => {
    const names = new Set<string>();
    for (const s of sessions.values()) names.add(s.identity.name);
    keys.pushBacklogs(names).catch((err: unknown) => {
      log(`queued notices not pushed: ${(err as Error).message}`);
    });
  };
  // One connection listens on both channels: its loss and return are logged once, by this listener.
  let lostAt: number | undefined;
  const stopRevoked = await store.listen(REVOKED_CHANNEL, {
    onNotify: syncRevocations,
    onLost: (reason) => {
      lostAt = Date.now();
      log(
        `store notifications lost (${reason}): other nodes' revocations and key notices do not reach this node's sessions until it listens again; reconnecting`,
      );
    },
    onGap: () => {
      const seconds = lostAt === undefined ? 0 : Math.max(0, Math.round((Date.now() - lostAt) / 1000));
      lostAt = undefined;
      log(
        `store notifications back (lost for about ${seconds} s): revocations synced, queued notices of the clients connected here pushed again`,
      );
      syncRevocations();
    },
  });
  try {
    const stopDelivery = await store.listen(DELIVERY_CHANNEL, {
      onNotify: (payload) => void keys.pushAnnounced(payload),
      onGap: pushBacklogs,
    });
    return async () => {
      await stopDelivery();
      await stopRevoked();
    };
  } catch (err) {
    await stopRevoked();
    throw err;
  }
}

/**
 * `run` at most once at a time: calls made while it runs make one more run after it (a burst of
 * revocations is one or two syncs, each reading every row committed since the last one).
 */
function coalesced(run: () => Promise<unknown>, onError: (err: Error) => void): () => void {
  let running = false;
  let again = false;
  const start = (): void => {
    running = true;
    again = false;
    run()
      .catch((err: unknown) => onError(err as Error))
      .finally(() => {
        running = false;
        if (again) start();
      });
  };
  return () => {
    if (running) again = true;
    else start();
  };
}
