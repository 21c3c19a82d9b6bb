// One KeyService per running KDC, wired to the KDC's store, CA (revocation lookups, and onRevoked for
// the certificate-revocation cascade) and live sessions. The KDC attaches it at start-up
// (server/kdc/kdc.ts calls attachKeyService with the CA passphrase it resolved, which protects the KEK
// files); a KDC embedded without that call still gets one on the first key request, with the
// passphrase resolved from the environment or <dataDir>/ca/passphrase.
import { randomBytes } from 'node:crypto';
import type { KdcServices } from '../kdc/dispatch.js';
import { resolveCaPassphrase } from '../../io/ca-passphrase.js';
import { KeyService, type KeyLimits } from './service.js';
import type { Defences } from '../../shared/lab-switches.js';

const services = new WeakMap<KdcServices, KeyService>();

export async function attachKeyService(
  kdc: KdcServices,
  opts: { dataDir: string; passphrase?: string; limits?: Partial<KeyLimits>; defences?: Defences },
): Promise<KeyService> {
  const existing = services.get(kdc);
  if (existing !== undefined) return existing;
  const { dataDir } = opts;
  // Nodes sharing a PostgreSQL store announce what they queue to each other (server/kdc/cluster-push.ts),
  // each under a name of its own to recognise its own announcements.
  const node = kdc.store.engine === 'postgres' ? randomBytes(8).toString('hex') : undefined;
  const service = new KeyService({
    store: kdc.store,
    ca: kdc.ca,
    sessions: kdc.sessions,
    dataDir,
    passphrase: () => opts.passphrase ?? resolveCaPassphrase(dataDir).passphrase,
    ...(opts.limits === undefined ? {} : { limits: opts.limits }),
    ...(opts.defences === undefined ? {} : { defences: opts.defences }),
    ...(node === undefined ? {} : { node }),
  });
  services.set(kdc, service);
  // The CA awaits its listeners before a revocation is acknowledged, and announces revocations other
  // processes committed (kds cert revoke) when it syncs: the cascade is durable before either returns.
  kdc.ca.onRevoked(async (serialHex: string, name: string) => {
    const keys = await service.onCertificateRevoked(serialHex, name);
    if (keys > 0) kdc.events.emit({ type: 'key.cascade', name, certSerial: serialHex, keys });
  });
  // Keys that expired, or whose certificates were revoked, while the KDC was not running.
  await service.sweep();
  return service;
}

export async function keyServiceFor(kdc: KdcServices): Promise<KeyService> {
  return services.get(kdc) ?? attachKeyService(kdc, { dataDir: kdc.ca.dataDir });
}
