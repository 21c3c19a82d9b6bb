// Who may read the console. Loopback peers may, by default: the console shows names, serials, sizes
// and codes, nothing secret, but a KDC's traffic pattern is still nobody else's business. A peer from
// any other address must present the console key (printed once by the process that serves the page,
// to the operator who started it). The Host header is checked too: a web page on another site can make
// the browser of someone on this machine connect to 127.0.0.1 under the site's own name (DNS
// rebinding), and such a request must not get the feed without the key.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  return address === '::1';
}

/** `localhost`, `127.x.y.z`, `[::1]`, with or without a port. */
export function isLoopbackHost(hostHeader: string | undefined): boolean {
  if (hostHeader === undefined) return false;
  const host = hostHeader.startsWith('[')
    ? hostHeader.slice(1, hostHeader.indexOf(']'))
    : (hostHeader.split(':', 1)[0] ?? '');
  return host === 'localhost' || isLoopbackAddress(host);
}

export class ConsoleAccess {
  readonly #keyDigest: Buffer;

  constructor(readonly key: string) {
    this.#keyDigest = digest(key);
  }

  /** True when `req` may read the feed: a loopback peer under a loopback name, or anyone with the key. */
  allows(req: IncomingMessage, presentedKey: string | null): boolean {
    if (presentedKey !== null && presentedKey !== '') {
      // Digests of equal length, compared in constant time: the key is a secret.
      return timingSafeEqual(digest(presentedKey), this.#keyDigest);
    }
    return isLoopbackAddress(req.socket.remoteAddress) && isLoopbackHost(req.headers.host);
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
