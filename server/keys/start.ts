// The KDC's key service, started once per running KDC (server/kdc/kdc.ts), which hands it to the
// handlers in its services (ctx.kdc.keys). It is wired to the KDC's store, CA (revocation lookups,
// and onRevoked for the certificate-revocation cascade) and live sessions; the CA passphrase the KDC
// resolved protects the KEK files.
import { randomBytes } from 'node:crypto';
import type { Defences } from '../../shared/lab-switches.js';
import type { CertificateAuthority } from '../ca/authority.js';
import type { EventBus } from '../events/bus.js';
import type { SessionTable } from '../kdc/session-table.js';
import type { KeyEncryptionKeys } from './kek.js';
import type { KeyLimits } from './key-quotas.js';
import { KeyService } from './service.js';

export async function startKeyService(
  kdc: { ca: CertificateAuthority; sessions: SessionTable; events: EventBus },
  opts: {
    dataDir: string;
    passphrase: string;
    /** The KDC's KEK ring, shared with its ticket keys (default: the service opens its own). */
    openKek?: () => Promise<KeyEncryptionKeys>;
    limits?: Partial<KeyLimits>;
    defences?: Defences;
    /** The node's clock (default Date.now). */
    now?: () => number;
  },
): Promise<KeyService> {
  const { ca, events } = kdc;
  // Nodes sharing a PostgreSQL store announce what they queue to each other (server/kdc/cluster-push.ts),
  // each under a name of its own to recognise its own announcements.
  const node = ca.store.engine === 'postgres' ? randomBytes(8).toString('hex') : undefined;
  const service = new KeyService({
    store: ca.store,
    ca,
    sessions: kdc.sessions,
    dataDir: opts.dataDir,
    passphrase: () => opts.passphrase,
    ...(opts.openKek === undefined ? {} : { openKek: opts.openKek }),
    ...(opts.limits === undefined ? {} : { limits: opts.limits }),
    ...(opts.defences === undefined ? {} : { defences: opts.defences }),
    ...(opts.now === undefined ? {} : { now: opts.now }),
    ...(node === undefined ? {} : { node }),
  });
  // The CA awaits its listeners before a revocation is acknowledged, and announces revocations other
  // processes committed (kds cert revoke, another node) when it syncs. The certificate's revocation is
  // durable before either; the cascade is its own transaction after it: when that fails the CA keeps
  // the announcement pending and calls again (attempt > 1) on each sync until it succeeds, and if the
  // process dies first, the sweep below redoes it from the store at the next start (as does the first
  // use of such a key: key-revoke.ts checkParties). Meanwhile every such key is already refused, since
  // the revocation index the key service asks is updated at the commit.
  ca.onRevoked(async (serialHex: string, name: string, _info, attempt: number) => {
    const keys = await service.onCertificateRevoked(serialHex, name, { retry: attempt > 1 });
    if (keys > 0) events.emit({ type: 'key.cascade', name, certSerial: serialHex, keys });
  });
  // Keys that expired, or whose certificates were revoked, while the KDC was not running.
  await service.sweep();
  return service;
}
