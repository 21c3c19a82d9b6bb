// An open console page, as the benchmarks have one: reads the feed (Server-Sent Events) and throws it
// away. What a browser tab costs the KDC, without a browser.
import { get, type ClientRequest } from 'node:http';

export function readFeed(url: string): Promise<ClientRequest> {
  return new Promise((resolve, reject) => {
    const req = get(url, (res) => {
      if (res.statusCode !== 200) reject(new Error(`console feed: HTTP ${res.statusCode ?? 0}`));
      res.resume();
      resolve(req);
    });
    req.on('error', (err) => reject(err));
  });
}
