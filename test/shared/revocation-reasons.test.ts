// shared/revocation-reasons.ts: RFC 5280 5.3.1 CRLReason names and codes.
import t from 'tap';
import {
  isRevocationReason,
  parseKeyReason,
  parseReason,
  reasonCode,
  reasonFromCode,
  REASON_CODES,
  REVOCATION_REASONS,
} from '../../shared/revocation-reasons.js';
import { reasonChoices } from '../../cli/options.js';

t.test('names <-> codes per RFC 5280 5.3.1', async (t) => {
  t.same(REASON_CODES, {
    unspecified: 0,
    keyCompromise: 1,
    cACompromise: 2,
    affiliationChanged: 3,
    superseded: 4,
    cessationOfOperation: 5,
    certificateHold: 6,
    removeFromCRL: 8,
    privilegeWithdrawn: 9,
    aACompromise: 10,
  });
  for (const [name, code] of Object.entries(REASON_CODES)) {
    t.equal(reasonFromCode(code), name);
    t.equal(reasonCode(name as keyof typeof REASON_CODES), code);
  }
  t.throws(() => reasonFromCode(7), { code: 'bad_reason' }, 'value 7 is not used');
  t.throws(() => reasonFromCode(11), { code: 'bad_reason' });
  t.throws(() => reasonFromCode(-1), { code: 'bad_reason' });
  t.throws(() => reasonCode('nope' as never), { code: 'bad_reason' });
});

t.test('parseReason: operator input', async (t) => {
  t.equal(parseReason('keyCompromise'), 'keyCompromise');
  t.equal(parseReason('KEYCOMPROMISE'), 'keyCompromise');
  t.equal(parseReason(' superseded '), 'superseded');
  t.equal(parseReason('1'), 'keyCompromise');
  t.equal(parseReason('10'), 'aACompromise');
  for (const bad of ['', 'compromised', '7', '8', 'removeFromCRL', '11', 'certificateRevoked', '01x']) {
    t.throws(() => parseReason(bad), { code: 'bad_reason' }, JSON.stringify(bad));
  }
  t.same([...REVOCATION_REASONS], [...reasonChoices], 'the CLI offers exactly the revocation reasons');
  t.equal(parseKeyReason('certificateRevoked'), 'certificateRevoked');
  t.equal(parseKeyReason('keyCompromise'), 'keyCompromise');
  t.throws(() => parseKeyReason('removeFromCRL'), { code: 'bad_reason' });
  // A key revocation is final and about this key: a hold, or another authority's compromise, is not.
  for (const r of ['certificateHold', 'cACompromise', 'aACompromise', '6'])
    t.throws(() => parseKeyReason(r), { code: 'bad_reason', message: /not a reason for revoking a key/ }, r);
});

t.test('isRevocationReason: what kds records for a certificate', async (t) => {
  for (const name of REVOCATION_REASONS) t.ok(isRevocationReason(name), name);
  // RFC 5280 5.3.1: removeFromCRL "is for use with delta CRLs", never the reason a certificate is revoked.
  for (const bad of ['removeFromCRL', 'keycompromise', '1', 'certificateRevoked', '', 1, undefined, null])
    t.notOk(isRevocationReason(bad), String(bad));
});
