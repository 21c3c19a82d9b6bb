// shared/pki/names.ts: the identity name syntax and the reserved names.
import t from 'tap';
import fc from 'fast-check';
import { assertValidName, isReservedName, isValidName, NAME_PATTERN } from '../../../shared/pki/names.js';

t.test('valid and invalid names', async (t) => {
  for (const good of ['alice', 'a', '0', 'bob.example', 'carol_2', 'x-y', 'a'.repeat(64), 'admin', 'kdc']) {
    t.equal(assertValidName(good), good, good);
  }
  const bad: unknown[] = [
    '',
    'Alice',
    '-a',
    '.a',
    '_a',
    'a'.repeat(65),
    'a b',
    'a/b',
    'ä',
    'a\n',
    'a\u0000',
    42,
    null,
    undefined,
  ];
  for (const b of bad) {
    t.notOk(isValidName(b));
    t.throws(() => assertValidName(b), { code: 'bad_name', name: 'PolicyError' }, JSON.stringify(b));
    // Said in words for people, never as the regular expression.
    t.throws(() => assertValidName(b), { message: /lowercase letters a-z, digits/ });
    t.throws(() => assertValidName(b), { message: /^(?!.*\[a-z0-9\])/ });
  }
  t.throws(() => assertValidName('Bad Name', 'client name'), {
    message: /^invalid client name "Bad Name": a name is 1 to 64 characters/,
  });
  t.throws(
    () => assertValidName('x'.repeat(1000)),
    { message: /^invalid name "x{80}": a name is/ },
    'long input clipped',
  );
});

t.test('property: a name is valid iff it matches the documented pattern', async (t) => {
  fc.assert(
    fc.property(
      fc.string({ maxLength: 70, unit: fc.constantFrom(...'abAZ09._-/ \u00e9'.split('')) }),
      (s) => {
        return isValidName(s) === /^[a-z0-9][a-z0-9._-]{0,63}$/.test(s);
      },
    ),
  );
  t.equal(NAME_PATTERN.source, '^[a-z0-9][a-z0-9._-]{0,63}$');
});

t.test('reserved names', async (t) => {
  t.ok(isReservedName('admin'));
  t.ok(isReservedName('kdc'));
  t.notOk(isReservedName('alice'));
  t.notOk(isReservedName('Admin'), 'not a valid name at all, and not reserved');
});
