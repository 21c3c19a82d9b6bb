// `kds server start`: run the KDC (HTTP + WebSocket) in the foreground until SIGINT/SIGTERM, then close
// gracefully (sessions get 1001 "going away", the store is closed) and exit 0. Heavy modules load
// inside the handler so `kds --help` stays fast.
import type { CommandModule } from 'yargs';
import { run, type OutputOptions } from '../output.js';
import { InputError } from '../../shared/errors.js';
import { dataDirOption, storeOption } from '../options.js';
import { hostPortValue, hostValue, integerValue, pathValue, portValue } from '../option-values.js';
import { LAB_DISABLE_OPTION } from '../lab-switches.js';

interface StartArgs extends OutputOptions {
  host: string;
  port: number;
  'data-dir': string;
  store?: string;
  dh: 'x25519' | 'ffdhe2048' | 'any';
  'passphrase-file'?: string;
  'handshake-timeout': number;
  'max-unauthenticated'?: number;
  'max-connections'?: number;
  'max-connections-per-address'?: number;
  'headers-timeout'?: number;
  'max-unsent-mib'?: number;
  'key-retention-days'?: number;
  'insecure-dh': boolean;
  'lab-disable'?: string[];
  'public-url'?: string;
  'log-level': 'debug' | 'info' | 'warn' | 'error' | 'silent';
  'log-format': 'text' | 'json';
  'metrics-listen'?: { host: string; port: number };
  console: boolean;
}

