// key.create.batch and key.verify.batch over a real session to an in-process KDC (docs/keys.md "Batches"):
// the codes a client sees on the wire for a bad shape (`schema`, before any work), a batch over a bound
// (`quota_exceeded`, nothing created), and another pair's serial in a verify batch (`not_found`, as alone).
import t from 'tap';
import { acceptKdcKey } from '../../../shared/keys/exchange.js';
import { newKeySerial } from '../../../shared/keys/serial.js';
import { kdcDeliveryOf } from '../../../shared/keys/wire.js';
import { issueTestClient, sessionFor, startTestKdc } from '../../helpers/kdc-in-process.js';

t.setTimeout(120_000);

const { kdc } = await startTestKdc(t, { keyLimits: { activeKeysPerPair: 5 } });
const alice = await issueTestClient(kdc.ca, 'alice');
const bob = await issueTestClient(kdc.ca, 'bob');
const carol = await issueTestClient(kdc.ca, 'carol');

async function open(who: typeof alice) {
  const s = await sessionFor(kdc, who);
  t.teardown(() => s.close());
  return s;
}

t.test('bad shapes are `schema`, and nothing is created', async (t) => {
  const digest = Buffer.alloc(32);
  const serial = newKeySerial();
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['key.create.batch', { peer: 'bob', count: 0 }, /count must be at least 1/],
    ['key.create.batch', { peer: 'bob', count: 33 }, /count/],
    ['key.verify.batch', { items: [] }, /items/],
    [
      'key.verify.batch',
      {
        items: [
          { serial, digest },
          { serial, digest },
        ],
      },
      /a serial appears twice in `items`/,
    ],
  ];
  for (const [type, body, message] of cases) {
    const s = await open(alice);
    await t.rejects(s.request(type as 'key.create.batch', body as never), { code: 'schema', message }, type);
  }
  const s = await open(alice);
  t.same((await s.request('key.list', {})).keys, [], 'no key was created');
});

t.test('a batch over the active-key bound creates nothing; what fits is created', async (t) => {
  const a = await open(alice);
  const first = await a.request('key.create.batch', { peer: 'bob', count: 4 });
  t.equal(first.keys.length, 4);
  t.equal(first.peer, 'bob');
  t.equal(first.ownerCertSerial, alice.cert.serialHex);
  t.equal(first.peerCertSerial, bob.cert.serialHex);
  await t.rejects(a.request('key.create.batch', { peer: 'bob', count: 2 }), {
    code: 'quota_exceeded',
    message: 'you hold 4 active keys with bob (at most 5): 2 more do not fit, none was created',
  });
  t.equal((await a.request('key.list', {})).keys.length, 4, 'none of the refused batch');
  t.equal((await a.request('key.create.batch', { peer: 'bob', count: 1 })).keys.length, 1);
});

t.test("bob verifies alice's keys in one request; carol's serial in it is not_found", async (t) => {
  const b = await open(bob);
  const deliveries: Record<string, unknown>[] = [];
  b.onPush('key.delivered', (body) => deliveries.push(body));
  await b.request('key.sync', { messages: false });
  t.equal(deliveries.length, 5, "bob has alice's five keys");
  const c = await open(carol);
  const carols = await c.request('key.create', { peer: 'alice' });
  const me = { name: 'bob', certSerial: bob.cert.serialHex, privateKey: bob.privateKey };
  const signed = await Promise.all(deliveries.map((d) => acceptKdcKey(me, kdcDeliveryOf(d))));
  const r = await b.request('key.verify.batch', {
    items: [
      ...signed.map((s, i) => ({
        serial: String(deliveries[i]!.serial),
        digest: s.digest,
        signature: s.signature,
      })),
      { serial: carols.serial, digest: Buffer.alloc(32) },
    ],
    ack: deliveries.map((d) => d.d as number),
  });
  t.same(
    r.results.map((x) => [x.verdict, x.peerVerified]),
    [...deliveries.map(() => ['valid', true]), ['not_found', false]],
  );
  t.same((await b.request('key.sync', { messages: false })).remaining, 0, 'every delivery acknowledged');
});
