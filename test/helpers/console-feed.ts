// Reads a console's server-sent event feed (GET <console>/events) until a condition holds for the events
// received so far; the KDC's and Mallory's console tests share it.
import { request } from 'node:http';
import type { ConsoleEvent } from '../../shared/console/events.js';

export function readFeed(
  url: string,
  done: (events: ConsoleEvent[]) => boolean,
  timeoutMs = 30_000,
): Promise<{ events: ConsoleEvent[]; raw: string }> {
  return new Promise((resolve, reject) => {
    const events: ConsoleEvent[] = [];
    let raw = '';
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`feed: not there in time; got ${raw.slice(-3000)}`));
    }, timeoutMs);
    const req = request(url, (res) => {
      res.setEncoding('utf8').on('data', (d: string) => {
        raw += d;
        events.length = 0;
        for (const line of raw.split('\n')) {
          if (!line.startsWith('data: ')) continue;
          const data = JSON.parse(line.slice(6)) as ConsoleEvent & { instance?: string };
          if ('kind' in data) events.push(data);
        }
        if (done(events)) {
          clearTimeout(timer);
          req.destroy();
          resolve({ events, raw });
        }
      });
    });
    req.on('error', () => undefined);
    req.end();
  });
}
