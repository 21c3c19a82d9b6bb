// What the KDC's default event readers do per handshake and per KDC-generated key, measured in this
// process: the bus fed the events one handshake and one key make (as connection.ts and the key service
// emit them), read by the metrics and the text log at info writing to /dev/null through its real
// writer, against the same emits with no reader. The two-KDC comparison in bench/events.ts moves by
// several percent with the machine's load; this figure has no network peer and no second process to
// vary with it, and its work is a fixed sequence, so `valgrind --tool=callgrind node
// dist/bench/events-work.js default|off N` counts the same instructions on every run.
//
// Not included (bench/events.ts sees them): the time and performance.now() reads around a request,
// and the garbage the events leave for a collector that is also collecting the KDC's own.
import { closeSync, openSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { EventBus } from '../server/events/bus.js';
import { attachLogReader } from '../server/events/log-reader.js';
import { KdcMetrics } from '../server/events/metrics.js';

export type Readers = 'default' | 'metrics' | 'log' | 'off';

const SERIAL = '3f2a9c01d4e5f60718293a4b5c6d7e8f';

/** The events of handshake `i` and key `i` (16 clients, 16 pairs), emitted as the KDC emits them. */
function emitters(bus: EventBus): { handshake: (i: number) => void; key: (i: number) => void } {
  const served = (name: string, request: string): void => {
    if (!bus.wants('request.served')) return;
    bus.emit({
      type: 'request.served',
      connection: 'c0ffee0123456789',
      name,
      role: 'client',
      request,
      code: 'ok',
      durationMs: 0.8,
    });
  };
  return {
    handshake: (i) => {
      if (bus.wants('connection.opened'))
        bus.emit({ type: 'connection.opened', connection: 'c0ffee0123456789', address: '127.0.0.1' });
      if (bus.wants('handshake.completed'))
        bus.emit({
          type: 'handshake.completed',
          connection: 'c0ffee0123456789',
          address: '127.0.0.1',
          name: `hs-${i % 16}`,
          serial: SERIAL,
          role: 'client',
          mode: 'auth',
          group: 'x25519',
          durationMs: 3.2,
        });
      if (bus.wants('connection.closed'))
        bus.emit({
          type: 'connection.closed',
          connection: 'c0ffee0123456789',
          address: '127.0.0.1',
          name: `hs-${i % 16}`,
          role: 'client',
          closeCode: 1000,
          durationMs: 5.1,
        });
    },
    key: (i) => {
      const alice = `alice-${i % 16}`;
      const bob = `bob-${i % 16}`;
      // key.create: the key, its request; its delivery to bob; bob's key.verify: the verdict, its request.
      if (bus.readers !== 0) {
        bus.emit({ type: 'key.created', serial: SERIAL, owner: alice, peer: bob, mode: 'kdc' });
        served(alice, 'key.create');
        bus.emit({ type: 'key.delivered', serial: SERIAL, from: alice, to: bob });
        bus.emit({ type: 'key.verified', serial: SERIAL, by: bob, verdict: 'valid' });
        served(bob, 'key.verify');
      }
      // Two group commits per key (create; verify with its acknowledgement).
      for (let c = 0; c < 2; c++)
        if (bus.wants('store.commit')) bus.emit({ type: 'store.commit', callers: 1, durationMs: 1.1 });
    },
  };
}

/** CPU microseconds per handshake and per key, `inFlight` operations per event-loop turn. */
export async function measureEventsWork(opts: {
  readers: Readers;
  operations: number;
  inFlight: number;
  /** Measure only one of the two (callgrind: one count per sequence); default both. */
  only?: 'handshake' | 'key';
}): Promise<{ handshake: number; key: number }> {
  const bus = new EventBus();
  const devNull = openSync('/dev/null', 'w');
  const metrics = opts.readers === 'default' || opts.readers === 'metrics' ? new KdcMetrics(bus) : undefined;
  await metrics?.load(); // as a running KDC has it (metrics.ts: loaded once the KDC listens)
  const log =
    opts.readers === 'default' || opts.readers === 'log'
      ? await attachLogReader(bus, { format: 'text', level: 'info', fd: devNull })
      : undefined;
  try {
    const emit = emitters(bus);
    const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    const cpu = async (op: (i: number) => void, n: number): Promise<number> => {
      const before = process.cpuUsage();
      for (let i = 0; i < n; i++) {
        op(i);
        if (i % opts.inFlight === opts.inFlight - 1) await turn();
      }
      await turn();
      const used = process.cpuUsage(before);
      return (used.user + used.system) / n;
    };
    // Warm the JIT on both sequences, then measure.
    await cpu(emit.handshake, 2_000);
    await cpu(emit.key, 2_000);
    return {
      handshake: opts.only === 'key' ? Number.NaN : await cpu(emit.handshake, opts.operations),
      key: opts.only === 'handshake' ? Number.NaN : await cpu(emit.key, opts.operations),
    };
  } finally {
    log?.close();
    metrics?.close();
    closeSync(devNull);
  }
}

// `node dist/bench/events-work.js default|metrics|log|off [operations] [handshake|key]`: one fixed run,
// for callgrind. The readers' instructions per operation are the difference of two runs with different
// `operations` (the start and the warm-up cancel out), less the same difference with `off`.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const readers = (process.argv[2] ?? 'default') as Readers;
  const operations = Number(process.argv[3] ?? 20_000);
  const only = process.argv[4] === 'handshake' || process.argv[4] === 'key' ? process.argv[4] : undefined;
  const r = await measureEventsWork({
    readers,
    operations,
    inFlight: 16,
    ...(only === undefined ? {} : { only }),
  });
  process.stdout.write(`${JSON.stringify({ readers, operations, ...r })}\n`);
  // collectDefaultMetrics's timers would keep the process alive.
  process.exit(0);
}
