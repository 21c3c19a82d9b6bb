import t from 'tap';
import {
  KdsError,
  AuthError,
  isErrorCode,
  exitCodeFor,
  closeCodeFor,
  toKdsError,
  ensureBytes,
  EXIT,
} from '../../shared/errors.js';

t.test('codes map to exit and close codes', async (t) => {
  const e = new AuthError('bad_signature', 'signature verification failed');
  t.equal(e.code, 'bad_signature');
  t.equal(e.name, 'AuthError');
  t.ok(e instanceof KdsError);
  t.equal(e.exitCode, EXIT.auth);
  t.equal(e.closeCode, 4001);
  t.equal(exitCodeFor('cert_revoked'), EXIT.revoked);
  t.equal(closeCodeFor('frame_too_large'), 1009);
  t.same(e.toJSON(), { code: 'bad_signature', message: 'signature verification failed' });
});

t.test('isErrorCode only accepts known codes', async (t) => {
  t.ok(isErrorCode('malformed'));
  t.notOk(isErrorCode('toString'));
  t.notOk(isErrorCode('nope'));
  t.notOk(isErrorCode(3));
});

t.test('toKdsError hides internals', async (t) => {
  const e = toKdsError(new Error('secret path /x/y'));
  t.equal(e.code, 'internal');
  t.equal(e.message, 'internal error');
});

t.test('ensureBytes names the bad value', async (t) => {
  t.throws(() => ensureBytes('DH public key', new Uint8Array(31), 32), {
    code: 'malformed',
    message: 'expected DH public key of 32 bytes, got 31',
  });
  t.throws(() => ensureBytes('nonce', 'abc'), { message: 'expected nonce as bytes, got string' });
  t.equal(ensureBytes('x', new Uint8Array(2)).length, 2);
});
