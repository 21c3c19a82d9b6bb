// `kds client menu` through scripted stdin, as a person would use it: bad numbers, empty
// answers, malformed and unknown names re-prompt with a clear message; failures print their code and
// the menu goes on; 0 and the end of input (Ctrl-D) exit 0. With a real KDC: both sub-menus end to end
// (send, list, verify, check, revoke a key; status, verify, CA and CRL, revoke my certificate).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initDataDir, runKds, startServer } from '../helpers/kds-process.js';
import { parseCertificate } from '../../shared/pki/x509.js';
import { enrollAll } from './keys-helpers.js';
import { tempDir } from '../helpers/tmp.js';
import { startMenu } from './menu-driver.js';

t.setTimeout(180_000);

const UNREACHABLE = 'ws://127.0.0.1:1/kds';

t.test(
  'without credentials: every bad answer re-prompts, failures do not end the menu, Ctrl-D exits 0',
  async (t) => {
    const home = join(tempDir(t), 'alice');
    const m = startMenu(t, ['--name', 'alice', '--home', home, '--server', UNREACHABLE]);
    await m.waitFor(/not enrolled yet[\s\S]*choose \[0-2\]: $/);
    m.type('9');
    t.match(
      await m.waitFor(/please choose a number from 0 to 2\nchoose \[0-2\]: $/),
      /0 to 2/,
      'out of range',
    );
    m.type('1.5');
    await m.waitFor(/please choose a number from 0 to 2\nchoose \[0-2\]: $/);
    m.type('');
    t.ok(
      await m.waitFor(/please type an answer \(0 goes back, Ctrl-D quits\)\nchoose \[0-2\]: $/),
      'empty answer',
    );
    m.type('1');
    await m.waitFor(/Symmetric keys[\s\S]*6\) Send a message\n {2}0\) Back\nchoose \[0-6\]: $/);
    m.type('5');
    t.ok(
      await m.waitFor(
        /error \[not_found\]: alice is not enrolled yet: choose Certificates > Enroll first[\s\S]*choose \[0-6\]: $/,
      ),
    );
    m.type('0');
    await m.waitFor(/Main menu[\s\S]*choose \[0-2\]: $/);
    m.type('2');
    await m.waitFor(/7\) Renew my certificate[^\n]*\n {2}0\) Back\nchoose \[0-7\]: $/);
    m.type('1');
    await m.waitFor(/enrollment token \(from kds admin token\): $/);
    m.type('short');
    t.ok(
      await m.waitFor(/a token is 16 or more letters[\s\S]*enrollment token \(from kds admin token\): $/),
      'token syntax',
    );
    m.type('A'.repeat(43));
    await m.waitFor(/root CA fingerprint: $/);
    m.type('12:34');
    t.ok(await m.waitFor(/64 hex digits of SHA-256[\s\S]*root CA fingerprint: $/), 'fingerprint syntax');
    m.type('0');
    t.ok(await m.waitFor(/\(cancelled\)[\s\S]*choose \[0-7\]: $/), '0 cancels the action');
    m.type('5');
    t.ok(
      await m.waitFor(
        /error \[unavailable\]: cannot fetch http:\/\/127\.0\.0\.1:1\/ca\.pem[\s\S]*choose \[0-7\]: $/,
      ),
      'no server: an error, not a crash',
    );
    m.endInput();
    t.equal(await m.exited(), 0, 'Ctrl-D at a prompt exits 0');
    t.match(m.output(), /bye\n$/);
    t.equal(m.stderr(), '', 'nothing on stderr');
  },
);

t.test('end of input in the middle of an action exits 0; --json and --insecure-dh are refused', async (t) => {
  const home = join(tempDir(t), 'alice');
  const m = startMenu(t, ['--name', 'alice', '--home', home, '--server', UNREACHABLE]);
  await m.waitFor(/choose \[0-2\]: $/);
  m.type('2');
  await m.waitFor(/choose \[0-7\]: $/);
  m.type('1');
  await m.waitFor(/enrollment token \(from kds admin token\): $/);
  m.endInput();
  t.equal(await m.exited(), 0);
  t.match(m.output(), /bye\n$/);

  const json = await runKds(['client', 'menu', '--name', 'alice', '--home', home, '--json']);
  t.equal(json.code, 2);
  t.match(json.stdout, /"code": "bad_request"/);
  const insecure = await runKds(['client', 'menu', '--name', 'alice', '--home', home, '--insecure-dh'], {
    env: { KDS_ALLOW_INSECURE: '1' },
  });
  t.equal(insecure.code, 7);
  t.match(insecure.stderr, /error \[insecure_refused\]: the menu always uses authenticated sessions/);
  const bogus = await runKds(['client', 'menu', '--name', 'alice', '--bogus']);
  t.equal(bogus.code, 2, 'unknown flags are errors');
});

