// The KDC's side of a walkthrough, from real processes: `kds server start` prints one readable line per
// decision (text, --log-level debug), or JSON lines at the level KDS_LOG_LEVEL sets; GET /metrics parses
// with a Prometheus text-format parser (not a regex) and counts what happened; it answers loopback
// clients on the KDC port, or only on --metrics-listen when that is given.
import t from 'tap';
import WebSocket from 'ws';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { initDataDir, runKds, startServer } from '../helpers/kds-process.js';
import { enrollAll, keyClient, type Clients } from './keys-helpers.js';

type Families = ReturnType<typeof parsePrometheusTextFormat>;

function sample(families: Families, name: string, labels: Record<string, string> = {}): number {
  const family = families.find((f) => f.name === name);
  if (family === undefined) throw new Error(`no metric ${name}`);
  const found = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  if (found === undefined) throw new Error(`no ${name} sample with ${JSON.stringify(labels)}`);
  return Number(found.value ?? found.count);
}

async function scrape(url: string): Promise<Families> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return parsePrometheusTextFormat(await res.text());
}

t.test('text lines and metrics of a key walkthrough', { timeout: 180_000 }, async (t) => {
  const dataDir = await initDataDir(t);
  const server = await startServer(t, dataDir, ['--log-level', 'debug']);
  const c: Clients = { server, homes: await enrollAll(server, ['alice', 'bob']) };
  const alice = await keyClient(t, c, 'alice');
  const bob = await keyClient(t, c, 'bob');
  const sent = await alice.client.sendKey({ to: 'bob', mode: 'kdc' });
  await bob.client.sync();
  await bob.client.verifyKey(sent.serial);
  await alice.client.sendMessage({ to: 'bob', text: 'hello bob', serial: sent.serial });

  const families = await scrape(`${server.httpUrl}/metrics`);
  t.ok(sample(families, 'kds_handshakes_total', { outcome: 'ok', group: 'x25519', code: 'ok' }) >= 4);
  // This parser keeps no labels for a labelled histogram's series (only their buckets): before any
  // refusal there is one series, outcome="ok", whose +Inf bucket is its count.
  const durations = families.find((f) => f.name === 'kds_handshake_duration_seconds')!;
  t.equal(durations.type, 'HISTOGRAM');
  t.equal(durations.metrics.length, 1);
  t.ok(Number(durations.metrics[0]!.buckets!['+Inf']) >= 4, 'every handshake timed');
  t.ok(sample(families, 'kds_requests_total', { type: 'key.create', code: 'ok' }) >= 1);
  t.ok(sample(families, 'kds_requests_total', { type: 'enroll', code: 'ok' }) === 2);
  t.equal(sample(families, 'kds_keys_created_total', { mode: 'kdc' }), 1);
  t.ok(sample(families, 'kds_keys', { state: 'active' }) >= 1);
  // bob's client verifies a delivered key by itself, and once more when asked.
  t.ok(sample(families, 'kds_key_verifications_total', { verdict: 'valid' }) >= 1);
  t.equal(sample(families, 'kds_messages_relayed_total'), 1);
  t.ok(sample(families, 'kds_sessions_open') >= 2, 'alice and bob are connected');
  t.ok(sample(families, 'kds_crl_number', { kind: 'full' }) >= 1);
  t.ok(sample(families, 'kds_crl_next_update_seconds', { kind: 'full' }) > 0);
  t.ok(sample(families, 'kds_delivery_queue_depth') >= 0);
  t.ok(sample(families, 'kds_store_commit_duration_seconds') >= 1, 'group commits timed');
  t.ok(
    families.some((f) => f.name === 'nodejs_eventloop_lag_seconds'),
    'event-loop lag',
  );

  // Bob's certificate revoked by the admin: his session ends, his next handshake is refused.
  const revoked = await runKds([
    'admin',
    'revoke-cert',
    '--name',
    'bob',
    '--reason',
    'keyCompromise',
    '--data-dir',
    dataDir,
    '--server',
    server.url,
  ]);
  t.equal(revoked.code, 0, revoked.stderr);
  await t.rejects(keyClient(t, c, 'bob'), { code: 'cert_revoked' });
  const after = await scrape(`${server.httpUrl}/metrics`);
  t.equal(sample(after, 'kds_revocations_total', { kind: 'certificate' }), 1);
  t.ok(sample(after, 'kds_handshakes_total', { outcome: 'refused', code: 'cert_revoked' }) >= 1);

  await alice.close();
  await server.stop('SIGTERM');
  const log = server.stderr();
  const expect: [string, RegExp][] = [
    ['start', /kdc\s+started \(kds /],
    ['enrollment session', /127\.0\.0\.1\s+enrollment session open \(x25519, [0-9.]+ ms\)/],
    ['token', /admin\s+enrollment token for alice/],
    ['enrollment', /alice\s+certificate [0-9a-f]{8}\.\.\. issued \(client, until /],
    ['handshake', /alice\s+handshake ok \(x25519, [0-9.]+ ms\)/],
    [
      'key created',
      new RegExp(`alice\\s+key ${sent.serial.slice(0, 8)}\\.\\.\\. created for bob \\(KDC-generated\\)`),
    ],
    ['key delivered', new RegExp(`bob\\s+key ${sent.serial.slice(0, 8)}\\.\\.\\. delivered from alice`)],
    ['key verified', new RegExp(`bob\\s+key ${sent.serial.slice(0, 8)}\\.\\.\\. verified valid`)],
    ['message', /alice\s+message to bob relayed \(\d+ bytes/],
    ['request (debug)', /alice\s+key\.create ok \(/],
    ['revocation', /bob\s+certificate [0-9a-f]{8}\.\.\. revoked: keyCompromise \(1 session closed\)/],
    ['cascade', /bob\s+1 key revoked with certificate/],
    ['CRL', /kdc\s+CRL \d+ published \(1 entry, \d+ bytes\)/],
    ['refused', /bob\?\s+handshake refused: cert_revoked \(revocation\)/],
    ['stop', /kdc\s+stopped after /],
  ];
  for (const [what, pattern] of expect) t.match(log, pattern, what);
  t.notMatch(log, /hello bob/, 'no message text');
});

t.test('JSON lines at KDS_LOG_LEVEL=warn; metrics only on --metrics-listen', async (t) => {
  const dataDir = await initDataDir(t);
  const server = await startServer(t, dataDir, ['--log-format', 'json', '--metrics-listen', '127.0.0.1:0'], {
    env: { KDS_LOG_LEVEL: 'warn' },
  });
  const metricsUrl = (server as unknown as { metricsUrl: string }).metricsUrl;
  t.match(metricsUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  t.not(metricsUrl, `${server.httpUrl}/metrics`);
  const onKdcPort = await fetch(`${server.httpUrl}/metrics`);
  t.equal(onKdcPort.status, 404, 'not on the KDC port when --metrics-listen serves it');
  const elsewhere = await fetch(`${metricsUrl.replace(/\/metrics$/, '')}/healthz`);
  t.equal(elsewhere.status, 404, 'the metrics listener serves nothing else');

  // A peer that sends garbage instead of a client_hello: refused (warn), shown at this level.
  await new Promise<void>((resolve) => {
    const ws = new WebSocket(server.url);
    ws.on('open', () => ws.send(Buffer.from('not a kds frame')));
    ws.on('close', () => resolve());
    ws.on('error', () => resolve());
  });
  const families = await scrape(metricsUrl);
  t.ok(families.some((f) => f.name === 'kds_handshakes_total'));
  t.ok(
    families
      .find((f) => f.name === 'kds_handshakes_total')!
      .metrics.some((m) => m.labels?.outcome === 'refused' && Number(m.value) >= 1),
    'the refusal is counted',
  );
  await server.stop('SIGTERM');
  const lines = server
    .stderr()
    .split('\n')
    .filter((l) => l !== '');
  const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.ok(records.length >= 1, 'at least the refusal');
  for (const r of records) {
    t.ok(Number(r.level) >= 40, `only warn and above: ${String(r.event)}`);
    t.type(r.time, 'number');
    t.type(r.msg, 'string');
  }
  t.ok(records.some((r) => r.event === 'handshake.refused' && r.by === 'kdc' && typeof r.code === 'string'));
  t.notOk(
    records.some((r) => r.event === 'kdc.started'),
    'info events filtered out',
  );
});

t.test(
  'at the default level, the log has the audit heads the KDC signs (kept outside the store)',
  async (t) => {
    const dataDir = await initDataDir(t);
    const server = await startServer(t, dataDir);
    t.equal((await server.stop()).code, 0);
    // docs/operations.md "Keep heads outside the store": the head of init's entries, signed at the start.
    t.match(server.stderr(), /kdc +audit head #\d+ signed \([0-9a-f]{16}\.\.\.\)/);
    t.notMatch(server.stderr(), /store commit/, 'still the info level');
  },
);
