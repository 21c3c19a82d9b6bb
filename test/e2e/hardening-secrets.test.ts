// Secrets, end to end with real processes and KDS_DEBUG=1 everywhere: init, server, enroll alice and
// bob, `listen`, both key flows, verify, a message, Mallory relaying a key exchange (passthrough: the
// secure mode, where she must learn nothing), rotation, key revocation, certificate revocation, CRL and
// listings. Then:
//   1. no key material in any output: every stdout/stderr (the KDC's event log at debug level as JSON
//      lines, whose `msg` is the text line of each event), GET /metrics, Mallory's report file and the
//      audit table
//      are searched for every key involved (RSA private keys of the CA, the KDC, the admin and both
//      clients, the KEK, every AES key and prekey private from both clients' stores) as hex and base64
//      (whole, and slices, with line breaks ignored), and for the CA passphrase and the enrollment
//      tokens (which only `kds admin token` may print);
//   2. the KDC's store never holds an AES key in plaintext (raw bytes of every key searched in
//      kds.sqlite and its WAL);
//   3. file modes: under the data directory and both client homes every file is 0600 and every
//      directory 0700, except the published root_ca.pem, root_crl.pem and root_delta_crl.pem (0644).
import t from 'tap';
import Database from 'better-sqlite3';
import { createPrivateKey, scrypt, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ClientKeyStore } from '../../client/keys/key-store.js';
import { openBlob } from '../../shared/keys/aes-gcm.js';
import { spawnKds } from '../helpers/background.js';
import { parseJson, runKds, TEST_CA_PASSPHRASE, type RunResult } from '../helpers/kds-process.js';
import { tempDir } from '../helpers/tmp.js';

const DEBUG = { KDS_DEBUG: '1' };

interface Secret {
  what: string;
  bytes: Buffer;
}

/** Every text form a secret could take in a log: hex (both cases), base64, base64url, and slices of them. */
function needles(s: Secret): { what: string; text: string; compact: boolean }[] {
  const out: { what: string; text: string; compact: boolean }[] = [];
  const add = (form: string, bytes: Buffer): void => {
    out.push({ what: `${s.what} (${form} hex)`, text: bytes.toString('hex'), compact: false });
    out.push({ what: `${s.what} (${form} HEX)`, text: bytes.toString('hex').toUpperCase(), compact: false });
    out.push({
      what: `${s.what} (${form} base64)`,
      text: bytes.toString('base64').replace(/=+$/, ''),
      compact: true,
    });
    out.push({ what: `${s.what} (${form} base64url)`, text: bytes.toString('base64url'), compact: true });
  };
  if (s.bytes.length <= 48) {
    add('whole', s.bytes);
    add('first 15 bytes', s.bytes.subarray(0, 15));
  } else {
    // Long DER keys: 3-byte-aligned slices from the secret part (past the common PKCS#8 header), so
    // a PEM with line breaks still matches once whitespace is removed.
    for (const at of [300, 600, 900])
      if (s.bytes.length >= at + 30) add(`bytes ${at}..${at + 30}`, s.bytes.subarray(at, at + 30));
  }
  return out;
}

function der(key: KeyObject): Secret[] {
  return [
    { what: 'pkcs8', bytes: key.export({ type: 'pkcs8', format: 'der' }) },
    { what: 'pkcs1', bytes: key.export({ type: 'pkcs1', format: 'der' }) },
  ];
}

function kekBytes(path: string): Promise<Buffer> {
  // server/keys/kek.ts: magic (8) | version u32 | log2(N) u8 | r u8 | p u8 | salt (16) = 31 bytes of
  // header (the AEAD's associated data), then nonce || AES-256-GCM(KEK) || tag.
  const raw = readFileSync(path);
  const header = raw.subarray(0, 31);
  const salt = header.subarray(15, 31);
  const N = 2 ** header[12]!;
  const r = header[13]!;
  const p = header[14]!;
  return new Promise((resolve, reject) =>
    scrypt(TEST_CA_PASSPHRASE, salt, 32, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(openBlob(key, raw.subarray(31), header, 'bad_passphrase')),
    ),
  );
}

function walk(dir: string, out: string[] = []): string[] {
  out.push(dir);
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) walk(path, out);
    else out.push(path);
  }
  return out;
}

