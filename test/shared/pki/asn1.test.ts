// shared/pki/asn1.ts, pem.ts, serial.ts: the DER reader refuses non-DER, writer and reader agree
// (fast-check properties), PEM armor is strict, serials are canonical.
import t from 'tap';
import fc from 'fast-check';
import {
  derLength,
  derOid,
  derTime,
  derTlv,
  derUnsignedInteger,
  readBigInt,
  readHeader,
  readNamedBits,
  readOid,
  readOne,
  readTime,
  readTlv,
  sequenceOf,
  TAG,
} from '../../../shared/pki/asn1.js';
import { derToPem, pemToDer } from '../../../shared/pki/pem.js';
import { newSerialHex, normalizeSerialHex, serialHexFromBytes } from '../../../shared/pki/serial.js';
import { formatIp } from '../../../shared/pki/extensions.js';

const hex = (h: string): Buffer => Buffer.from(h.replace(/\s/g, ''), 'hex');

t.test('DER lengths: short and minimal long form', async (t) => {
  t.same(derLength(0), hex('00'));
  t.same(derLength(127), hex('7f'));
  t.same(derLength(128), hex('8180'));
  t.same(derLength(256), hex('820100'));
  t.same(derLength(4_400_000), hex('83 43 23 80'));
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffff }), (n) => {
      const tlv = readHeader(Buffer.concat([Buffer.from([0x04]), derLength(n), Buffer.alloc(n)]), 0);
      return tlv.end - tlv.start === n;
    }),
    { numRuns: 50 },
  );
});

t.test('the reader refuses BER and broken encodings', async (t) => {
  const bad: [string, string, RegExp][] = [
    ['indefinite length', '30 80 00 00', /indefinite length/],
    ['long form for a short length', '04 81 01 00', /non-minimal length/],
    ['leading zero length octet', '04 82 00 81' + '00'.repeat(129), /non-minimal length/],
    ['length past the end', '04 05 00', /truncated content/],
    ['header cut', '04', /truncated header/],
    ['high tag number', '1f 81 00 00', /high tag number/],
    ['5 length octets', '04 85 01 00 00 00 00', /length too large/],
  ];
  for (const [what, bytes, message] of bad) {
    t.throws(() => readTlv(hex(bytes)), { code: 'malformed', message }, what);
  }
  t.throws(() => readOne(hex('0500 00')), { code: 'malformed', message: /trailing bytes/ });
  t.throws(() => readBigInt(readOne(hex('02 02 00 7f'))), { message: /non-minimal INTEGER/ });
  t.throws(() => readBigInt(readOne(hex('02 01 ff'))), { message: /negative INTEGER/ });
  t.throws(() => readBigInt(readOne(hex('02 00'))), { message: /empty INTEGER/ });
  t.throws(() => readOid(readOne(hex('06 02 80 01'))), { message: /non-minimal OID/ });
  t.throws(() => readOid(readOne(hex('06 01 81'))), { message: /truncated OID/ });
  t.throws(() => sequenceOf(readOne(hex('31 00'))), { message: /expected tag 0x30/ });
});

t.test('INTEGER and OID writers round trip through the reader', async (t) => {
  t.same(derUnsignedInteger(0), hex('02 01 00'));
  t.same(derUnsignedInteger(127), hex('02 01 7f'));
  t.same(derUnsignedInteger(128), hex('02 02 00 80'), 'a set top bit gets a 0x00');
  t.same(derUnsignedInteger(hex('00 00 05')), hex('02 01 05'), 'leading zeros dropped');
  t.same(derOid('1.2.840.113549.1.1.11'), hex('06 09 2a 86 48 86 f7 0d 01 01 0b'));
  t.same(derOid('2.5.29.37.0'), hex('06 04 55 1d 25 00'));
  fc.assert(
    fc.property(
      fc.bigInt({ min: 0n, max: (1n << 200n) - 1n }),
      (n) => readBigInt(readOne(derUnsignedInteger(n))) === n,
    ),
  );
  fc.assert(
    fc.property(
      fc.constantFrom(0, 1, 2),
      fc.integer({ min: 0, max: 39 }),
      fc.array(fc.integer({ min: 0, max: 2 ** 40 }), { maxLength: 8 }),
      (a, b, rest) => {
        const oid = [a, b, ...rest].join('.');
        return readOid(readOne(derOid(oid))) === oid;
      },
    ),
  );
  t.throws(() => derOid('3.1'), RangeError);
  t.throws(() => derOid('1.40'), RangeError);
});

