// The vector files themselves: every byte value is well-formed lowercase hex of an even length (Node's
// Buffer.from(hex) silently drops an odd last digit and stops at the first non-hex one, so a defect in
// a vector would otherwise go unnoticed by a Node reader and break every other implementation), and
// every value has the size docs/protocol.md and docs/keys.md give it.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/vectors');
const load = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(resolve(DIR, name), 'utf8')) as Record<string, unknown>;

const HEX = /^(?:[0-9a-f]{2})*$/;

/** Every string under `value` whose key is not in `text`, with its JSON path. */
function hexStrings(value: unknown, text: ReadonlySet<string>, path = '$'): [string, string][] {
  if (typeof value === 'string') return [[path, value]];
  if (Array.isArray(value)) return value.flatMap((v, i) => hexStrings(v, text, `${path}[${i}]`));
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) =>
      text.has(k) ? [] : hexStrings(v, text, `${path}.${k}`),
    );
  }
  return [];
}

/** The problems of one file: non-hex strings, and values whose byte size is not the documented one. */
function problems(
  file: Record<string, unknown>,
  text: ReadonlySet<string>,
  sizes: (path: string) => number | undefined,
): string[] {
  const out: string[] = [];
  for (const [path, s] of hexStrings(file, text)) {
    if (!HEX.test(s)) {
      out.push(`${path}: not even-length lowercase hex (${s.length} characters)`);
      continue;
    }
    const want = sizes(path);
    if (want !== undefined && s.length !== 2 * want)
      out.push(`${path}: ${s.length / 2} bytes, expected ${want}`);
  }
  return out;
}

// docs/protocol.md: nonces 32, DH private keys 32 (X25519 scalars; 256-bit ffdhe2048 exponents),
// transcript hashes and MACs 32, key schedule as in "Key schedule", stand-in signatures 256, the
// resumed case's ticket, binder and IKM as in "Resumption".
const PROTOCOL_TEXT = new Set([
  'description',
  'signer',
  'name',
  'mode',
  'groups',
  'group',
  'direction',
  'client_name',
]);
const PROTOCOL_SIZES: [RegExp, number][] = [
  [/\.inputs\.(client|server)_nonce$/, 32],
  [/\.inputs\.(client|server)_dh_private$/, 32],
  [/\.transcript\.th_\w+$/, 32],
  [/\.transcript\.server_signature_input$/, 'kds v1 server CertificateVerify'.length + 1 + 32],
  [/\.transcript\.client_signature_input$/, 'kds v1 client CertificateVerify'.length + 1 + 32],
  [
    /\.keys\.(server_finished_key|client_finished_key|c2s_key|s2c_key|exporter_secret|resumption_secret)$/,
    32,
  ],
  [/\.keys\.(c2s_iv|s2c_iv)$/, 12],
  [/\.keys\.session_id$/, 16],
  [/\.macs\.\w+$/, 32],
  [/\.signatures\.\w+$/, 256],
  // docs/protocol.md "Resumption": ticket key id 16, ticket key 32, nonce 12, aad label + 0x00 + key id,
  // psk, binder key, binder and its transcript hash 32, IKM = Z || psk (X25519: 64).
  [/\.resumption\.(psk|ticket_key|binder_key|th_binder|binder)$/, 32],
  [/\.resumption\.ticket_key_id$/, 16],
  [/\.resumption\.ticket_nonce$/, 12],
  [/\.resumption\.ticket_aad$/, 'kds v1 ticket'.length + 1 + 16],
  [/\.resumption\.ikm$/, 64],
];

function protocolSize(file: Record<string, unknown>): (path: string) => number | undefined {
  const cases = file.cases as { group: string }[];
  return (path) => {
    const m = /^\$\.cases\[(\d+)\]/.exec(path);
    if (m !== null && path.endsWith('.keys.shared_secret'))
      return cases[Number(m[1])]!.group === 'x25519' ? 32 : 256;
    return PROTOCOL_SIZES.find(([re]) => re.test(path))?.[1];
  };
}

