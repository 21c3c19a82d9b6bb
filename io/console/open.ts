// One live console, ready to be mounted on the HTTP server of the process it watches: its feed, who
// may read it, its routes and the URL to print. The KDC (server/console) and Mallory's proxy
// (client/mitm) each open one; what they publish into the feed is theirs.
import { randomBytes } from '../../shared/crypto/random.js';
import { ConsoleAccess, isLoopbackAddress } from './access.js';
import { loadConsoleAssets } from './assets.js';
import { ConsoleFeed } from './feed.js';
import { createConsoleRoutes, type ConsoleRoutes } from './http.js';

export interface OpenConsole {
  readonly feed: ConsoleFeed;
  readonly routes: ConsoleRoutes;
  /** The URL to print: the console key is in it only when the server listens beyond loopback. */
  urlFor(httpUrl: string, boundAddress: string): string;
  close(): void;
}

export function openConsole(view: 'kdc' | 'mallory'): OpenConsole {
  const assets = loadConsoleAssets();
  const feed = new ConsoleFeed(view);
  const access = new ConsoleAccess(randomBytes(24).toString('base64url'));
  const routes = createConsoleRoutes(feed, access, assets);
  return {
    feed,
    routes,
    urlFor(httpUrl, boundAddress) {
      return isLoopbackAddress(boundAddress)
        ? `${httpUrl}/console`
        : `${httpUrl}/console?key=${encodeURIComponent(access.key)}`;
    },
    close() {
      routes.close();
    },
  };
}