t.test('times: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5)', async (t) => {
  t.same(
    derTime(Date.UTC(2049, 11, 31, 23, 59, 59)),
    Buffer.concat([hex('17 0d'), Buffer.from('491231235959Z')]),
  );
  t.same(derTime(Date.UTC(2050, 0, 1)), Buffer.concat([hex('18 0f'), Buffer.from('20500101000000Z')]));
  t.same(derTime(Date.UTC(1950, 0, 1)), Buffer.concat([hex('17 0d'), Buffer.from('500101000000Z')]));
  t.same(derTime(Date.UTC(1949, 11, 31)), Buffer.concat([hex('18 0f'), Buffer.from('19491231000000Z')]));
  fc.assert(
    fc.property(fc.integer({ min: Date.UTC(1, 0, 1), max: Date.UTC(9999, 11, 31, 23, 59, 59) }), (ms) => {
      return readTime(readOne(derTime(ms))) === Math.floor(ms / 1000) * 1000;
    }),
  );
  const badTimes = [
    '491231235959',
    '4912312359Z',
    '491231235960Z',
    '490230000000Z',
    '491231235959+0100',
    '4912312359.5Z',
  ];
  for (const s of badTimes) {
    t.throws(() => readTime(readOne(derTlv(TAG.UTC_TIME, Buffer.from(s)))), { code: 'malformed' }, s);
  }
  t.throws(() => readTime(readOne(derTlv(TAG.GENERALIZED_TIME, Buffer.from('20500101000000.5Z')))), {
    code: 'malformed',
  });
});

t.test('named bits and IP formatting', async (t) => {
  t.same(readNamedBits(readOne(hex('03 02 01 06'))), [5, 6], 'keyCertSign + cRLSign');
  t.same(readNamedBits(readOne(hex('03 02 07 80'))), [0]);
  t.same(readNamedBits(readOne(hex('03 03 07 80 80'))), [0, 8]);
  t.throws(() => readNamedBits(readOne(hex('03 01 01'))), { code: 'malformed' });
  t.equal(formatIp(hex('7f000001')), '127.0.0.1');
  t.equal(formatIp(hex('00000000000000000000000000000001')), '::1');
  t.equal(formatIp(hex('20010db8000000000001000000000001')), '2001:db8::1:0:0:1');
  t.equal(
    formatIp(hex('20010db8000100000001000100010001')),
    '2001:db8:1:0:1:1:1:1',
    'a single 0 group is not compressed',
  );
});

t.test('PEM: strict armor, round trip', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), (bytes) => {
      const der = Buffer.from(bytes);
      return pemToDer(derToPem(der, 'X509 CRL'), 'X509 CRL').equals(der);
    }),
  );
  const pem = derToPem(Buffer.from('hello world!'), 'CERTIFICATE');
  t.equal(pem, '-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQh\n-----END CERTIFICATE-----\n');
  t.same(
    pemToDer(`explanatory text\r\n${pem.replace(/\n/g, '\r\n')}trailer`, 'CERTIFICATE'),
    Buffer.from('hello world!'),
  );
  t.same(pemToDer(derToPem(Buffer.from('hi'), 'X'), 'X'), Buffer.from('hi'), 'padding ==');
  const bad: [string, string][] = [
    ['invalid character', '-----BEGIN X-----\naGVsbG8*d29ybGQh\n-----END X-----'],
    ['length not a multiple of 4', '-----BEGIN X-----\naGVsbG8gd29ybGQ\n-----END X-----'],
    ['padding in the middle', '-----BEGIN X-----\naGk=aGk=\n-----END X-----'],
    ['empty body', '-----BEGIN X-----\n\n-----END X-----'],
    ['END label differs', '-----BEGIN X-----\naGk=\n-----END Y-----'],
    ['non-ASCII', '-----BEGIN X-----\naGk\u00e9\n-----END X-----'],
  ];
  for (const [what, text] of bad) t.throws(() => pemToDer(text, 'X'), { code: 'malformed_pem' }, what);
  t.throws(() => pemToDer(pem, ['X509 CRL', 'Y']), {
    code: 'malformed_pem',
    message: 'expected X509 CRL or Y PEM, got CERTIFICATE',
  });
});

t.test('serials: fresh ones are positive and canonical; input is normalized', async (t) => {
  const odd: string[] = [];
  for (let i = 0; i < 500; i++) {
    const s = newSerialHex();
    // 16 octets, first octet 0x01..0x7f: positive, no leading zero octet, 32 hex digits.
    if (!/^(?:[1-7][0-9a-f]|0[1-9a-f])[0-9a-f]{30}$/.test(s) || normalizeSerialHex(s) !== s) odd.push(s);
  }
  t.same(odd, [], 'every fresh serial is canonical');
  t.equal(normalizeSerialHex('00:AB:cd'), 'abcd');
  t.equal(normalizeSerialHex('0x1'), '01');
  t.equal(normalizeSerialHex(' 0a 0b '), '0a0b');
  t.equal(serialHexFromBytes(hex('00 00 80')), '80');
  t.equal(serialHexFromBytes(hex('0a')), '0a');
  for (const bad of ['', '00', 'xyz', '12-34', 'ff'.repeat(21)]) {
    t.throws(() => normalizeSerialHex(bad), { code: 'bad_request' }, JSON.stringify(bad));
  }
});
