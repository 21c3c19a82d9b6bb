// One renewal in flight per session (server/kdc-handlers/cert-renew.ts): each costs the CA an RSA
// signature, so a second `cert.renew` on the same session while the first is signed is refused with
// `rate_limited`, and allowed again once the first answered. Here the CA's renewal is held open by the
// test, so "in flight" does not depend on how fast the machine signs.
import t from 'tap';
import { certRenew } from '../../../server/kdc-handlers/cert-renew.js';
import type { HandlerContext } from '../../../server/kdc/dispatch.js';

function contextWith(renewClient: () => Promise<unknown>, session: object, name = 'alice'): HandlerContext {
  return {
    session,
    identity: { name, serialHex: '0a', role: 'client', expiresAt: 0 },
    kdc: { ca: { renewClient } },
  } as unknown as HandlerContext;
}

const ISSUED = { cert: { pem: 'PEM', serialHex: '0b', notAfter: 5 } };

t.test('a second renewal on the session while the first is signed: rate_limited', async (t) => {
  const session = {};
  let release!: () => void;
  let calls = 0;
  const renewClient = (): Promise<unknown> => {
    calls += 1;
    return new Promise((resolve) => (release = () => resolve(ISSUED)));
  };
  const first = certRenew.handle(contextWith(renewClient, session), { csr: 'CSR' });
  await t.rejects(
    certRenew.handle(contextWith(renewClient, session), { csr: 'CSR' }),
    { code: 'rate_limited' },
    'refused while the first is in flight',
  );
  t.equal(calls, 1, 'the refused one cost the CA nothing');

  // Another session of the same name is not held up by this one (the per-name rate is the CA's).
  const other = certRenew.handle(
    contextWith(async () => ISSUED, {}),
    { csr: 'CSR' },
  );
  t.same(await other, { cert: 'PEM', serial: '0b', notAfter: 5, supersedes: '0a' });

  release();
  t.same(await first, { cert: 'PEM', serial: '0b', notAfter: 5, supersedes: '0a' });
  const again = certRenew.handle(
    contextWith(async () => ISSUED, session),
    { csr: 'CSR' },
  );
  t.same(
    await again,
    { cert: 'PEM', serial: '0b', notAfter: 5, supersedes: '0a' },
    'free again once answered',
  );
});

t.test('a renewal that fails frees the session too', async (t) => {
  const session = {};
  await t.rejects(
    certRenew.handle(
      contextWith(async () => Promise.reject(new Error('ca down')), session),
      { csr: 'CSR' },
    ),
    /ca down/,
  );
  t.same(
    await certRenew.handle(
      contextWith(async () => ISSUED, session),
      { csr: 'CSR' },
    ),
    {
      cert: 'PEM',
      serial: '0b',
      notAfter: 5,
      supersedes: '0a',
    },
  );
});
