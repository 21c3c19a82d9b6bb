// When a session asks for a new resumption ticket (client/ticket-renewal.ts): a full session always, a
// resumed one only when its ticket is due and a new one could outlive it.
import t from 'tap';
import { TICKET_RENEW_BEFORE_MS, wantsNewTicket } from '../../client/ticket-renewal.js';

const now = 1_800_000_000_000;
const HOUR = 3600_000;
const notAfter = now + 30 * 24 * HOUR;

t.test('a full session always asks: it has no usable ticket', async (t) => {
  t.equal(wantsNewTicket('auth', undefined, notAfter, now), true);
  t.equal(wantsNewTicket('auth', { expiresAt: now + 11 * HOUR }, notAfter, now), true);
});

t.test('a resumed session keeps a ticket with more than the renewal margin left', async (t) => {
  t.equal(wantsNewTicket('resume', { expiresAt: now + 12 * HOUR }, notAfter, now), false);
  t.equal(wantsNewTicket('resume', { expiresAt: now + TICKET_RENEW_BEFORE_MS }, notAfter, now), false);
});

t.test('a resumed session replaces a ticket that is due', async (t) => {
  t.equal(wantsNewTicket('resume', { expiresAt: now + TICKET_RENEW_BEFORE_MS - 1 }, notAfter, now), true);
  t.equal(wantsNewTicket('resume', { expiresAt: now + 60_000 }, notAfter, now), true);
});

t.test('a resumed session with a ticket of unknown expiry asks (the safe side)', async (t) => {
  t.equal(wantsNewTicket('resume', undefined, notAfter, now), true);
  t.equal(wantsNewTicket('resume', {}, notAfter, now), true);
});

t.test('a ticket that already lives until the certificate expires is never replaced', async (t) => {
  // No ticket outlives its certificate (server/kdc/ticket-keys.ts), so a new one would not live longer.
  const certEnd = now + HOUR;
  t.equal(wantsNewTicket('resume', { expiresAt: certEnd }, certEnd, now), false);
  t.equal(wantsNewTicket('resume', { expiresAt: certEnd - 1 }, certEnd, now), true);
});

t.test('sessions without a resumption secret never ask', async (t) => {
  for (const mode of ['enroll', 'insecure'])
    t.equal(wantsNewTicket(mode, { expiresAt: now + 60_000 }, notAfter, now), false, mode);
});
