// The MITM lab matrix, insecure column (docs/attacks.md): every attack against `--insecure-dh` clients and a
// KDC that allows them (KDS_ALLOW_INSECURE=1), real processes on loopback (test/e2e/mitm-helpers.ts).
// The attacks that should succeed do (substitute-dh and impersonate-server steal the very key the
// victim got; impersonate-client acts as the victim; revoked-cert gets in), the others fail with the
// defence that does not depend on the handshake (records, limits, signed prekeys, revocation).
// Plus the downgrades a secure client meets on a KDC that does allow insecure sessions: it refuses.
import t from 'tap';
import { ATTACKS, ControlledMallory, runCell, startLab } from './mitm-helpers.js';

t.setTimeout(480_000);

const lab = await startLab(t, 'insecure');
const mallory = await ControlledMallory.start(t, lab);

t.test('the insecure KDC warns loudly on start', async (t) => {
  t.match(
    lab.server.stderr(),
    /WARNING INSECURE MODE \(--insecure-dh\): this KDC ACCEPTS UNAUTHENTICATED SESSIONS/,
  );
});

t.test('the insecure column expects the naive design to fall', async (t) => {
  t.same(
    ATTACKS.filter((a) => a.insecure.outcome === 'succeeded').map((a) => a.name),
    [
      'substitute-dh',
      'impersonate-server',
      'impersonate-client',
      'revoked-cert',
      'ticket-replay',
      'revoked-ticket',
      'resume-downgrade',
    ],
  );
});

for (const attack of ATTACKS) {
  t.test(`${attack.name} x insecure`, (t) => runCell(t, lab, mallory, attack));
}

t.test('downgrade of a SECURE client on a KDC that allows insecure sessions', (t) => {
  const downgrade = ATTACKS.find((a) => a.name === 'downgrade')!;
  return runCell(t, lab, mallory, downgrade, { clientInsecure: false, label: 'secure-client' });
});

t.test('resume-downgrade of a SECURE (resuming) client on a KDC that allows insecure sessions', (t) => {
  const attack = ATTACKS.find((a) => a.name === 'resume-downgrade')!;
  // The KDC answers the stripped hello without the psk; the victim's keys hash it: bad_mac.
  return runCell(t, lab, mallory, attack, {
    clientInsecure: false,
    label: 'secure-client',
    expect: {
      outcome: 'failed',
      defence: 'key confirmation',
      why: "the victim's Finished MAC check fails",
    },
  });
});
