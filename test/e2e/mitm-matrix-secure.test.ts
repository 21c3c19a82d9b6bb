// The MITM lab matrix, secure column (docs/attacks.md): every attack of the catalog against the default mode,
// real processes on loopback (test/e2e/mitm-helpers.ts). Target: 0 successes; each attack fails with
// the defence the catalog names, the victim's error names it, Mallory's report holds no key material
// and no plaintext, and alice and bob still exchange and verify keys after every attack.
import t from 'tap';
import { ATTACKS, ControlledMallory, runCell, startLab } from './mitm-helpers.js';

t.setTimeout(480_000);

const lab = await startLab(t, 'secure');
const mallory = await ControlledMallory.start(t, lab);

t.test('the secure column expects no success at all', async (t) => {
  t.same(
    ATTACKS.filter((a) => a.secure.outcome !== 'failed').map((a) => a.name),
    [],
    'every attack is expected to fail against the secure mode',
  );
});

for (const attack of ATTACKS) {
  t.test(`${attack.name} x secure`, (t) => runCell(t, lab, mallory, attack));
}
