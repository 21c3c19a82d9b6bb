// shared/pki/serial.ts: fresh serials are canonical (DER gives back the same digits), user input is
// normalized to the one form that enters signatures and transcripts, and bad input gets `bad_request`.
import t from 'tap';
import fc from 'fast-check';
import { newSerialHex, normalizeSerialHex, serialHexFromBytes } from '../../../shared/pki/serial.js';

t.test('a fresh serial: 16 bytes, positive, first byte non-zero, already canonical', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 500; i += 1) {
    const s = newSerialHex();
    t.ok(/^[0-9a-f]{32}$/.test(s), s);
    const first = Number.parseInt(s.slice(0, 2), 16);
    t.ok(first >= 0x01 && first <= 0x7f, `first byte ${s.slice(0, 2)} in 01..7f`);
    t.equal(normalizeSerialHex(s), s, 'canonical');
    seen.add(s);
  }
  t.equal(seen.size, 500, 'no repeats');
});

t.test('user input becomes the canonical form', async (t) => {
  const cases: [string, string][] = [
    ['04:B1:FF', '04b1ff'],
    ['0x00ff', 'ff'],
    [' 0a 0b ', '0a0b'],
    ['abc', '0abc'], // odd length: a leading zero DIGIT is added, never a zero octet kept
    ['000001', '01'],
    ['7F', '7f'],
    ['ff'.repeat(20), 'ff'.repeat(20)],
  ];
  for (const [input, want] of cases) t.equal(normalizeSerialHex(input), want, input);
});

t.test('bad serials are refused with bad_request', async (t) => {
  const cases: [string, RegExp][] = [
    ['', /expected hex/],
    ['xyz', /invalid serial number "xyz": expected hex/],
    ['0x', /expected hex/],
    ['00:00', /must be positive/],
    ['01'.repeat(21), /longer than 20 octets/],
  ];
  for (const [input, message] of cases) {
    t.throws(() => normalizeSerialHex(input), { code: 'bad_request', message }, JSON.stringify(input));
  }
  t.throws(() => normalizeSerialHex(42 as unknown as string), { code: 'bad_request' }, 'not a string');
});

t.test('the magnitude octets of an INTEGER give the same form as the hex of its value', async (t) => {
  t.equal(serialHexFromBytes(Buffer.from([0x00, 0x80, 0x01])), '8001', 'the DER sign octet goes');
  t.equal(serialHexFromBytes(Buffer.from([0x00, 0x00, 0x05])), '05');
  t.equal(serialHexFromBytes(Buffer.from([0x00])), '00', 'a lone zero octet stays');
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 20 }).filter((b) => b.some((x) => x !== 0)),
      fc.nat(3),
      (bytes, zeros) => {
        const magnitude = Buffer.concat([Buffer.alloc(zeros), Buffer.from(bytes)]);
        const written = Buffer.from(bytes).toString('hex').toUpperCase().replace(/(..)/g, '$1:');
        return serialHexFromBytes(magnitude) === normalizeSerialHex(written);
      },
    ),
  );
});
