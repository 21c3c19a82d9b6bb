// Mallory's verdict and report: the outcome precedence, the summary wording of docs/attacks.md, and the rule that
// nothing is reported stolen unless Mallory held a victim's session keys (a secure run's report can
// hold no key material).
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { findAttack } from '../../../client/mitm/catalog.js';
import { MitmContext } from '../../../client/mitm/context.js';
import { buildReport } from '../../../client/mitm/report.js';
import { summaryLine, Verdict } from '../../../client/mitm/verdict.js';
import { summarize } from '../../../client/mitm/loot.js';

function context(attack = 'substitute-dh'): MitmContext {
  return new MitmContext(findAttack(attack), { target: 'ws://127.0.0.1:1/kds', holdMs: 10 }, () => {});
}

t.test('one success wins; else one failure; else inconclusive', async (t) => {
  const v = new Verdict();
  t.equal(v.outcome, 'inconclusive');
  t.equal(summaryLine('tamper', v), 'attack tamper: INCONCLUSIVE — no victim connection was attacked');
  v.add({ outcome: 'inconclusive', conn: 1, detail: 'nothing happened' });
  v.add({ outcome: 'failed', conn: 2, detail: 'x', defence: 'record authentication', code: 'record_auth' });
  t.equal(v.outcome, 'failed');
  t.equal(summaryLine('tamper', v), 'attack tamper: FAILED — stopped by record authentication');
  v.add({ outcome: 'failed', conn: 0, detail: 'y', defence: 'transcript signature' });
  t.equal(
    summaryLine('replay', v),
    'attack replay: FAILED — stopped by record authentication and transcript signature',
  );
  v.add({ outcome: 'succeeded', conn: 3, detail: 'the KDC accepted it' });
  t.equal(v.outcome, 'succeeded');
  t.equal(summaryLine('x', v), 'attack x: SUCCEEDED — the KDC accepted it');
  t.equal(summaryLine('x', v, 'abcd'), 'attack x: SUCCEEDED — stole key abcd');
});

t.test('no session keys held: nothing is reported stolen, whatever the loot says', async (t) => {
  const ctx = context();
  const key = randomBytes(32);
  ctx.loot.addKey({ serial: 'aa'.repeat(16), key, source: 'test', conn: 1 });
  ctx.fail(1, 'transcript signature', 'stopped');
  const secure = buildReport(ctx);
  t.equal(secure.stolen, null);
  t.notOk(JSON.stringify(secure).includes(key.toString('hex')), 'no key bytes in the report');
  t.equal(secure.defence, 'transcript signature');

  ctx.terminatedInsecure = true;
  ctx.succeed(1, 'held both sessions');
  const insecure = buildReport(ctx);
  t.equal(insecure.outcome, 'succeeded');
  t.equal(insecure.defence, null);
  t.equal(insecure.stolen?.keys[0]?.key, key.toString('hex'));
  t.equal(insecure.summary, `attack substitute-dh: SUCCEEDED — stole key ${key.toString('hex')}`);
  t.same(insecure.expected.secure, findAttack('substitute-dh').secure);
  ctx.loot.addKey({ serial: 'dd'.repeat(16), key: randomBytes(32), source: 'test', conn: 2 });
  t.equal(
    buildReport(ctx).summary,
    `attack substitute-dh: SUCCEEDED — stole key ${key.toString('hex')} (and 1 more)`,
  );
});

t.test('loot: keys only from the messages that carry them; messages decrypt under stolen keys', async (t) => {
  const ctx = context();
  const key = randomBytes(32);
  const serial = 'bb'.repeat(16);
  ctx.loot.inspectServerMessage(1, 'alice', {
    kind: 'ok',
    type: 'key.create',
    id: 1,
    body: { serial, key, peer: 'bob' },
  });
  ctx.loot.inspectServerMessage(1, 'alice', { kind: 'ok', type: 'key.list', id: 2, body: { keys: [] } });
  t.equal(ctx.loot.keys.size, 1);
  t.same(ctx.loot.keys.get(serial)?.to, 'bob');
  ctx.loot.addKey({ serial, key: randomBytes(32), source: 'again', conn: 1 });
  t.same(ctx.loot.keys.get(serial)?.key, key, 'the first theft of a serial is kept');
  ctx.loot.addKey({ serial: 'cc'.repeat(16), key: randomBytes(16), source: 'short', conn: 1 });
  t.equal(ctx.loot.keys.size, 1, 'not an AES-256 key: ignored');
});

t.test('summarize: short bytes in hex, long bytes by size, nesting bounded', async (t) => {
  t.equal(summarize({ a: Buffer.from([1, 2]), b: 'x', n: 3 }), '{a: 0x0102, b: "x", n: 3}');
  t.equal(summarize({ c: Buffer.alloc(100) }), '{c: <100 bytes>}');
  t.equal(summarize({ a: { b: { c: { d: 1 } } } }), '{a: {b: {c: {...}}}}');
});
