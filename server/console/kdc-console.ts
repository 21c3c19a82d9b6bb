// `kds server start --console`: the console of a KDC, wired together. Loaded (and anything of it
// created) only when the console was asked for, so a KDC without it runs exactly as before.
import type { CertificateAuthority } from '../ca/authority.js';
import type { Connection } from '../kdc/connection.js';
import type { SessionTable } from '../kdc/session-table.js';
import type { ConsoleFeed } from '../../io/console/feed.js';
import type { ConsoleRoutes } from '../../io/console/http.js';
import { openConsole } from '../../io/console/open.js';
import { KdcWatch } from './kdc-watch.js';
import { readChanges } from './kdc-changes.js';
import { publishState, readKdcState, readStoreRows, type StoreRows } from './kdc-state.js';
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
  const opened = openConsole('kdc');
  const { feed, routes } = opened;
  const watch = new KdcWatch(feed);
  let lastJson = '';
  let idle = 0;
  // The store's rows are re-read only when the store may have changed: a change event of this KDC, or
  // the idle re-read (another process or node may have written); a busy KDC's sessions come and go on
  // every tick without a certificate or key changing.
  let rows: StoreRows | undefined;
  let storeDirty = true;
  const refresh = async (): Promise<void> => {
    if (storeDirty || rows === undefined) {
      storeDirty = false;
      rows = await readStoreRows(src.ca.store);
    }
    const next = readKdcState(
      {
        store: src.ca.store,
        ca: src.ca,
        sessions: src.sessions,
        exchangeOf: (s) => watch.exchangeOf(s as Connection),
        ...(src.labDisabled === undefined ? {} : { labDisabled: src.labDisabled }),
      },
      rows,
    );
    const json = JSON.stringify(next);
    if (json === lastJson) return;
    publishState(feed, next);
    lastJson = json;
  };
  let ticks = 0;
  const tick = (): void => {
    watch.publishUndrawn();
    // A key that expires is no event: the store is read again at least this often, busy or not.
    if (++ticks % STATE_IDLE_TICKS === 0) storeDirty = true;
    if (!watch.dirty && ++idle < STATE_IDLE_TICKS) return;
    watch.dirty = false;
    idle = 0;
    refresh().catch((err: unknown) => src.log(`console: state read failed: ${(err as Error).message}`));
  };
  const unsubscribe = readChanges(src.events, feed, () => {
    storeDirty = true;
    watch.dirty = true;
  });
  await refresh();
  const timer = setInterval(tick, STATE_TICK_MS);
  timer.unref();
  return {
    watch,
    routes,
    feed,
    urlFor: (httpUrl, boundAddress) => opened.urlFor(httpUrl, boundAddress),
    close() {
      clearInterval(timer);
      unsubscribe();
      opened.close();
    },
  };
}
