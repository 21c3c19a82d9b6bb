// The files the server publishes are copies of what the store holds: root_ca.pem (the trust anchor
// clients pin and GET /ca.pem) and root_crl.pem (the CRL, GET /crl.pem). A crash cannot tear them
// (io/fs-atomic.ts writes a temporary file, fsyncs it, renames it over the target and fsyncs the
// directory), but a disk, an editor or an operator can. This test damages them in every way it can
// think of (truncated, emptied, garbage, one flipped character, deleted, an older CRL, another
// certificate) and starts the real server: it must notice, say so on stderr, rewrite each file from the
// store (byte-identical to the store's copy, public mode 0644) and serve the repaired content.
import t from 'tap';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority } from '../../server/ca/authority.js';
import { openStore } from '../../server/store/store.js';
import { parseCrl } from '../../shared/pki/crl.js';
import { issueTestClient } from '../helpers/kdc-in-process.js';
import { initDataDir, startServer, TEST_CA_PASSPHRASE } from '../helpers/kds-process.js';

type Damage = (path: string, text: string) => void;

function flipOne(text: string): string {
  // A character in the middle of the base64 body, changed to another base64 character.
  const lines = text.split('\n');
  const i = Math.floor(lines.length / 2);
  const line = lines[i]!;
  const j = Math.floor(line.length / 2);
  lines[i] = line.slice(0, j) + (line[j] === 'A' ? 'B' : 'A') + line.slice(j + 1);
  return lines.join('\n');
}

t.test(
  'damaged root_ca.pem and root_crl.pem are rebuilt from the store at start',
  { timeout: 240_000 },
  async (t) => {
    const dataDir = await initDataDir(t);
    const caPath = join(dataDir, 'root_ca.pem');
    const crlPath = join(dataDir, 'root_crl.pem');
    const olderCrl = readFileSync(crlPath, 'utf8');
    // Give the CRL content: two revoked certificates.
    const ca = await CertificateAuthority.open(dataDir, { passphrase: TEST_CA_PASSPHRASE });
    for (const name of ['gone-1', 'gone-2']) {
      const c = await issueTestClient(ca, name);
      await ca.revoke({ serialHex: c.cert.serialHex }, 'keyCompromise', 'test');
    }
    await ca.close();
    const otherCert = readFileSync(join(dataDir, 'server', 'cert.pem'), 'utf8');

    const cases: [string, Damage, Damage][] = [
      [
        'truncated to half',
        (p, x) => writeFileSync(p, x.slice(0, x.length >> 1)),
        (p, x) => writeFileSync(p, x.slice(0, x.length >> 1)),
      ],
      ['emptied', (p) => writeFileSync(p, ''), (p) => writeFileSync(p, '')],
      [
        'garbage',
        (p) => writeFileSync(p, Buffer.from([0, 1, 2, 0xff, 0xfe])),
        (p) => writeFileSync(p, 'not a CRL\n'),
      ],
      [
        'one character flipped',
        (p, x) => writeFileSync(p, flipOne(x)),
        (p, x) => writeFileSync(p, flipOne(x)),
      ],
      ['deleted', (p) => rmSync(p), (p) => rmSync(p)],
      [
        'replaced by another certificate / an older CRL',
        (p) => writeFileSync(p, otherCert),
        (p) => writeFileSync(p, olderCrl),
      ],
    ];
    for (const [what, damageCa, damageCrl] of cases) {
      await t.test(what, async (t) => {
        const goodCa = readFileSync(caPath, 'utf8');
        const goodCrl = readFileSync(crlPath, 'utf8');
        damageCa(caPath, goodCa);
        damageCrl(crlPath, goodCrl);
        const server = await startServer(t, dataDir);
        // stderr is another pipe than the stdout line startServer waited for: give it a moment.
        for (let i = 0; i < 40 && !/root_crl\.pem was/.test(server.stderr()); i++)
          await new Promise((r) => setTimeout(r, 50));
        t.match(
          server.stderr(),
          /root_ca\.pem was (missing|unreadable|different): rewritten from the store/,
          'the server says it rebuilt root_ca.pem',
        );
        t.match(
          server.stderr(),
          /root_crl\.pem was (missing|unreadable|different|stale): rewritten from the store/,
          'and root_crl.pem',
        );

        const store = openStore(dataDir);
        const storeCa = store.activeCertificate('root-ca')!.pem!;
        const storeCrl = store.getCrlState()!;
        const revoked = store
          .listRevocations()
          .map((r) => r.serialHex)
          .sort();
        store.close();
        t.equal(readFileSync(caPath, 'utf8'), storeCa, 'root_ca.pem is the store copy again');
        t.equal(readFileSync(crlPath, 'utf8'), storeCrl.pem, 'root_crl.pem is the store copy again');
        t.equal(statSync(caPath).mode & 0o777, 0o644, 'root_ca.pem mode 0644 (public)');
        t.equal(statSync(crlPath).mode & 0o777, 0o644, 'root_crl.pem mode 0644 (public)');
        const crl = parseCrl(readFileSync(crlPath, 'utf8'));
        t.ok(crl.signatureValid(storeCa), 'the CRL on disk verifies under the CA');
        t.equal(crl.crlNumber, BigInt(storeCrl.crlNumber), 'with the store CRL number');
        t.same(crl.entries.map((e) => e.serialHex).sort(), revoked, 'and exactly the revoked serials');
        t.equal(await (await fetch(`${server.httpUrl}/ca.pem`)).text(), storeCa, 'GET /ca.pem serves it');
        t.equal(
          await (await fetch(`${server.httpUrl}/crl.pem`)).text(),
          storeCrl.pem,
          'GET /crl.pem serves it',
        );
        t.same(await server.stop('SIGTERM'), { code: 0, signal: null }, 'clean stop');
      });
    }

    await t.test('intact files: no repair and no message', async (t) => {
      // The same public URL as the start before: each start here binds a new port (0), and a KDC whose
      // public URL changed re-issues its complete CRL on purpose (docs/protocol.md "HTTP endpoints").
      const url = ['--public-url', 'http://127.0.0.1:8443'];
      await (await startServer(t, dataDir, url)).stop('SIGTERM');
      const before = [readFileSync(caPath, 'utf8'), readFileSync(crlPath, 'utf8')];
      const server = await startServer(t, dataDir, url);
      t.notMatch(server.stderr(), /rewritten from the store/, 'nothing to say');
      t.same([readFileSync(caPath, 'utf8'), readFileSync(crlPath, 'utf8')], before, 'files untouched');
      await server.stop('SIGTERM');
    });
  },
);
