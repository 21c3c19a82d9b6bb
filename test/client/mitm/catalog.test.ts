// The attack catalog (docs/attacks.md): exactly these names in this order, each with a description that says
// where Mallory sits, an expected outcome per mode, and a defence the defence table knows.
import t from 'tap';
import { ATTACKS, ATTACK_NAMES, findAttack } from '../../../client/mitm/catalog.js';
import { DEFENCES } from '../../../shared/defences.js';

t.test('the names of the catalog, in order', async (t) => {
  t.same(ATTACK_NAMES, [
    'passthrough',
    'substitute-dh',
    'impersonate-server',
    'impersonate-client',
    'tamper',
    'replay',
    'reorder',
    'drop',
    'truncate-tag',
    'downgrade',
    'reflect',
    'unknown-key-share',
    'relay-substitute',
    'revoked-cert',
    'stale-key',
    'oversize',
    'garbage',
    'ticket-replay',
    'revoked-ticket',
    'resume-downgrade',
  ]);
});

t.test('every module describes itself and its expectations', async (t) => {
  for (const a of ATTACKS) {
    t.ok(
      a.summary.length > 10 && a.position.length > 10 && a.action.length > 10,
      `${a.name}: summary, position, action`,
    );
    t.equal(a.secure.outcome, 'failed', `${a.name}: fails against the secure mode`);
    for (const mode of ['secure', 'insecure'] as const) {
      const e = a[mode];
      t.ok(e.why.length > 10, `${a.name}/${mode}: says why`);
      if (e.outcome === 'failed')
        t.ok(
          e.defence !== undefined && Object.hasOwn(DEFENCES, e.defence),
          `${a.name}/${mode}: a known defence`,
        );
      else t.equal(e.defence, undefined, `${a.name}/${mode}: no defence when it succeeds`);
    }
  }
  t.same(
    ATTACKS.filter((a) => a.insecure.outcome === 'succeeded').map((a) => a.name),
    [
      'substitute-dh',
      'impersonate-server',
      'impersonate-client',
      'revoked-cert',
      'ticket-replay',
      'revoked-ticket',
      'resume-downgrade',
    ],
    'the attacks the insecure mode falls to',
  );
  t.same(
    ATTACKS.filter((a) => a.needsIdentity === true).map((a) => a.name),
    ['impersonate-client', 'unknown-key-share', 'revoked-cert', 'stale-key', 'revoked-ticket'],
  );
});

t.test('findAttack', async (t) => {
  t.equal(findAttack('tamper').name, 'tamper');
  t.throws(() => findAttack('nope'), { code: 'bad_request', message: /unknown attack "nope"/ });
});