// docs/keys.md: key serial 32 hex digits (text), prekey id 16 (text), X25519 values 32, the key 32, the
// wrapped key 60, digests and transcript hashes 32, nonces 12.
const KEYS_TEXT = new Set([
  'description',
  'key_serial',
  'sender_name',
  'sender_cert_serial',
  'receiver_name',
  'receiver_cert_serial',
  'prekey_id',
]);
const KEYS_SIZES: Record<string, number> = {
  '$.inputs.prekey_private': 32,
  '$.inputs.sender_ephemeral_private': 32,
  '$.inputs.key': 32,
  '$.inputs.wrap_nonce': 12,
  '$.inputs.message_nonce': 12,
  '$.prekey.public': 32,
  '$.e2e.sender_ephemeral_public': 32,
  '$.e2e.transcript_hash': 32,
  '$.e2e.shared_secret': 32,
  '$.e2e.wrapping_key': 32,
  '$.e2e.ciphertext': 60,
  '$.e2e.digest': 32,
  '$.e2e.sender_signed_content': 'kds v1 key sender signature'.length + 1 + 64,
  '$.e2e.receiver_signed_content': 'kds v1 key receiver signature'.length + 1 + 64,
  '$.kdc.digest': 32,
  '$.kdc.transcript_hash': 32,
  '$.kdc.receiver_signed_content': 'kds v1 key receiver signature'.length + 1 + 64,
};

t.test('protocol-v1.json: even-length lowercase hex everywhere, sizes as documented', async (t) => {
  const file = load('protocol-v1.json');
  t.same(problems(file, PROTOCOL_TEXT, protocolSize(file)), []);
  const cases = file.cases as { inputs: Record<string, unknown> }[];
  t.equal(cases.length, 5);
  // The checker itself: the defect this file once had (a 65-digit private key) is reported.
  const broken = structuredClone(file);
  (broken.cases as { inputs: Record<string, string> }[])[1]!.inputs.server_dh_private += '6';
  t.same(problems(broken, PROTOCOL_TEXT, protocolSize(broken)), [
    '$.cases[1].inputs.server_dh_private: not even-length lowercase hex (65 characters)',
  ]);
  (broken.cases as { inputs: Record<string, string> }[])[1]!.inputs.server_dh_private = 'AB'.repeat(32);
  t.equal(problems(broken, PROTOCOL_TEXT, protocolSize(broken)).length, 1, 'uppercase is refused');
  (broken.cases as { inputs: Record<string, string> }[])[1]!.inputs.server_dh_private = 'ab'.repeat(31);
  t.same(problems(broken, PROTOCOL_TEXT, protocolSize(broken)), [
    '$.cases[1].inputs.server_dh_private: 31 bytes, expected 32',
  ]);
});

t.test('keys-v1.json: even-length lowercase hex everywhere, sizes as documented', async (t) => {
  const file = load('keys-v1.json');
  t.same(
    problems(file, KEYS_TEXT, (p) => KEYS_SIZES[p]),
    [],
  );
  const inputs = file.inputs as Record<string, unknown>;
  t.match(inputs.key_serial, /^[0-9a-f]{32}$/, 'key serial: 32 hex digits');
  t.match(inputs.prekey_id, /^[0-9a-f]{16}$/, 'prekey id: 16 hex digits');
  for (const k of ['sender_cert_serial', 'receiver_cert_serial'])
    t.match(inputs[k], /^(?:[0-9a-f]{2}){1,20}$/, `${k}: two digits per octet`);
  t.match(inputs.sender_cert_serial, /^0/, 'one certificate serial keeps a leading zero digit');
  t.ok(
    Number.isSafeInteger(inputs.expires_at) && (inputs.expires_at as number) > 2 ** 32,
    'a time above 2^32',
  );
});
