// The defence table (shared/defences.ts): the wording the client CLI prints and Mallory's summary uses.
import t from 'tap';
import { AuthError, KdsError, ProtocolError } from '../../shared/errors.js';
import {
  codesOf,
  defenceForCode,
  defenceForError,
  describeDefence,
  inHandshakePhase,
  DEFENCES,
  WIRE,
} from '../../shared/defences.js';

t.test(
  'a bad server signature in the handshake: the line the client prints (docs/attacks.md substitute-dh)',
  async (t) => {
    const err = inHandshakePhase(new AuthError('bad_signature', 'signature verification failed')) as KdsError;
    t.equal(
      describeDefence(err),
      'handshake failed: server signature over transcript invalid (possible MITM)',
    );
    t.equal(defenceForError(err)?.defence, 'transcript signature');
  },
);

t.test('the wording depends on the phase and on who saw it', async (t) => {
  t.equal(
    defenceForCode('bad_signature', { phase: 'handshake', remote: true })?.explanation,
    'the KDC could not verify our signature over the transcript',
  );
  t.match(defenceForCode('bad_signature')?.explanation, /key-exchange transcript/);
  t.match(defenceForCode('record_auth', WIRE)?.explanation, /^the KDC received a record/);
  t.match(defenceForCode('record_auth')?.explanation, /^a record failed authentication/);
  t.equal(defenceForCode('record_auth')?.defence, 'record authentication');
});

t.test('revocation is not called a MITM; unrelated codes have no defence', async (t) => {
  const revoked = new AuthError('cert_revoked', 'certificate revoked', { remote: true });
  t.equal(describeDefence(revoked), 'the certificate is revoked');
  t.equal(defenceForError(revoked)?.defence, 'revocation');
  t.equal(defenceForCode('token_invalid'), undefined);
  t.equal(defenceForCode('no_such_code'), undefined);
  t.equal(defenceForCode('constructor'), undefined, 'no prototype keys');
});

t.test('insecure_refused is a defence on the wire, a configuration refusal locally', async (t) => {
  t.equal(defenceForCode('insecure_refused'), undefined);
  t.equal(defenceForCode('insecure_refused', WIRE)?.defence, 'downgrade protection');
  t.equal(defenceForCode('insecure_refused', { phase: 'handshake' })?.defence, 'downgrade protection');
});

t.test('codesOf lists the codes of a defence; every code maps to a named defence', async (t) => {
  t.ok(codesOf('record authentication').includes('record_auth'));
  t.ok(codesOf('certificate chain').includes('cert_unknown_issuer'));
  for (const name of Object.keys(DEFENCES) as (keyof typeof DEFENCES)[]) {
    for (const code of codesOf(name))
      t.equal(defenceForCode(code, WIRE)?.defence, name, `${code} -> ${name}`);
  }
});

t.test('inHandshakePhase: same class, code and message; a new object; others untouched', async (t) => {
  const original = new ProtocolError('schema', 'bad shape', { field: 'x' });
  const marked = inHandshakePhase(original) as KdsError;
  t.not(marked, original);
  t.ok(marked instanceof ProtocolError);
  t.equal(marked.code, 'schema');
  t.equal(marked.message, 'bad shape');
  t.same(marked.details, { field: 'x', phase: 'handshake' });
  t.same(original.details, { field: 'x' }, 'the original is not mutated');
  t.equal(inHandshakePhase(marked), marked, 'idempotent');
  const plain = new Error('boom');
  t.equal(inHandshakePhase(plain), plain);
});
