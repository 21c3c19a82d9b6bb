// shared/protocol/messages.ts and the catalog: frame schemas, version and type dispatch, alerts,
// wire errors, the application type registry, and fast-check properties over every frame type:
// valid frames round-trip; random mutations either fail with a KdsError or decode to a valid frame.
import t from 'tap';
import fc from 'fast-check';
import { AuthError, KdsError, PolicyError, ProtocolError, StateError } from '../../../shared/errors.js';
import { appTypeNames, defineAppType, getAppType } from '../../../shared/protocol/catalog.js';
import { encodeValue } from '../../../shared/protocol/codec.js';
import { MAX_CERT_BYTES } from '../../../shared/protocol/limits.js';
import {
  decodeFrame,
  encodeAlert,
  encodeFrame,
  errorFromWire,
  FRAME_SCHEMAS,
  type ClientHello,
  type Frame,
} from '../../../shared/protocol/messages.js';
import { certRevoke, certStatus } from '../../../shared/protocol/messages-core.js';
import { s, validate } from '../../../shared/protocol/schema.js';

const bytes = (len: number) => fc.uint8Array({ minLength: len, maxLength: len }).map((u) => Buffer.from(u));
const bytesRange = (min: number, max: number) =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((u) => Buffer.from(u));
const group = fc.constantFrom('x25519', 'ffdhe2048', 'x448');
const name = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,20}$/);

const clientHello = fc.record({
  t: fc.constant('client_hello' as const),
  v: fc.constant(1),
  mode: fc.constantFrom('auth' as const, 'enroll' as const, 'insecure' as const),
  groups: fc.array(group, { minLength: 1, maxLength: 8 }),
  group,
  nonce: bytes(32),
  share: bytesRange(32, 256),
});
const serverHello = fc.oneof(
  fc.record({
    t: fc.constant('server_hello' as const),
    v: fc.constant(1),
    group,
    nonce: bytes(32),
    share: bytesRange(32, 256),
    cert: bytesRange(1, 1500),
    sig: bytesRange(1, 512),
    mac: bytes(32),
  }),
  fc.record({
    t: fc.constant('server_hello' as const),
    v: fc.constant(1),
    group,
    nonce: bytes(32),
    share: bytesRange(32, 256),
    mac: bytes(32),
  }),
);
const clientFinish = fc.oneof(
  fc.record({
    t: fc.constant('client_finish' as const),
    cert: bytesRange(1, 1500),
    sig: bytesRange(1, 512),
    mac: bytes(32),
  }),
  fc.record({ t: fc.constant('client_finish' as const), mac: bytes(32) }),
  fc.record({ t: fc.constant('client_finish' as const), name, mac: bytes(32) }),
);
const alert = fc.record({
  t: fc.constant('alert' as const),
  code: fc.constantFrom('bad_mac', 'schema', 'insecure_refused', 'some_future_code'),
  message: fc.string({ maxLength: 100 }),
});
const record = fc.record({ t: fc.constant('r' as const), c: bytesRange(0, 2000) });
const anyFrame: fc.Arbitrary<Frame> = fc.oneof(clientHello, serverHello, clientFinish, alert, record);

t.test('property: every valid frame round-trips through the codec', async (t) => {
  fc.assert(
    fc.property(anyFrame, (frame) => {
      const enc = encodeFrame(frame);
      const back = decodeFrame(enc);
      return JSON.stringify(back) === JSON.stringify(frame) && encodeFrame(back).equals(enc);
    }),
    { numRuns: 500 },
  );
  t.pass('500 random frames round-tripped byte for byte');
});

t.test('property: mutated frames fail with a KdsError or decode to a schema-valid frame', async (t) => {
  let rejected = 0;
  let decoded = 0;
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      value: fc.integer({ min: 0, max: 255 }),
    }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  );
  fc.assert(
    fc.property(anyFrame, fc.array(mutation, { minLength: 1, maxLength: 4 }), (frame, mutations) => {
      let b = encodeFrame(frame);
      for (const m of mutations) {
        const at = b.length === 0 ? 0 : m.at % b.length;
        if (m.kind === 'flip') b[at] = (b[at] ?? 0) ^ (1 << m.bit);
        else if (m.kind === 'set') b[at] = m.value;
        else if (m.kind === 'insert')
          b = Buffer.concat([b.subarray(0, at), Buffer.from([m.value]), b.subarray(at)]);
        else if (m.kind === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
        else b = b.subarray(0, at);
      }
      try {
        const f = decodeFrame(b);
        validate(FRAME_SCHEMAS[f.t], f, f.t); // what decodeFrame returns is schema-valid
        encodeFrame(f);
        decoded += 1;
        return true;
      } catch (err) {
        rejected += 1;
        return (
          err instanceof KdsError &&
          ['bad_frame', 'frame_too_large', 'unknown_type', 'schema', 'version_unsupported'].includes(err.code)
        );
      }
    }),
    { numRuns: 3000 },
  );
  t.ok(rejected > 0 && decoded > 0, `both outcomes occur (rejected ${rejected}, decoded ${decoded})`);
});

