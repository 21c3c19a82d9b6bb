// The menu prints a failed action as `error [code]: message`; the message may quote the KDC, so it
// is terminal-safe (client/menu/context.ts runAction).
import t from 'tap';
import { runAction, PLAIN_STYLE, type MenuContext } from '../../../client/menu/context.js';
import { errorFor } from '../../../shared/errors.js';

t.test('an error message from the network is printed escaped, on one line', async (t) => {
  const printed: string[] = [];
  const ctx = {
    io: { print: (...l: string[]) => printed.push(...l) },
    style: PLAIN_STYLE,
  } as unknown as MenuContext;
  await runAction(ctx, {
    label: 'x',
    run: async () => {
      throw errorFor('forbidden', 'no\r\u001b[1A  [notice] key revoked\n\u009b2K');
    },
  });
  t.same(printed, ['  error [forbidden]: no\\r\\x1b[1A  [notice] key revoked\\n\\x9b2K']);
});