export const startCommand: CommandModule<object, StartArgs> = {
  command: 'start',
  describe: 'run the KDC: WebSocket sessions at /kds, GET /ca.pem, /crl.pem, /healthz',
  builder: (y) =>
    y
      .option('host', {
        type: 'string',
        default: '127.0.0.1',
        describe: 'address to bind (an IP address or a DNS name)',
        coerce: hostValue,
      })
      .option('port', {
        type: 'string',
        default: '8443',
        describe: 'TCP port (0 picks a free one)',
        coerce: portValue('--port', { allowZero: true }),
      })
      .option('data-dir', dataDirOption)
      .option('store', storeOption)
      .option('dh', {
        choices: ['any', 'x25519', 'ffdhe2048'] as const,
        default: 'any' as const,
        describe: 'accept only this Diffie-Hellman group (ffdhe2048: RFC 7919 finite-field DH); default both',
      })
      .option('passphrase-file', {
        type: 'string',
        describe: 'file holding the CA passphrase (else KDS_CA_PASSPHRASE)',
        coerce: pathValue('--passphrase-file'),
      })
      .option('handshake-timeout', {
        type: 'string',
        default: '10000',
        describe: 'milliseconds a connection has to complete its handshake (100 to 600000)',
        coerce: integerValue('--handshake-timeout', 100, 600_000),
      })
      .option('max-unauthenticated', {
        type: 'string',
        describe: 'cap on connections still in their handshake (1 to 100000)',
        coerce: integerValue('--max-unauthenticated', 1, 100_000),
      })
      .option('public-url', {
        type: 'string',
        describe:
          'public base URL put in what the CA issues from now on (CRL distribution point, Freshest CRL), and stored (env KDS_PUBLIC_URL; default: the one init or an earlier start was given, else http://<host>:<port> listened on)',
      })
      .option('max-connections', {
        type: 'string',
        describe:
          'cap on TCP connections in all, in any phase (1 to 1000000; default 4096, keep it below ulimit -n)',
        coerce: integerValue('--max-connections', 1, 1_000_000),
      })
      .option('max-connections-per-address', {
        type: 'string',
        describe:
          'cap on TCP connections from one address, counted before any HTTP is read (1 to 1000000; default 256)',
        coerce: integerValue('--max-connections-per-address', 1, 1_000_000),
      })
      .option('headers-timeout', {
        type: 'string',
        describe:
          'milliseconds a connection has to send its HTTP request headers (100 to 600000; default 10000)',
        coerce: integerValue('--headers-timeout', 100, 600_000),
      })
      .option('max-unsent-mib', {
        type: 'string',
        describe:
          'MiB of replies and pushes all sessions together may leave unread; over it the session unread longest is closed (1 to 1048576; default 256)',
        coerce: integerValue('--max-unsent-mib', 1, 1_048_576),
      })
      .option('key-retention-days', {
        type: 'string',
        describe:
          'days a key is kept after it expired, then deleted (the audit log keeps its history); 0 keeps keys for ever (0 to 36500; default 30)',
        coerce: integerValue('--key-retention-days', 0, 36_500),
      })
      .option('log-level', {
        choices: ['debug', 'info', 'warn', 'error', 'silent'] as const,
        default: 'info' as const,
        describe:
          'events the log shows (stderr): debug adds every connection and request; silent shows none (env KDS_LOG_LEVEL)',
      })
      .option('log-format', {
        choices: ['text', 'json'] as const,
        default: 'text' as const,
        describe: 'text: one readable line per event; json: one JSON object per line, for a log collector',
      })
      .option('metrics-listen', {
        type: 'string',
        describe:
          'serve GET /metrics (Prometheus) on HOST:PORT, to every client reaching it, instead of to loopback clients on the KDC port',
        coerce: hostPortValue('--metrics-listen'),
      })
      .option('insecure-dh', {
        type: 'boolean',
        default: false,
        describe:
          'MITM lab only: also accept unauthenticated "insecure" sessions (needs KDS_ALLOW_INSECURE=1)',
      })
      .option('console', {
        type: 'boolean',
        default: false,
        describe:
          'serve the live console (sequence diagrams, state, timeline) at /console on the same port; loopback clients only unless given the key in the printed URL',
      })
      .option('lab-disable', LAB_DISABLE_OPTION)
      .example('$0 server start', 'listen on ws://127.0.0.1:8443/kds')
      .example('$0 server start --console', 'print the URL of the live console too')
      .example('$0 server start --port 0 --json', 'pick a free port, print {"url","httpUrl","fingerprint"}')
      .example(
        '$0 server start --dh ffdhe2048 --host 0.0.0.0',
        'finite-field DH only, listen on every interface',
      ) as never,
  handler: run(async (argv: StartArgs) => {
    // Checked in the order they always were (KDS_LOG_FLUSH_MS, then the two keys of the lab flags),
    // before the KDC's modules load: a refused start (insecure_refused) ends ~0.3 s of CPU sooner.
    // Nothing is written to the log before them either way.
    const flush = logFlush();
    if (argv['insecure-dh']) {
      const { assertInsecureAllowed, insecureWarning } = await import('../insecure.js');
      assertInsecureAllowed(); // insecure_refused unless KDS_ALLOW_INSECURE=1 too
      process.stderr.write(`${insecureWarning('server')}\n`);
    }
    // --lab-disable: the same two keys, its own loud warning (cli/lab-switches.ts).
    const { serverDefences } = await import('../lab-switches.js');
    const { labOff } = await import('../../shared/lab-switches.js');
    const { defences, off } = serverDefences(argv);
    if (off.includes('authentication') && !argv['insecure-dh']) {
      const { insecureWarning } = await import('../insecure.js');
      process.stderr.write(`${insecureWarning('server')}\n`);
    }
    const { startKdc } = await import('../../server/kdc/kdc.js');
    const { EventBus } = await import('../../server/events/bus.js');
    const { attachLogReader } = await import('../../server/events/log-reader.js');
    // The log reads the bus from before the start, so kdc.started is its first line.
    const events = new EventBus();
    const logReader = await attachLogReader(events, {
      format: argv['log-format'],
      level: argv['log-level'],
      ...flush,
    });
    // A KDC keeps serving when nobody reads its output any more (cli/closed-pipe.ts): its clients
    // matter more than its log reader.
    const { onOutputClosed } = await import('../closed-pipe.js');
    onOutputClosed(() => undefined);
    // Imported before the start so that the URL is written as soon as startKdc returns, before the
    // work the KDC leaves for after it listens (the ticket keys, prom-client: server/kdc/kdc.ts).
    const { untilStopped } = await import('../stop-signal.js');
    // One KDC per data directory (io/data-dir-lock.ts). A node of a PostgreSQL store started on a data
    // directory that does not exist yet fills it: there is nothing to share yet, and nothing to lock.
    const { existsSync } = await import('node:fs');
    const { lockDataDir } = await import('../../io/data-dir-lock.js');
    const unlock = existsSync(argv['data-dir']) ? lockDataDir(argv['data-dir']) : () => undefined;
    let kdc: Awaited<ReturnType<typeof startKdc>>;
    try {
      kdc = await startKdc({
        dataDir: argv['data-dir'],
        storeUrl: argv.store,
        host: argv.host,
        port: argv.port,
        dh: argv.dh,
        handshakeTimeoutMs: argv['handshake-timeout'],
        // LAB SWITCH authentication: unauthenticated sessions are accepted (as with --insecure-dh).
        allowInsecure: labOff(defences, 'authentication'),
        defences,
        console: argv.console,
        ...(argv['public-url'] === undefined ? {} : { publicUrl: argv['public-url'] }),
        ...(argv['passphrase-file'] === undefined ? {} : { passphraseFile: argv['passphrase-file'] }),
        ...(argv['max-unauthenticated'] === undefined
          ? {}
          : { maxUnauthenticated: argv['max-unauthenticated'] }),
        ...(argv['max-connections'] === undefined ? {} : { maxConnections: argv['max-connections'] }),
        ...(argv['max-connections-per-address'] === undefined
          ? {}
          : { maxConnectionsPerAddress: argv['max-connections-per-address'] }),
        ...(argv['headers-timeout'] === undefined ? {} : { headersTimeoutMs: argv['headers-timeout'] }),
        ...(argv['max-unsent-mib'] === undefined
          ? {}
          : { maxUnsentBytes: argv['max-unsent-mib'] * 1024 * 1024 }),
        ...(argv['key-retention-days'] === undefined
          ? {}
          : { keyRetentionMs: argv['key-retention-days'] * 24 * 60 * 60 * 1000 }),
        ...(argv['metrics-listen'] === undefined ? {} : { metricsListen: argv['metrics-listen'] }),
        ...revocationSyncForTests(),
        events,
        // Warnings are kdc.warning events: the log reader writes them (at warn and below).
        log: () => undefined,
      });
    } catch (err) {
      unlock();
      throw err;
    }
    // Before the lines below: whoever reads them may stop the KDC at once (cli/stop-signal.ts).
    const stopped = untilStopped();
    if (argv.json) {
      // One line, so a supervising script (or test) can read it as soon as it appears.
      process.stdout.write(
        `${JSON.stringify({ url: kdc.url, httpUrl: kdc.httpUrl, publicUrl: kdc.publicUrl, fingerprint: kdc.fingerprint, metricsUrl: kdc.metricsUrl, ...(kdc.consoleUrl === undefined ? {} : { consoleUrl: kdc.consoleUrl }) })}\n`,
      );
    } else {
      process.stdout.write(
        `listening on ${kdc.url}\npublic URL: ${kdc.publicUrl}\nroot CA fingerprint: ${kdc.fingerprint}\n` +
          (kdc.metricsUrl === '' ? '' : `metrics: ${kdc.metricsUrl}\n`),
      );
      if (kdc.consoleUrl !== undefined) process.stdout.write(`console: ${kdc.consoleUrl}\n`);
    }
    // A KDC that finds it cannot serve (kdc.unusable) stops as a signal would stop it, then fails.
    const unusable = await Promise.race([stopped.done.then(() => undefined), kdc.unusable]);
    stopped.stop();
    await kdc.close();
    unlock();
    logReader.close();
    if (unusable !== undefined) throw unusable;
    if (!argv.json) process.stderr.write('stopped\n');
    return 0;
  }),
};