t.test('with a KDC: both sub-menus end to end', async (t) => {
  const dataDir = await initDataDir(t);
  const server = await startServer(t, dataDir);
  // Enrolled from the test process (keys-helpers.ts) rather than with four CLI processes: enrollment
  // through the CLI has its own tests (channel.test.ts), and what this test needs is two identities.
  const homes = await enrollAll(server, ['alice', 'bob']);
  const identity = (name: string) => {
    const home = homes[name]!;
    return { home, serialHex: parseCertificate(readFileSync(join(home, 'cert.pem'), 'utf8')).serialHex };
  };
  const alice = identity('alice');
  const bob = identity('bob');
  // Bob connects once so that he has prekeys for end-to-end keys.
  const prime = await runKds(['client', 'keys', '--name', 'bob', '--home', bob.home, '--server', server.url]);
  t.equal(prime.code, 0, prime.stderr);

  const m = startMenu(t, ['--name', 'alice', '--home', alice.home, '--server', server.url]);
  await m.waitFor(/\(enrolled\)[\s\S]*choose \[0-2\]: $/);
  m.type('1');
  await m.waitFor(/choose \[0-6\]: $/);

  // 1) generate: unknown, own, malformed names re-prompt; a bad mode number re-prompts.
  m.type('1');
  await m.waitFor(/peer name: $/);
  m.type('carol');
  t.ok(
    await m.waitFor(/no enrolled client named carol; try another name \(0 goes back\)\npeer name: $/),
    'unknown peer',
  );
  m.type('alice');
  t.ok(await m.waitFor(/that is you \(alice\)[\s\S]*peer name: $/), 'oneself');
  m.type('Bob!');
  t.ok(await m.waitFor(/is not a client name[\s\S]*peer name: $/), 'malformed name');
  m.type('kdc');
  t.ok(await m.waitFor(/reserved for the system[\s\S]*peer name: $/), 'reserved name');
  m.type('bob');
  await m.waitFor(/mode \[1-2\]: $/);
  m.type('3');
  await m.waitFor(/please choose 1 or 2 \(0 goes back\)\nmode \[1-2\]: $/);
  m.type('1');
  const sent = await m.waitFor(/sent key ([0-9a-f]{32}) to bob \(e2e\)[\s\S]*choose \[0-6\]: $/);
  const serial = /sent key ([0-9a-f]{32})/.exec(sent)![1]!;

  // 5) list
  m.type('5');
  t.ok(await m.waitFor(new RegExp(`${serial}  -> bob +e2e[\\s\\S]*choose \\[0-6\\]: $`)), 'listed');

  // 4) check revoked: pick by number (after a bad pick)
  m.type('4');
  await m.waitFor(/key \[1-1\] or serial: $/);
  m.type('7');
  t.ok(
    await m.waitFor(/the list has one entry: type 1\nkey \[1-1\] or serial: $/),
    'a number outside the list re-prompts',
  );
  m.type('1');
  t.ok(await m.waitFor(new RegExp(`not revoked: key ${serial} is active`)), 'not revoked');

  // 3) revoke: pick by serial, a bad reason, a certificate-only reason, then a reason by name; the
  // confirmation is asked, and a revoked key is no longer offered.
  await m.waitFor(/choose \[0-6\]: $/);
  m.type('3');
  await m.waitFor(/key \[1-1\] or serial: $/);
  m.type(serial.toUpperCase());
  const reasons = await m.waitFor(/[\s\S]*reason \[1-6\]: $/);
  t.notMatch(reasons, /certificateHold|cACompromise|aACompromise/, 'only the reasons that apply to a key');
  m.type('42');
  t.ok(await m.waitFor(/please choose a number from 1 to 6\nreason \[1-6\]: $/), 'a bad reason re-prompts');
  m.type('certificateHold');
  t.ok(
    await m.waitFor(/certificateHold is not a reason for revoking a key[^\n]*\nreason \[1-6\]: $/),
    'a certificate-only reason is refused',
  );
  m.type('keycompromise');
  await m.waitFor(
    new RegExp(`revoke key ${serial} \\(shared with bob\\) for keyCompromise\\?[^\\n]*\\[yes/no\\]: $`),
  );
  m.type('yes');
  t.ok(await m.waitFor(new RegExp(`revoked ${serial} \\(keyCompromise\\)`)), 'revoked');
  await m.waitFor(/choose \[0-6\]: $/);
  m.type('3');
  t.ok(
    await m.waitFor(
      /no key to revoke: every key is already revoked, superseded or expired[\s\S]*choose \[0-6\]: $/,
    ),
    'a revoked key is not offered again',
  );
  m.type('4');
  await m.waitFor(/or serial: $/);
  m.type('1');

  // 4) check again, 2) verify: revoked
  t.ok(await m.waitFor(new RegExp(`revoked: key ${serial} is revoked \\(keyCompromise, `)));
  await m.waitFor(/choose \[0-6\]: $/);
  m.type('2');
  await m.waitFor(/or serial: $/);
  m.type(serial);
  t.ok(await m.waitFor(new RegExp(`revoked: key ${serial} \\(keyCompromise\\)`)), 'verify says revoked');

  // 6) send: no active key with anyone
  await m.waitFor(/choose \[0-6\]: $/);
  m.type('6');
  t.ok(
    await m.waitFor(/no active key shared with anyone yet[\s\S]*choose \[0-6\]: $/),
    'nothing to send with yet',
  );

  // A KDC-generated key; when bob connects and verifies it, the open menu prints the notice live.
  m.type('1');
  await m.waitFor(/peer name: $/);
  m.type('bob');
  await m.waitFor(/mode \[1-2\]: $/);
  m.type('2');
  const kdcKey = /sent key ([0-9a-f]{32}) to bob \(kdc\)/.exec(
    await m.waitFor(/sent key [0-9a-f]{32} to bob \(kdc\)/),
  )![1]!;
  await m.waitFor(/choose \[0-6\]: $/);
  const bobSees = await runKds([
    'client',
    'keys',
    '--name',
    'bob',
    '--home',
    bob.home,
    '--server',
    server.url,
  ]);
  t.equal(bobSees.code, 0, bobSees.stderr);
  t.ok(
    await m.waitFor(new RegExp(`\\[notice\\] key ${kdcKey} verified by bob: now active`)),
    'live notice in the menu',
  );
  m.type('6');
  await m.waitFor(/peer \[1-1\] or name: $/);
  m.type('carol');
  t.ok(
    await m.waitFor(/no active key shared with carol\npeer \[1-1\] or name: $/),
    'a peer without a key re-prompts',
  );
  m.type('bob');
  await m.waitFor(/message: $/);
  m.type('   ');
  await m.waitFor(/please type an answer[\s\S]*message: $/);
  m.type('hello from the menu');
  t.ok(
    await m.waitFor(new RegExp(`sent to bob with key ${kdcKey} \\(queued until they connect\\)`)),
    'message sent',
  );
  await m.waitFor(/choose \[0-6\]: $/);

  // Certificates
  m.type('0');
  await m.waitFor(/choose \[0-2\]: $/);
  m.type('2');
  await m.waitFor(/choose \[0-7\]: $/);
  // 1) Enroll on an enrolled name: nothing is offered that the KDC would refuse (already_active).
  m.type('1');
  const enrolled = await m.waitFor(/[\s\S]*choose \[0-7\]: $/);
  t.match(
    enrolled,
    new RegExp(
      `alice already has a certificate \\(serial ${alice.serialHex}, expires [^)]+\\), and it is good`,
    ),
    'says it is enrolled',
  );
  t.match(enrolled, /revoke it first \(3 in this menu\)/, 'says what to do instead');
  t.notMatch(enrolled, /and replace it\?|enrollment token|\[yes\/no\]/, 'asks nothing that cannot work');
  m.type('4');
  await m.waitFor(/certificate serial \(hex; yours is [0-9a-f]+\): $/);
  m.type('xyz');
  t.ok(await m.waitFor(/a certificate serial is hex digits[\s\S]*: $/), 'a malformed serial re-prompts');
  m.type(bob.serialHex);
  t.ok(await m.waitFor(new RegExp(`${bob.serialHex}: good`)), "bob's certificate is good");

  await m.waitFor(/choose \[0-7\]: $/);
  m.type('2');
  await m.waitFor(/client name or certificate file: $/);
  m.type('nobody');
  t.ok(
    await m.waitFor(/no enrolled client named nobody; try another name or a file[\s\S]*: $/),
    'unknown name re-prompts',
  );
  // A FIFO is not read (it would wait for a writer forever): the question comes back.
  const fifo = join(tempDir(t), 'pipe.pem');
  execFileSync('mkfifo', [fifo]);
  m.type(fifo);
  t.ok(
    await m.waitFor(
      /is a FIFO \(named pipe\), not a regular file; try another file or a client name[\s\S]*: $/,
    ),
    'a FIFO re-prompts',
  );
  m.type(join(dataDir, 'root_ca.pem'));
  t.ok(
    await m.waitFor(/wrong_usage: a CA certificate is not an end-entity credential/),
    'a file: the root is no client credential',
  );
  await m.waitFor(/choose \[0-7\]: $/);
  m.type('2');
  await m.waitFor(/client name or certificate file: $/);
  m.type(join(bob.home, 'cert.pem'));
  t.ok(
    await m.waitFor(/ {2}valid: [\s\S]*subject +CN=bob/),
    "a file: bob's certificate checks out against the pinned root",
  );
  await m.waitFor(/choose \[0-7\]: $/);
  m.type('2');
  await m.waitFor(/client name or certificate file: $/);
  m.type('bob');
  t.ok(
    await m.waitFor(new RegExp(`valid: [\\s\\S]*subject +CN=bob[\\s\\S]*KDC status +${bob.serialHex}: good`)),
    'bob verified',
  );

  await m.waitFor(/choose \[0-7\]: $/);
  m.type('5');
  t.ok(
    await m.waitFor(
      /root CA \(pinned at enrollment\)[\s\S]*signature +valid \(signed by the root CA\)[\s\S]*revoked +none/,
    ),
    'CA and CRL',
  );

  // 7) renew my certificate: a new key pair, the old certificate superseded
  await m.waitFor(/choose \[0-7\]: $/);
  m.type('7');
  await m.waitFor(/with a new key pair\? \[yes\/no\]: $/);
  m.type('yes');
  const renewed = await m.waitFor(
    /renewed alice: serial [0-9a-f]+[^\n]*\n {2}replaces [0-9a-f]+ \(now superseded/,
  );
  const renewedSerial = /renewed alice: serial ([0-9a-f]+)/.exec(renewed)![1]!;
  t.not(renewedSerial, alice.serialHex, 'a new certificate');
  t.match(renewed, new RegExp(`replaces ${alice.serialHex}`), 'it replaces the enrolled one');

  // 3) revoke my certificate: a non-answer to the confirmation re-prompts
  await m.waitFor(/choose \[0-7\]: $/);
  m.type('3');
  await m.waitFor(/reason \[1-9\]: $/);
  m.type('2');
  await m.waitFor(/\[yes\/no\]: $/);
  m.type('maybe');
  await m.waitFor(/please answer yes or no\n.*\[yes\/no\]: $/);
  m.type('yes');
  t.ok(
    await m.waitFor(new RegExp(`revoked ${renewedSerial} \\(keyCompromise\\)`)),
    'own certificate revoked',
  );
  t.ok(await m.waitFor(/\[notice\] the KDC ended the session/), 'the session end is announced');

  // Anything needing a session now fails with the certificate's code, and the menu carries on.
  await m.waitFor(/choose \[0-7\]: $/);
  m.type('5');
  t.ok(
    await m.waitFor(new RegExp(`${renewedSerial}  \\d{4}-[^\\n]+keyCompromise`)),
    'the CRL lists it (no session needed)',
  );
  t.ok(
    await m.waitFor(
      /delta CRL \S+\/delta-crl\.pem\n +number +\d+ \(completes CRL \d+\)[\s\S]*signature +valid/,
    ),
    'and the delta CRL is shown, signed by the root',
  );
  await m.waitFor(/choose \[0-7\]: $/);
  m.type('4');
  await m.waitFor(/: $/);
  m.type(alice.serialHex);
  t.ok(await m.waitFor(/error \[cert_revoked\][\s\S]*choose \[0-7\]: $/), 'refused, not crashed');
  // Enroll now that the certificate is revoked: offered (a new token re-enrolls the name).
  m.type('1');
  t.ok(
    await m.waitFor(
      /certificate [0-9a-f]+ is revoked: enroll again with a new token\nenrollment token \(from kds admin token\): $/,
    ),
    'a revoked certificate can be replaced',
  );
  m.type('0');
  await m.waitFor(/\(cancelled\)[\s\S]*choose \[0-7\]: $/);
  m.type('0');
  await m.waitFor(/choose \[0-2\]: $/);
  m.type('0');
  t.equal(await m.exited(), 0, '0 exits');
  t.match(m.output(), /bye\n$/);
});
