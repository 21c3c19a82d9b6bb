// The automatic renewal of `kds client listen` (client/keys/listen.ts) on a clock that disagrees with the
// CA's, through listen's injectable clock: a clock 21 days fast reads every new 30-day certificate as
// past its 2/3 point. One renewal, then the next is spaced on the local clock (client/renew.ts
// nextRenewalAfter), and the skew, measured from the new certificate, is reported.
import t from 'tap';
import { listen, type ListenEvent } from '../../../client/keys/listen.js';
import { nextRenewalAfter, renewalTime, type RenewResult } from '../../../client/renew.js';
import type { OpenedKeyClient } from '../../../client/keys/open.js';
import { BACKDATE_MS } from '../../../shared/pki/clock-skew.js';

const DAY = 86_400_000;
const second = (ms: number): number => Math.floor(ms / 1000) * 1000;

/** A session of the certificate `cert` that stays open until closed. */
function fakeSession(cert: { serialHex: string; notBefore: number; notAfter: number }): OpenedKeyClient {
  const facts = {
    sessionId: '0'.repeat(32),
    identity: { name: 'alice', serialHex: cert.serialHex, role: 'client', expiresAt: cert.notAfter },
    clientCertificate: { subjectCN: 'alice', fingerprint256: '', ...cert },
  };
  return {
    client: { housekeeping: async () => undefined },
    session: { facts, server: 'ws://127.0.0.1:1/kds', closed: new Promise(() => undefined) },
    close: async () => undefined,
  } as unknown as OpenedKeyClient;
}

t.test('a clock 21 days fast: one renewal, the next spaced on the local clock, a warning', async (t) => {
  const skew = 21 * DAY;
  const now = (): number => Date.now() + skew;
  // The certificate in the home: 30 days, 10 of them gone by the CA's clock.
  let cert = {
    serialHex: 'aa01',
    notBefore: second(Date.now() - 10 * DAY),
    notAfter: second(Date.now() + 20 * DAY),
  };
  const renewals: number[] = [];
  const events: ListenEvent[] = [];
  const controller = new AbortController();
  await listen({
    name: 'alice',
    server: 'ws://127.0.0.1:1/kds',
    signal: controller.signal,
    now,
    open: async () => fakeSession(cert),
    renew: async () => {
      renewals.push(now());
      // What the CA signs: its own clock (the real one here), backdated.
      const caNow = Date.now();
      const previous = cert.serialHex;
      cert = {
        serialHex: `aa0${renewals.length + 1}`,
        notBefore: second(caNow - BACKDATE_MS),
        notAfter: second(caNow + 30 * DAY),
      };
      return {
        ...cert,
        name: 'alice',
        home: '',
        previousSerialHex: previous,
        installed: false,
      } as RenewResult;
    },
    onEvent: (e) => {
      events.push(e);
      // Stop at the second session, or after a third renewal (the loop this guards against).
      if ((e.event === 'connected' && e.serial !== 'aa01') || renewals.length >= 3) controller.abort();
    },
  });
  t.equal(renewals.length, 1, 'renewed once');
  const connected = events.filter((e) => e.event === 'connected');
  t.equal(connected.length, 2);
  const second2 = connected[1]!;
  const renewedAt = renewals[0]!;
  // The new certificate, read on the fast clock, has 9 days left: the next renewal is in half of that.
  t.ok(
    Number(second2.renewAt) >= renewedAt + 4 * DAY,
    `next renewal ${((Number(second2.renewAt) - renewedAt) / DAY).toFixed(2)} days after this one`,
  );
  t.ok(Number(second2.renewAt) < second2.expiresAt!, 'before the certificate expires by the local clock');
  const warning = events.find((e) => e.event === 'clock.skew');
  t.ok(warning !== undefined, 'the skew is reported');
  if (warning?.event === 'clock.skew') {
    t.ok(Math.abs(warning.skewMs - skew) < 5_000, `measured ${warning.skewMs} ms`);
    t.equal(warning.serial, 'aa02');
  }
});

t.test(
  'nextRenewalAfter: a right clock keeps the 2/3 point; a fast one waits at least an hour',
  async (t) => {
    const caNow = Date.now();
    const cert = { notBefore: second(caNow - BACKDATE_MS), notAfter: second(caNow + 30 * DAY) };
    t.equal(nextRenewalAfter(cert, caNow), renewalTime(cert));
    // A clock ahead by a day or by 29.99 days: never sooner than an hour, never back to back.
    t.equal(nextRenewalAfter(cert, caNow + DAY), renewalTime(cert), 'a day fast: still the 2/3 point');
    t.ok(nextRenewalAfter(cert, caNow + 29.99 * DAY) >= caNow + 29.99 * DAY + 3_600_000, 'an hour at least');
  },
);
