// server/console/kdc-changes.ts: the events that change what the state panel shows become `change`
// rows of the console feed (names, serials and numbers only), and the panel is told to re-read; the
// other events draw nothing. An enrollment whose lost answer was replayed is shown too: nothing was
// issued, and the row says so.
import t from 'tap';
import type * as Tap from 'tap';
import { EventBus } from '../../../server/events/bus.js';
import { readChanges } from '../../../server/console/kdc-changes.js';
import { ConsoleFeed } from '../../../io/console/feed.js';

function setup(t: Tap.Test): { bus: EventBus; feed: ConsoleFeed; changed: () => number } {
  const bus = new EventBus();
  const feed = new ConsoleFeed('kdc');
  let changed = 0;
  const off = readChanges(bus, feed, () => (changed += 1));
  t.teardown(off);
  return { bus, feed, changed: () => changed };
}

const changes = (feed: ConsoleFeed): { what?: unknown; subject?: unknown; detail?: unknown }[] =>
  feed.history.filter((e) => e.kind === 'change') as {
    what?: unknown;
    subject?: unknown;
    detail?: unknown;
  }[];

t.test(
  'an issued and a replayed certificate: two rows, and the replay says nothing was issued',
  async (t) => {
    const { bus, feed, changed } = setup(t);
    const serial = '0123456789abcdef0123456789abcdef';
    bus.emit({ type: 'cert.issued', name: 'alice', serial, role: 'client', notAfter: 0, renewed: false });
    bus.emit({ type: 'cert.replayed', name: 'alice', serial });
    const rows = changes(feed);
    t.equal(rows.length, 2);
    t.match(rows[0], {
      what: 'cert.issued',
      subject: 'alice',
      detail: 'certificate 0123456789ab... issued (client)',
    });
    t.match(rows[1], {
      what: 'cert.replayed',
      subject: 'alice',
      detail: 'certificate 0123456789ab... handed out again (a lost enrollment answer, nothing issued)',
    });
    t.equal(changed(), 2, 'the panel re-read after each');
  },
);

t.test('events that change nothing the panel shows draw nothing', async (t) => {
  const { bus, feed, changed } = setup(t);
  bus.emit({ type: 'token.created', name: 'carol', by: 'admin', expiresAt: 0 });
  bus.emit({ type: 'key.delivered', serial: 'ab', from: 'alice', to: 'bob' });
  t.equal(changes(feed).length, 0);
  t.equal(changed(), 0);
});