/**
 * KDS_TEST_REVOCATION_SYNC_MS (tests only, docs/cli.md): the periodic revocation sync's interval, which
 * the cluster tests lengthen to show that another node's revocation arrives by notification. A value
 * that is not a positive integer is refused by startKdc (`bad_request`).
 */
/**
 * KDS_LOG_FLUSH_MS (docs/cli.md): how long a log line may wait to be written with the next ones (default
 * 20 ms, server/events/line-writer.ts); 0 writes each line when it happens. The demo sets 0: it shows
 * each KDC line under the step that caused it, and a line held back with the next step's would land
 * under the wrong one.
 */
function logFlush(env: NodeJS.ProcessEnv = process.env): { flushMs?: number } {
  const value = env.KDS_LOG_FLUSH_MS;
  if (value === undefined) return {};
  if (!/^\d{1,4}$/.test(value) || Number(value) > 1000) {
    throw new InputError(
      'bad_request',
      `KDS_LOG_FLUSH_MS must be an integer from 0 to 1000 (ms), got ${JSON.stringify(value)}`,
    );
  }
  return { flushMs: Number(value) };
}

function revocationSyncForTests(env: NodeJS.ProcessEnv = process.env): { revocationSyncMs?: number } {
  const value = env.KDS_TEST_REVOCATION_SYNC_MS;
  return value === undefined ? {} : { revocationSyncMs: Number(value) };
}
