import t from 'tap';
import {
  KdsError,
  AuthError,
  EnvironmentError,
  InputError,
  InternalError,
  PolicyError,
  ProtocolError,
  StateError,
  ERROR_CODES,
  errorFor,
  isErrorCode,
  exitCodeFor,
  closeCodeFor,
  toKdsError,
  EXIT,
  CLOSE,
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
  t.ok(e instanceof InternalError);
  t.equal(e.message, 'internal error');
});

t.test('each code has exactly one class, whichever way the error is made', async (t) => {
  const classes = [
    InputError,
    PolicyError,
    AuthError,
    ProtocolError,
    StateError,
    EnvironmentError,
    InternalError,
  ];
  for (const code of ERROR_CODES) {
    const e = errorFor(code, 'm');
    t.equal(e.code, code);
    t.equal(classes.filter((C) => e instanceof C).length, 1, `${code} is an instance of exactly one class`);
    t.equal(e.exitCode, exitCodeFor(code), `${code} keeps its exit code`);
  }
  // The codes that used to be thrown under several classes now have one (instanceof tells the truth).
  t.ok(errorFor('bad_passphrase', 'm') instanceof AuthError);
  t.ok(errorFor('unavailable', 'm') instanceof EnvironmentError);
  t.ok(errorFor('forbidden', 'm') instanceof PolicyError);
  t.ok(errorFor('session_closed', 'm') instanceof StateError);
  t.ok(errorFor('internal', 'm') instanceof InternalError);
  t.ok(errorFor('bad_request', 'm') instanceof InputError);
  t.ok(errorFor('rate_limited', 'm') instanceof PolicyError);
  t.ok(errorFor('timeout', 'm') instanceof EnvironmentError);
  t.equal(errorFor('cert_revoked', 'm', { serialHex: '01' }).closeCode, CLOSE.revoked);
  t.same(errorFor('not_found', 'm', { serialHex: '01' }).toJSON(), {
    code: 'not_found',
    message: 'm',
    details: { serialHex: '01' },
  });
});

t.test('a class refuses codes that are not its own (checked by the compiler)', async (t) => {
  // @ts-expect-error bad_passphrase is an AuthError code
  t.ok(new EnvironmentError('bad_passphrase', 'm') instanceof KdsError);
  // @ts-expect-error unavailable is an EnvironmentError code
  t.ok(new StateError('unavailable', 'm') instanceof KdsError);
  // @ts-expect-error KdsError is abstract: errors are made as their code's class
  t.ok(new KdsError('internal', 'm') instanceof Error);
});
