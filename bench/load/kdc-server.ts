// The KDC under test, in its own process (started by bench/load/ipc.ts Worker.start), so that its CPU time
// (process.cpuUsage: every thread of the process, the libuv pool that signs included) and its resident
// memory are measured apart from the load generator's. Driven over IPC:
//   start {dataDir, passphrase, console?, port?, storeUrl?, revocationSyncMs?, keyLimits?}
//                                -> {url, httpUrl, consoleUrl?}
//                                   the real startKdc on 127.0.0.1 (port 0 unless given: a restart takes
//                                   its old one), no rate limit (console: the live console on too;
//                                   storeUrl: a PostgreSQL store, one node of several)
//   cpu                          -> microseconds of CPU (user + system) used so far
//   mem                          -> process.memoryUsage() after full GCs (run with --expose-gc)
//   sessions                     -> number of authenticated sessions in the table
//   revoke {serialHex}           -> hrtime (ns, CLOCK_MONOTONIC: comparable across processes) before the
//                                   call and after it returned (every live session of it closed)
//   tokens {names}               -> one enrollment token per name
//   profileStart / profileStop {path} -> a V8 CPU profile of the KDC between the two (for digging into
//                                   a figure: load the .cpuprofile in Chrome DevTools)
import { openSync, writeFileSync } from 'node:fs';
import { EventBus } from '../../server/events/bus.js';
import { attachLogReader } from '../../server/events/log-reader.js';
import { Session } from 'node:inspector';
import { getHeapSpaceStatistics } from 'node:v8';
import { startKdc, type Kdc } from '../../server/kdc/kdc.js';
import type { KeyLimits } from '../../server/keys/key-quotas.js';
import { serve } from './ipc.js';

let inspector: Session | undefined;
function post<T>(method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) =>
    inspector!.post(method, params, (err, result) => (err ? reject(err) : resolve(result as T))),
  );
}

let kdc: Kdc | undefined;

function requireKdc(): Kdc {
  if (kdc === undefined) throw new Error('start first');
  return kdc;
}

async function fullGc(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return;
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
}

serve(
  {
    start: async (arg: {
      dataDir: string;
      passphrase: string;
      maxUnauthenticated?: number;
      console?: boolean;
      port?: number;
      /**
       * bench/events.ts: 'off' = no reader at all (no metrics, no log); 'default' = what `kds server
       * start` runs with (metrics, the text log at info through its writer to /dev/null). Default:
       * metrics only.
       */
      events?: 'off' | 'default' | 'log' | 'metrics';
      /** Run under valgrind (about 50 times slower): the connection and handshake timeouts lifted. */
      slow?: boolean;
      /** A PostgreSQL store (bench/cluster.ts: several of these processes on one store are its nodes). */
      storeUrl?: string;
      /** The periodic revocation sync's interval (bench/cluster.ts lengthens it: notifications only). */
      revocationSyncMs?: number;
      /** The key service's per-pair bounds (bench/keys.ts lifts them for its batched flow's volume). */
      keyLimits?: Partial<KeyLimits>;
    }) => {
      const events = new EventBus();
      if (arg.events === 'default' || arg.events === 'log') {
        await attachLogReader(events, { format: 'text', level: 'info', fd: openSync('/dev/null', 'w') });
      }
      kdc = await startKdc({
        events,
        metrics: arg.events !== 'off' && arg.events !== 'log',
        dataDir: arg.dataDir,
        passphrase: arg.passphrase,
        host: '127.0.0.1',
        port: arg.port ?? 0,
        rateLimit: false,
        maxUnauthenticated: arg.maxUnauthenticated ?? 1024,
        handshakeTimeoutMs: arg.slow === true ? 600_000 : 60_000,
        ...(arg.slow === true ? { headersTimeoutMs: 600_000 } : {}),
        // Every load comes from one address, thousands of sessions at a time (bench/sessions.ts), and
        // bench/issue.ts spreads its enrollments over enroll sessions opened in advance: the limits
        // meant for hostile peers are lifted, as the handshake rate limit is.
        maxConnections: 1_000_000,
        maxConnectionsPerAddress: 1_000_000,
        maxAnonymousRequests: 1_000_000,
        log: (line) => process.stderr.write(`kdc: ${line}\n`),
        ...(arg.console === true ? { console: true } : {}),
        ...(arg.storeUrl === undefined ? {} : { storeUrl: arg.storeUrl }),
        ...(arg.revocationSyncMs === undefined ? {} : { revocationSyncMs: arg.revocationSyncMs }),
        ...(arg.keyLimits === undefined ? {} : { keyLimits: arg.keyLimits }),
      });
      return { url: kdc.url, httpUrl: kdc.httpUrl, consoleUrl: kdc.consoleUrl };
    },
    cpu: () => {
      const u = process.cpuUsage();
      return u.user + u.system;
    },
    mem: async () => {
      await fullGc();
      // V8's heap spaces too: the young generation grows with the allocation RATE (handshakes), not
      // with the sessions held, and that growth shows in RSS.
      const stats = getHeapSpaceStatistics();
      const spaces = Object.fromEntries(stats.map((sp) => [sp.space_name, sp.space_size]));
      // The part of each space that is resident (touched pages): a grown young generation is committed
      // at once but becomes resident only as allocation first flows through it.
      const physical = Object.fromEntries(stats.map((sp) => [sp.space_name, sp.physical_space_size]));
      return { ...process.memoryUsage(), spaces, physical };
    },
    sessions: () => requireKdc().sessions.size,
    revoke: async (arg: { serialHex: string }) => {
      const k = requireKdc();
      const before = process.hrtime.bigint();
      const outcome = await k.ca.revoke({ serialHex: arg.serialHex }, 'keyCompromise', 'bench');
      const after = process.hrtime.bigint();
      return { before, after, status: outcome.status };
    },
    profileStart: async () => {
      inspector = new Session();
      inspector.connect();
      await post('Profiler.enable');
      await post('Profiler.setSamplingInterval', { interval: 250 });
      await post('Profiler.start');
      return true;
    },
    profileStop: async (arg: { path: string }) => {
      const { profile } = await post<{ profile: unknown }>('Profiler.stop');
      writeFileSync(arg.path, JSON.stringify(profile));
      inspector?.disconnect();
      inspector = undefined;
      return arg.path;
    },
    tokens: async (arg: { names: string[] }) => {
      const k = requireKdc();
      const out: string[] = [];
      for (const name of arg.names)
        out.push((await k.ca.createEnrollmentToken({ name, ttlMs: 3_600_000, actor: 'bench' })).token);
      return out;
    },
  },
  async () => {
    await kdc?.close();
  },
);