t.test('property: random bytes never escape as anything but a KdsError', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (u) => {
      try {
        decodeFrame(u);
        return true;
      } catch (err) {
        return err instanceof KdsError;
      }
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

t.test('dispatch on t, version before schema, field-naming schema errors', async (t) => {
  const hello: ClientHello = {
    t: 'client_hello',
    v: 1,
    mode: 'auth',
    groups: ['x25519'],
    group: 'x25519',
    nonce: Buffer.alloc(32),
    share: Buffer.alloc(32, 1),
  };
  t.same(decodeFrame(encodeFrame(hello)), hello);
  t.throws(() => decodeFrame(encodeValue({ ...hello, nonce: Buffer.alloc(31) })), {
    code: 'schema',
    message: 'client_hello.nonce: expected 32 bytes, got 31',
  });
  t.throws(() => decodeFrame(encodeValue({ t: 'hello' })), {
    code: 'unknown_type',
    message: 'unknown frame type "hello"',
  });
  t.throws(() => decodeFrame(encodeValue({ t: 7 })), { code: 'schema', message: 'frame.t: expected string' });
  t.throws(() => decodeFrame(encodeValue({ x: 1 })), { code: 'schema' });
  t.throws(() => decodeFrame(encodeValue({ t: 'client_hello', v: 2, something: 'else' })), {
    code: 'version_unsupported',
    message: 'protocol version 2 is not supported (this is 1)',
  });
  t.throws(() => decodeFrame(encodeValue({ t: 'server_hello', v: 0 })), { code: 'version_unsupported' });
  t.throws(() => decodeFrame(encodeValue({ ...hello, extra: true })), {
    code: 'schema',
    message: 'client_hello.extra: unknown field',
  });
  t.throws(() => decodeFrame(encodeValue({ ...hello, mode: 'none' })), {
    code: 'schema',
    message: /client_hello.mode: expected one of auth\|enroll\|insecure/,
  });
  t.throws(() => decodeFrame(encodeValue({ ...hello, groups: [] })), {
    code: 'schema',
    message: 'client_hello.groups: expected 1..8 elements, got 0',
  });
  t.throws(
    () =>
      decodeFrame(
        encodeValue({
          t: 'server_hello',
          v: 1,
          group: 'x25519',
          nonce: Buffer.alloc(32),
          share: Buffer.alloc(32),
          cert: Buffer.alloc(MAX_CERT_BYTES + 1),
          sig: Buffer.alloc(1),
          mac: Buffer.alloc(32),
        }),
      ),
    {
      code: 'schema',
      message: `server_hello.cert: expected 1..${MAX_CERT_BYTES} bytes, got ${MAX_CERT_BYTES + 1}`,
    },
  );
  t.throws(() => encodeFrame({ t: 'nope' } as never), { code: 'unknown_type' });
  t.throws(
    () => encodeFrame({ ...hello, nonce: Buffer.alloc(1) }),
    { code: 'schema' },
    'the encoder validates too',
  );
});

t.test('server_hello and client_finish: sig (when present) then mac are the last entries', async (t) => {
  const core = {
    t: 'server_hello',
    v: 1,
    group: 'x25519',
    nonce: Buffer.alloc(32),
    share: Buffer.alloc(32, 1),
  };
  const cert = Buffer.alloc(8, 2);
  const sig = Buffer.alloc(8, 3);
  const mac = Buffer.alloc(32, 4);
  t.ok(decodeFrame(encodeValue({ ...core, cert, sig, mac })), 'the documented order');
  t.ok(decodeFrame(encodeValue({ ...core, mac })), 'insecure: mac last');
  t.ok(
    decodeFrame(
      encodeValue({ share: core.share, t: core.t, cert, nonce: core.nonce, v: 1, group: 'x25519', sig, mac }),
    ),
    'the other fields in any order',
  );
  const sigThenMac = { code: 'schema', message: 'server_hello: sig and then mac must be the last entries' };
  t.throws(() => decodeFrame(encodeValue({ ...core, cert, mac, sig })), sigThenMac);
  t.throws(() => decodeFrame(encodeValue({ ...core, sig, cert, mac })), sigThenMac);
  t.throws(() => decodeFrame(encodeValue({ sig, mac, ...core, cert })), sigThenMac);
  t.throws(
    () =>
      decodeFrame(
        encodeValue({ t: 'server_hello', mac, v: 1, group: 'x25519', nonce: core.nonce, share: core.share }),
      ),
    {
      code: 'schema',
      message: 'server_hello: mac must be the last entry',
    },
  );
  t.ok(decodeFrame(encodeValue({ t: 'client_finish', cert, sig, mac })));
  t.ok(decodeFrame(encodeValue({ cert, t: 'client_finish', sig, mac })));
  t.ok(decodeFrame(encodeValue({ t: 'client_finish', name: 'mallory', mac })));
  t.throws(() => decodeFrame(encodeValue({ t: 'client_finish', cert, mac, sig })), {
    code: 'schema',
    message: 'client_finish: sig and then mac must be the last entries',
  });
  t.throws(() => decodeFrame(encodeValue({ mac, t: 'client_finish' })), {
    code: 'schema',
    message: 'client_finish: mac must be the last entry',
  });
  t.throws(() => decodeFrame(encodeValue({ t: 'client_finish', mac, name: 'mallory' })), {
    code: 'schema',
    message: 'client_finish: mac must be the last entry',
  });
});

t.test('alerts', async (t) => {
  t.same(decodeFrame(encodeAlert(new AuthError('bad_mac', 'MAC verification failed'))), {
    t: 'alert',
    code: 'bad_mac',
    message: 'MAC verification failed',
  });
  t.same(decodeFrame(encodeAlert(new Error('ENOENT /etc/secret'))), {
    t: 'alert',
    code: 'internal',
    message: 'internal error',
  });
  const long = decodeFrame(encodeAlert(new ProtocolError('schema', 'é'.repeat(400))));
  t.equal(
    long.t === 'alert' && Buffer.byteLength(long.message),
    512,
    'messages are clipped to 512 bytes on a character boundary',
  );
});

t.test('errorFromWire keeps the code and picks the class', async (t) => {
  const e1 = errorFromWire('cert_revoked', 'certificate revoked');
  t.ok(e1 instanceof AuthError);
  t.match(e1, { code: 'cert_revoked', message: 'certificate revoked', details: { remote: true } });
  t.ok(errorFromWire('schema', 'x') instanceof ProtocolError);
  t.ok(errorFromWire('bad_name', 'x') instanceof PolicyError);
  t.ok(errorFromWire('key_revoked', 'x') instanceof StateError);
  t.ok(errorFromWire('unknown_serial', 'x') instanceof StateError);
  t.equal(errorFromWire('io_error', 'x').code, 'io_error');
  const unknown = errorFromWire('future_thing', 'from a newer peer');
  t.equal(unknown.code, 'internal');
  t.equal(unknown.message, 'peer error future_thing: from a newer peer');
  t.equal(errorFromWire('toString', 'x').code, 'internal', 'prototype names are not codes');
});

t.test('application type registry', async (t) => {
  const names = appTypeNames();
  for (const core of [
    'admin.token',
    'cert.revoke',
    'cert.revoked',
    'cert.status',
    'enroll',
    'ping',
    'ready',
    'session.closing',
  ]) {
    t.ok(names.includes(core), `core type ${core} is registered`);
  }
  t.same(names, [...names].sort(), 'names are listed sorted');
  t.equal(getAppType('cert.status'), certStatus);
  t.equal(getAppType('nope'), undefined);
  t.ok(getAppType('ready')!.push && getAppType('ready')!.request === undefined);
  const m = s.map({ x: s.uint() });
  t.throws(() => defineAppType('Bad Name', { push: m }), { code: 'internal' });
  t.throws(() => defineAppType('ok', { push: m }), { code: 'internal' }, 'reserved envelope name');
  t.throws(() => defineAppType('ping', { push: m }), {
    code: 'internal',
    message: 'application type ping is defined twice',
  });
  t.throws(() => defineAppType('half.request', { request: m }), { code: 'internal' });
  t.throws(() => defineAppType('empty.type', {}), { code: 'internal' });
  const added = defineAppType('test.extension', { request: m, response: m });
  t.equal(getAppType('test.extension'), added, 'features can add types at import');
});

t.test('core bodies', async (t) => {
  const ok = (schema: Parameters<typeof validate>[0], v: unknown) =>
    t.doesNotThrow(() => validate(schema, v, 'b'));
  const no = (schema: Parameters<typeof validate>[0], v: unknown, message: string | RegExp) =>
    t.throws(() => validate(schema, v, 'b'), { code: 'schema', message });
  ok(certStatus.response, { status: 'good' });
  ok(certStatus.response, { status: 'revoked', reason: 'keyCompromise', revokedAt: 1 });
  no(
    certStatus.response,
    { status: 'revoked' },
    'b: reason and revokedAt are present exactly when status is revoked',
  );
  no(
    certStatus.response,
    { status: 'good', reason: 'keyCompromise', revokedAt: 1 },
    /exactly when status is revoked/,
  );
  no(
    certStatus.response,
    { status: 'revoked', reason: 'removeFromCRL', revokedAt: 1 },
    /b.reason: expected one of/,
  );
  no(certStatus.request, { serial: 'AB:CD' }, 'b.serial: expected string matching ^[0-9a-f]+$');
  ok(certRevoke.request, { reason: 'superseded' });
  ok(certRevoke.request, { name: 'alice', reason: 'keyCompromise' });
  no(
    certRevoke.request,
    { name: 'alice', serial: '01', reason: 'keyCompromise' },
    'b: give serial or name, not both',
  );
  no(certRevoke.request, { name: 'Alice', reason: 'keyCompromise' }, /b.name: expected string matching/);
  const ready = getAppType('ready')!;
  ok(ready.push!, { session: 'a'.repeat(32), mode: 'enroll', role: 'anonymous' });
  no(ready.push!, { session: 'A'.repeat(32), mode: 'enroll', role: 'anonymous' }, /b.session/);
  const enrollT = getAppType('enroll')!;
  ok(enrollT.request!, {
    token: 'abcdefghijklmnopqrstuvwxyz012345',
    csr: '-----BEGIN CERTIFICATE REQUEST-----\nMII...\n',
  });
  no(
    enrollT.request!,
    { token: 'short', csr: '-----BEGIN CERTIFICATE REQUEST-----\n' },
    /b.token: expected string of 16..256 bytes/,
  );
  no(
    enrollT.request!,
    { token: 'abcdefghijklmnopqrstuvwxyz012345', csr: 'garbage' },
    /b.csr: expected string matching/,
  );
  const tokenT = getAppType('admin.token')!;
  no(tokenT.request!, { name: 'bob', ttl: 8 * 24 * 3600 * 1000 }, /b.ttl: expected at most 604800000/);
});

t.test('key bodies: what a KDC may ask of a client, and the times it sends, are bounded', async (t) => {
  const no = (schema: Parameters<typeof validate>[0], v: unknown, what: string): void => {
    t.throws(() => validate(schema, v, 'b'), { code: 'schema' }, what);
  };
  const prekeys = getAppType('key.prekeys')!.response!;
  t.doesNotThrow(() => validate(prekeys, { stock: 0, wanted: 100 }, 'b'), 'a full stock asked for');
  // A client generates, signs and stores as many prekeys as `wanted` says: 2^32 once made it throw.
  no(prekeys, { stock: 0, wanted: 101 }, 'more than one upload holds');
  no(prekeys, { stock: 0, wanted: 2 ** 32 }, '2^32');
  no(getAppType('key.prekeys.low')!.push!, { stock: 0, wanted: 2 ** 32 }, 'in the low-stock push too');
  const verify = getAppType('key.verify')!.response!;
  const answer = { serial: 'a'.repeat(32), verdict: 'revoked', peerVerified: false };
  t.doesNotThrow(
    () => validate(verify, { ...answer, revokedAt: 8.64e15 }, 'b'),
    'the last time a Date holds',
  );
  no(verify, { ...answer, revokedAt: 8.64e15 + 1 }, 'a time no Date can hold (a listing could not show it)');
});
