// What Mallory sees of a frame without keys, and the rewrites the attacks make (through the real codec).
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { ClientHandshake } from '../../../shared/protocol/handshake.js';
import { decodeFrame, encodeFrame } from '../../../shared/protocol/messages.js';
import { MAX_FRAME_BYTES } from '../../../shared/protocol/limits.js';
import { rewriteClientHello, rewriteRecord, viewFrame } from '../../../client/mitm/frames.js';

const hello = new ClientHandshake({ mode: 'insecure', name: 'alice' }).clientHello();

t.test('kinds and public facts', async (t) => {
  t.match(viewFrame(hello), {
    kind: 'client_hello',
    info: 'mode=insecure group=x25519 offered=x25519,ffdhe2048',
  });
  t.match(viewFrame(encodeFrame({ t: 'r', c: randomBytes(40) })), { kind: 'record', info: 'ciphertext' });
  t.match(viewFrame(encodeFrame({ t: 'alert', code: 'bad_mac', message: 'x' })), {
    kind: 'alert',
    info: 'code=bad_mac',
  });
  t.equal(viewFrame(Buffer.from([0xc1, 1, 2])).kind, 'garbage');
  t.equal(viewFrame(Buffer.alloc(MAX_FRAME_BYTES + 1)).kind, 'oversize');
});

t.test('rewrites produce valid frames with exactly the change asked for', async (t) => {
  const down = decodeFrame(rewriteClientHello(hello, (h) => (h.mode = 'auth')));
  const orig = decodeFrame(hello);
  t.match(down, { t: 'client_hello', mode: 'auth' });
  if (down.t === 'client_hello' && orig.t === 'client_hello')
    t.same(down.share, orig.share, 'the share is untouched');
  const c = randomBytes(40);
  const cut = decodeFrame(rewriteRecord(encodeFrame({ t: 'r', c }), (x) => x.subarray(0, 36)));
  t.same(cut, { t: 'r', c: c.subarray(0, 36) });
  t.throws(() => rewriteClientHello(encodeFrame({ t: 'r', c }), () => {}), { code: 'unexpected_message' });
});

t.test(
  'a server_hello without a certificate: unauthenticated, unless it answers a resumed hello',
  async (t) => {
    const bare = encodeFrame({
      t: 'server_hello',
      v: 1,
      group: 'x25519',
      nonce: randomBytes(32),
      share: randomBytes(32),
      mac: randomBytes(32),
    });
    t.match(viewFrame(bare).info, /unauthenticated/);
    t.match(viewFrame(bare, 'insecure').info, /unauthenticated/);
    t.equal(viewFrame(bare, 'resume').info, 'group=x25519 resumed (authenticated by the ticket psk)');
  },
);