t.test(
  'no key material in any output, log, audit row or report; private file modes',
  { timeout: 300_000 },
  async (t) => {
    const root = tempDir(t, 'kds-secrets-');
    const dataDir = join(root, 'data');
    const homes = { alice: join(root, 'alice'), bob: join(root, 'bob') };
    const outputs: { what: string; text: string }[] = [];
    const tokens: string[] = [];
    const kds = async (args: string[], what = args.slice(0, 2).join(' ')): Promise<RunResult> => {
      const r = await runKds(args, { env: DEBUG });
      outputs.push({ what: `${what} stdout`, text: r.stdout }, { what: `${what} stderr`, text: r.stderr });
      if (r.code !== 0) throw new Error(`kds ${args.join(' ')} exited ${r.code}: ${r.stdout}${r.stderr}`);
      return r;
    };

    await kds(['server', 'init', '--data-dir', dataDir, '--ca-key-bits', '2048', '--json']);
    const server = spawnKds(
      t,
      [
        'server',
        'start',
        '--host',
        '127.0.0.1',
        '--port',
        '0',
        '--data-dir',
        dataDir,
        '--json',
        '--log-level',
        'debug',
        '--log-format',
        'json',
      ],
      DEBUG,
    );
    const listening = await server.waitFor((e) => typeof e.url === 'string', 'listening line');
    const url = String(listening.url);
    const fingerprint = String(listening.fingerprint);
    const client = (
      name: 'alice' | 'bob',
      command: string,
      args: string[] = [],
      via = url,
    ): Promise<RunResult> =>
      kds(
        ['client', command, '--name', name, '--home', homes[name], '--server', via, '--json', ...args],
        `client ${command} ${name}`,
      );

    for (const name of ['alice', 'bob'] as const) {
      const tokenRun = await runKds(
        ['admin', 'token', '--name', name, '--data-dir', dataDir, '--server', url, '--json'],
        { env: DEBUG },
      );
      const token = parseJson<{ token: string }>(tokenRun).token;
      tokens.push(token);
      outputs.push({ what: `admin token stderr`, text: tokenRun.stderr }); // its stdout is the token, by design
      await client(name, 'enroll', ['--token', token, '--ca-fingerprint', fingerprint]);
    }
    const listen = spawnKds(
      t,
      ['client', 'listen', '--name', 'bob', '--home', homes.bob, '--server', url, '--json'],
      DEBUG,
    );
    await listen.waitFor((e) => e.event !== undefined, 'first listen event').catch(() => undefined);

    // AES keys and prekey privates, collected whenever they exist (revocation deletes them later).
    const privateKeys = {
      alice: createPrivateKey(readFileSync(join(homes.alice, 'key.pem'))),
      bob: createPrivateKey(readFileSync(join(homes.bob, 'key.pem'))),
    };
    const symmetric = new Map<string, Secret>();
    const snapshot = (): void => {
      for (const name of ['alice', 'bob'] as const) {
        const store = ClientKeyStore.open(homes[name], name, privateKeys[name]);
        for (const k of store.listKeys())
          if (k.key !== undefined)
            symmetric.set(`${name} key ${k.serial}`, {
              what: `AES key ${k.serial} (${name})`,
              bytes: Buffer.from(k.key, 'base64'),
            });
        for (const id of store.prekeyIds()) {
          const p = store.getPrekey(id);
          if (p !== undefined)
            symmetric.set(`${name} prekey ${id}`, {
              what: `prekey private ${id} (${name})`,
              bytes: Buffer.from(p.privateKey, 'base64'),
            });
        }
      }
    };

    const sendKey = async (mode: 'e2e' | 'kdc', via = url): Promise<string> => {
      const serial = String(
        parseJson<{ serial: string }>(await client('alice', 'send-key', ['--to', 'bob', '--mode', mode], via))
          .serial,
      );
      await listen.waitFor(
        (e) => e.event === 'key' && e.serial === serial,
        `bob receives ${mode} key ${serial}`,
      );
      return serial;
    };
    const e2e = await sendKey('e2e');
    const kdc = await sendKey('kdc');
    await client('alice', 'verify-key', ['--serial', e2e]);
    await client('alice', 'send', ['--to', 'bob', '--message', 'meet at noon', '--serial', e2e]);
    await listen.waitFor((e) => e.event === 'message', 'the message');
    await client('alice', 'keys');
    await kds(['admin', 'keys', '--data-dir', dataDir, '--server', url, '--json']);
    snapshot();

    // Mallory in the middle, secure mode: she relays a KDC-generated key exchange and must learn nothing.
    const reportPath = join(root, 'mallory.json');
    const mallory = spawnKds(
      t,
      [
        'mitm',
        '--listen',
        '127.0.0.1:0',
        '--target',
        url.replace(/\/kds$/, ''),
        '--attack',
        'passthrough',
        '--report',
        reportPath,
        '--json',
      ],
      DEBUG,
    );
    const mitmUrl = String((await mallory.waitFor((e) => e.event === 'listening', 'mallory listening')).url);
    const viaMallory = await sendKey('kdc', mitmUrl);
    await client('bob', 'verify-key', ['--serial', viaMallory]);
    snapshot();
    await mallory.stop('SIGTERM');
    outputs.push(
      { what: 'mallory stdout', text: mallory.stdout() },
      { what: 'mallory stderr', text: mallory.stderr() },
    );
    t.ok(existsSync(reportPath), "Mallory's report was written");
    if (existsSync(reportPath))
      outputs.push({ what: "Mallory's report", text: readFileSync(reportPath, 'utf8') });

    const rotated = String(
      parseJson<{ serial: string }>(await client('alice', 'rotate-key', ['--serial', e2e])).serial,
    );
    await listen.waitFor((e) => e.event === 'key' && e.serial === rotated, 'the rotated key');
    snapshot();
    await client('alice', 'revoke-key', ['--serial', kdc, '--reason', 'keyCompromise']);
    await kds([
      'admin',
      'revoke-cert',
      '--name',
      'bob',
      '--reason',
      'keyCompromise',
      '--data-dir',
      dataDir,
      '--server',
      url,
      '--json',
    ]);
    // Errors are outputs too: a revoked client, an unknown peer, an unknown key (with KDS_DEBUG=1).
    for (const [name, args] of [
      ['bob', ['status']],
      ['alice', ['send-key', '--to', 'nobody']],
      ['alice', ['verify-key', '--serial', '0'.repeat(32)]],
    ] as const) {
      const r = await runKds(['client', ...args, '--name', name, '--home', homes[name], '--server', url], {
        env: DEBUG,
      });
      t.not(r.code, 0, `client ${args[0]} ${name} fails as it should`);
      outputs.push({ what: `failing client ${args[0]} ${name}`, text: r.stdout + r.stderr });
    }
    await kds(['crl', 'show', '--data-dir', dataDir, '--json']);
    await kds(['cert', 'list', '--data-dir', dataDir, '--json']);
    const metrics = await fetch(`${String(listening.httpUrl)}/metrics`);
    t.equal(metrics.status, 200, 'metrics served to a loopback client');
    outputs.push({ what: 'GET /metrics', text: await metrics.text() });
    await listen.stop('SIGTERM');
    await server.stop('SIGTERM');
    // The event log covered the flow: one JSON object per line, every kind of decision in it.
    const logged = new Set(
      server
        .stderr()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => String((JSON.parse(l) as { event?: unknown }).event)),
    );
    for (const kind of [
      'kdc.started',
      'handshake.completed',
      'request.served',
      'token.created',
      'cert.issued',
      'key.created',
      'key.deposited',
      'key.delivered',
      'key.verified',
      'key.revoked',
      'message.relayed',
      'cert.revoked',
      'crl.published',
      'kdc.stopped',
    ]) {
      t.ok(logged.has(kind), `the JSON log has ${kind}`);
    }
    outputs.push(
      { what: 'server stdout', text: server.stdout() },
      { what: 'server stderr', text: server.stderr() },
      { what: 'listen stdout', text: listen.stdout() },
      { what: 'listen stderr', text: listen.stderr() },
    );
    const db = new Database(join(dataDir, 'kds.sqlite'), { readonly: true });
    outputs.push({ what: 'audit_log', text: JSON.stringify(db.prepare('SELECT * FROM audit_log').all()) });
    outputs.push({
      what: 'audit_heads',
      text: JSON.stringify(db.prepare('SELECT entry_id, hash, cert_serial FROM audit_heads').all()),
    });
    db.close();

    // Every secret involved.
    const passphrase = TEST_CA_PASSPHRASE;
    const decrypt = (file: string): KeyObject =>
      createPrivateKey({ key: readFileSync(file, 'utf8'), format: 'pem', passphrase });
    const secrets: Secret[] = [
      ...der(decrypt(join(dataDir, 'root_private_key.pem'))).map((s) => ({
        ...s,
        what: `CA private key ${s.what}`,
      })),
      ...der(decrypt(join(dataDir, 'server', 'key.pem'))).map((s) => ({
        ...s,
        what: `KDC private key ${s.what}`,
      })),
      ...der(decrypt(join(dataDir, 'admin', 'key.pem'))).map((s) => ({
        ...s,
        what: `admin private key ${s.what}`,
      })),
      ...der(privateKeys.alice).map((s) => ({ ...s, what: `alice private key ${s.what}` })),
      ...der(privateKeys.bob).map((s) => ({ ...s, what: `bob private key ${s.what}` })),
      ...symmetric.values(),
    ];
    const kekDir = join(dataDir, 'kek');
    for (const f of readdirSync(kekDir).filter((f) => f.endsWith('.bin')))
      secrets.push({ what: `KEK ${f}`, bytes: await kekBytes(join(kekDir, f)) });
    t.ok(
      symmetric.size >= 6,
      `collected ${symmetric.size} AES keys and prekey privates from the clients' stores`,
    );
    t.ok(
      [...symmetric.keys()].some((k) => k.includes(viaMallory)),
      'including the key relayed through Mallory',
    );

    const hits: string[] = [];
    // Each output without whitespace, made once rather than once per needle (the server's debug log
    // alone is large, and there are hundreds of needles).
    const compacted = outputs.map((o) => o.text.replace(/\s+/g, ''));
    for (const s of secrets) {
      for (const n of needles(s)) {
        outputs.forEach((o, i) => {
          const hay = n.compact ? compacted[i]! : o.text;
          if (hay.includes(n.text)) hits.push(`${n.what} in ${o.what}`);
        });
      }
    }
    for (const o of outputs) {
      if (o.text.includes(passphrase)) hits.push(`the CA passphrase in ${o.what}`);
      for (const token of tokens) if (o.text.includes(token)) hits.push(`an enrollment token in ${o.what}`);
    }
    // The search must be able to fail: alice's own key.pem (a PEM with line breaks) and a hex dump of an
    // AES key are found by it.
    const control = [
      { what: 'control: key.pem', text: readFileSync(join(homes.alice, 'key.pem'), 'utf8') },
      { what: 'control: hex', text: `debug: key=${[...symmetric.values()][0]!.bytes.toString('hex')}` },
    ];
    const found = (s: Secret, o: { text: string }): boolean =>
      needles(s).some((n) => (n.compact ? o.text.replace(/\s+/g, '') : o.text).includes(n.text));
    t.ok(
      der(privateKeys.alice).some((s) => found(s, control[0]!)),
      'control: a private key PEM is detected',
    );
    t.ok(found([...symmetric.values()][0]!, control[1]!), 'control: a hex-dumped AES key is detected');
    t.comment(
      `searched ${outputs.length} outputs (${outputs.reduce((n, o) => n + o.text.length, 0)} characters) for ${secrets.length} secrets`,
    );
    t.same(
      hits,
      [],
      'no key material, passphrase or token anywhere in the outputs, the audit log or the report',
    );

    // The KDC never stores an AES key in plaintext.
    const storeBytes = Buffer.concat(
      ['kds.sqlite', 'kds.sqlite-wal']
        .map((f) => join(dataDir, f))
        .filter(existsSync)
        .map((f) => readFileSync(f)),
    );
    const inStore = [...symmetric.values()]
      .filter((s) => s.what.startsWith('AES') && storeBytes.includes(s.bytes))
      .map((s) => s.what);
    t.same(
      inStore,
      [],
      'no AES key appears in plaintext in the KDC store (e2e keys never reach it; KDC keys are KEK-wrapped)',
    );

    // File modes.
    const bad: string[] = [];
    for (const base of [dataDir, homes.alice, homes.bob]) {
      for (const path of walk(base)) {
        const st = statSync(path);
        const mode = st.mode & 0o777;
        const published = ['root_ca.pem', 'root_crl.pem', 'root_delta_crl.pem'].some(
          (f) => path === join(dataDir, f),
        );
        const want = st.isDirectory() ? 0o700 : published ? 0o644 : 0o600;
        if (mode !== want)
          bad.push(`${path.slice(root.length)}: ${mode.toString(8)} (want ${want.toString(8)})`);
      }
    }
    t.same(bad, [], 'every file 0600 and every directory 0700 (root_ca.pem and the CRLs 0644)');
    for (const must of ['root_private_key.pem', 'server/key.pem', 'admin/key.pem', 'kds.sqlite'])
      t.ok(existsSync(join(dataDir, must)), `${must} exists and was checked`);
    t.ok(
      readdirSync(kekDir).some((f) => f.endsWith('.bin')),
      'the KEK file exists and was checked',
    );
    t.ok(readdirSync(join(homes.bob, 'keys')).length > 0, "bob's key store exists and was checked");
  },
);
