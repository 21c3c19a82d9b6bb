// server/events/request-events.ts: the event a served request stands for. An enrollment's cert.issued
// names the certificate the CA just signed (name, serial, notAfter) read from the reply's PEM, and a
// reply that holds no certificate describes nothing rather than throw in the connection's callback.
import t from 'tap';
import { pooledKeyPair } from '../../helpers/template.js';
import { parseCertificate } from '../../../shared/pki/x509.js';
import { describeRequest } from '../../../server/events/request-events.js';
import { issue, makeCa } from '../../shared/pki/pki-fixtures.js';

const ca = await makeCa('kds events root');
// The run's pooled leaf key (slot 17, test/helpers/template.ts): RSA keygen is slow.
const keys = await pooledKeyPair(17);

t.test('enroll: cert.issued names the issued certificate', async (t) => {
  for (const [name, extra] of [
    ['alice', {}],
    ['zoe-2', { serialHex: '80' + '01'.repeat(19) }],
    ['late', { notAfter: Date.UTC(2055, 5, 1) }],
  ] as const) {
    const pem = await issue(ca, 'client', name, keys.publicKeyPem, extra);
    const cert = parseCertificate(pem);
    const event = describeRequest('enroll', '', { token: 'x', csr: 'y' }, { cert: pem, ca: ca.certPem });
    t.same(
      event,
      {
        type: 'cert.issued',
        name,
        serial: cert.serialHex,
        role: 'client',
        notAfter: cert.notAfter,
        renewed: false,
      },
      name,
    );
  }
});

t.test('enroll: a reply without a certificate describes nothing, and does not throw', async (t) => {
  for (const cert of [undefined, '', 'not a certificate', ca.certPem.slice(0, 200), 42]) {
    t.equal(describeRequest('enroll', '', {}, { cert, ca: ca.certPem }), undefined, String(cert));
  }
});

t.test('the other request types read their fields from the body and the reply', async (t) => {
  t.same(describeRequest('key.create', 'alice', {}, { serial: 's1', peer: 'bob', key: 'SECRET' }), {
    type: 'key.created',
    serial: 's1',
    owner: 'alice',
    peer: 'bob',
    mode: 'kdc',
  });
  t.equal(describeRequest('ping', 'alice', {}, {}), undefined, 'a request that decides nothing');
});
