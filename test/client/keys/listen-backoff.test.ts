// The reconnect policy of `kds client listen` (client/keys/listen.ts): exponential, capped backoff;
// only transient failures are retried; the loop stops on its signal.
import t from 'tap';
import { isTransient, listen, nextBackoff, type ListenEvent } from '../../../client/keys/listen.js';
import { errorFor } from '../../../shared/errors.js';

t.test('backoff doubles up to the cap with bounded jitter', async (t) => {
  let d: number | undefined;
  const seen: number[] = [];
  for (let i = 0; i < 10; i += 1) {
    d = nextBackoff(d, 100, 2000);
    seen.push(d);
  }
  t.ok(seen[0]! >= 100 && seen[0]! <= 125, 'first delay near the initial one');
  for (let i = 1; i < seen.length; i += 1) t.ok(seen[i]! <= 2000, 'never above the cap');
  t.ok(seen[3]! >= 800, 'grows exponentially');
  t.equal(seen[9], 2000);
});

t.test('transient vs fatal failures', async (t) => {
  t.ok(isTransient(errorFor('unavailable', 'x')));
  t.ok(isTransient(errorFor('session_closed', 'x')));
  t.notOk(isTransient(errorFor('cert_revoked', 'x')));
  t.notOk(isTransient(errorFor('bad_passphrase', 'x')));
});

t.test('listen retries transient failures, stops on fatal ones', async (t) => {
  const events: ListenEvent[] = [];
  let attempts = 0;
  await t.rejects(
    listen({
      name: 'bob',
      server: 'ws://127.0.0.1:1/kds',
      initialBackoffMs: 1,
      maxBackoffMs: 4,
      onEvent: (e) => events.push(e),
      open: async () => {
        attempts += 1;
        throw errorFor(attempts < 4 ? 'unavailable' : 'cert_revoked', 'nope');
      },
    }),
    { code: 'cert_revoked' },
  );
  t.equal(attempts, 4);
  t.same(
    events.map((e) => e.event),
    ['disconnected', 'disconnected', 'disconnected', 'stopped'],
  );
});

t.test('listen ends when its signal aborts', async (t) => {
  const controller = new AbortController();
  const events: ListenEvent[] = [];
  const done = listen({
    name: 'bob',
    server: 'ws://127.0.0.1:1/kds',
    initialBackoffMs: 10_000,
    signal: controller.signal,
    onEvent: (e) => events.push(e),
    open: async () => {
      throw errorFor('unavailable', 'down');
    },
  });
  setTimeout(() => controller.abort(), 20);
  await done;
  t.same(
    events.map((e) => e.event),
    ['disconnected', 'stopped'],
  );
});
