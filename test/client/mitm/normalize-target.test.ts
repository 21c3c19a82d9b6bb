// `kds mitm --target`: the real KDC's URL, checked before Mallory listens. /kds is added to a bare
// host:port; a fragment (which ws refuses at each victim's connection) and URL credentials (kds never
// uses them, and the target is printed) are usage errors.
import t from 'tap';
import { normalizeTarget } from '../../../client/mitm/proxy.js';

t.test('a bare host:port gets /kds; a path given is kept', async (t) => {
  t.same(normalizeTarget('ws://127.0.0.1:8443'), {
    ws: 'ws://127.0.0.1:8443/kds',
    http: 'http://127.0.0.1:8443',
  });
  t.same(normalizeTarget('wss://kdc.example:8444/other'), {
    ws: 'wss://kdc.example:8444/other',
    http: 'https://kdc.example:8444',
  });
});

t.test('refused: another scheme, a fragment, credentials', async (t) => {
  const cases: [string, RegExp][] = [
    ['http://127.0.0.1:8443', /must start with ws:\/\/ or wss:\/\//],
    ['not a url', /must be a ws:\/\/ URL/],
    ['ws://127.0.0.1:8443/kds#f', /--target has a #fragment/],
    ['ws://127.0.0.1:8443#', /--target has a #fragment/],
    ['ws://user:s3cret@127.0.0.1:8443/kds', /--target has user:password@ credentials/],
  ];
  for (const [target, message] of cases) {
    t.throws(() => normalizeTarget(target), { code: 'bad_request', message }, target);
  }
});
