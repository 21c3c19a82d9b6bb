// The KDC URLs a client is given: one node, or several nodes of one KDC as a comma-separated list
// (`--server ws://a:8443/kds,ws://b:8444/kds`, env KDS_SERVER), tried in the order given
// (client/failover.ts). Pure parsing, so the CLI can refuse a typo before anything is sent.
import { InputError } from './errors.js';
/** More than this is a typo or a paste accident, not a deployment. */
export const MAX_SERVERS = 8;

/**
 * The URLs of a `--server` value, in order. Each must be a ws:// or wss:// URL with a host; empty
 * entries, duplicates and more than MAX_SERVERS are refused (`bad_request`), naming the entry.
 */
export function parseServerList(text: string): string[] {
  const entries = text.split(',').map((s) => s.trim());
  if (entries.length > MAX_SERVERS)
    throw new InputError('bad_request', `at most ${MAX_SERVERS} KDC URLs, got ${entries.length}`);
  const seen = new Set<string>();
  return entries.map((entry, i) => {
    // The entry's position, not its text: the caller decides how to show text a user typed.
    const which = entries.length > 1 ? `entry ${i + 1} of ${entries.length}` : 'the URL';
    if (entry === '') throw new InputError('bad_request', `${which} is empty`);
    let url: URL | undefined;
    try {
      url = new URL(entry);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'ws:' && url.protocol !== 'wss:') || url.hostname === '')
      throw new InputError('bad_request', `${which} is not a ws:// or wss:// URL with a host`);
    // A WebSocket URL has no fragment (RFC 6455 section 3: "Fragment identifiers are meaningless in the
    // context of WebSocket URIs"; ws refuses one at connect time, which surfaced as `internal`). kds
    // authenticates with certificates, never with URL credentials, and a URL is printed in status lines
    // and errors: a password in it would end up there.
    if (url.hash !== '' || entry.includes('#'))
      throw new InputError('bad_request', `${which} has a #fragment, which a WebSocket URL cannot have`);
    if (url.username !== '' || url.password !== '')
      throw new InputError('bad_request', `${which} has user:password@ credentials, which kds never uses`);
    if (seen.has(url.href)) throw new InputError('bad_request', `${which} repeats an earlier one`);
    seen.add(url.href);
    return entry;
  });
}
