// `kds server start --console`: the console of a KDC, wired together. Loaded (and anything of it
// created) only when the console was asked for, so a KDC without it runs exactly as before.
import { randomBytes } from '../../shared/crypto/random.js';
import type { CertificateAuthority } from '../ca/authority.js';
import type { Connection } from '../kdc/connection.js';
import type { SessionTable } from '../kdc/session-table.js';
import { ConsoleAccess, isLoopbackAddress } from './access.js';
import { loadConsoleAssets } from './assets.js';
import { ConsoleFeed } from './feed.js';
import { createConsoleRoutes, type ConsoleRoutes } from './http.js';
import { KdcWatch } from './kdc-watch.js';
import { readChanges } from './kdc-changes.js';
import { publishState, readKdcState } from './kdc-state.js';
import type { EventBus } from '../events/bus.js';

/** How often the state panel is re-read when something happened. */
const STATE_TICK_MS = 500;
/** Re-read at least this often anyway: another process (`kds cert revoke`) may have changed the store. */
const STATE_IDLE_TICKS = 6;

export interface KdcConsole {
  readonly watch: KdcWatch;
  readonly routes: ConsoleRoutes;
  readonly feed: ConsoleFeed;
  /** The URL to print: the console key is in it only when the KDC listens beyond loopback. */
  urlFor(httpUrl: string, boundAddress: string): string;
  close(): void;
}

export async function startKdcConsole(src: {
  ca: CertificateAuthority;
  sessions: SessionTable;
  events: EventBus;
  log: (line: string) => void;
  labDisabled?: readonly string[];
}): Promise<KdcConsole> {
  const assets = loadConsoleAssets();
  const feed = new ConsoleFeed();
  const watch = new KdcWatch(feed);
  const access = new ConsoleAccess(randomBytes(24).toString('base64url'));
  const routes = createConsoleRoutes(feed, access, assets);
  let lastJson = '';
  let idle = 0;
  const refresh = async (): Promise<void> => {
    const next = await readKdcState({
      store: src.ca.store,
      ca: src.ca,
      sessions: src.sessions,
      exchangeOf: (s) => watch.exchangeOf(s as Connection),
      ...(src.labDisabled === undefined ? {} : { labDisabled: src.labDisabled }),
    });
    const json = JSON.stringify(next);
    if (json === lastJson) return;
    publishState(feed, next);
    lastJson = json;
  };
  const tick = (): void => {
    if (!watch.dirty && ++idle < STATE_IDLE_TICKS) return;
    watch.dirty = false;
    idle = 0;
    refresh().catch((err: unknown) => src.log(`console: state read failed: ${(err as Error).message}`));
  };
  const unsubscribe = readChanges(src.events, feed, () => (watch.dirty = true));
  await refresh();
  const timer = setInterval(tick, STATE_TICK_MS);
  timer.unref();
  return {
    watch,
    routes,
    feed,
    urlFor(httpUrl, boundAddress) {
      return isLoopbackAddress(boundAddress)
        ? `${httpUrl}/console`
        : `${httpUrl}/console?key=${encodeURIComponent(access.key)}`;
    },
    close() {
      clearInterval(timer);
      unsubscribe();
      routes.close();
    },
  };
}
