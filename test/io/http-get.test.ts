// io/http-get.ts: a GET whose deadline holds the process open. The case that mattered: a server that
// closes the connection without an answer (a KDC at its per-address cap). Node 20's fetch then waits
// forever, and with only an unreferenced timer (AbortSignal.timeout) nothing kept the event loop
// alive: `kds client enroll` exited with code 13 and no output. Run in a child process whose only
// other handle (the closing server) is unreferenced, exactly the CLI's situation.
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { httpGetText } from '../../io/http-get.js';

const MODULE = fileURLToPath(new URL('../../io/http-get.js', import.meta.url));

function child(script: string): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

t.test(
  'a server that closes without answering: unavailable at the deadline, not a silent exit',
  async (t) => {
    const script = `
    import net from 'node:net';
    import { httpGetText } from ${JSON.stringify(MODULE)};
    const srv = net.createServer((s) => s.destroy());
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    srv.unref();
    const t0 = Date.now();
    try {
      await httpGetText('http://127.0.0.1:' + srv.address().port + '/ca.pem', 400, 1024);
      console.log('answered');
    } catch (err) {
      console.log('refused', err.code, Date.now() - t0 >= 350 ? 'at the deadline' : 'early', err.message);
    }
  `;
    const r = child(script);
    t.equal(r.code, 0, r.out);
    t.match(
      r.out,
      /refused unavailable at the deadline cannot fetch http:\/\/127\.0\.0\.1:\d+\/ca\.pem: no answer within 0 s/,
    );
  },
);

t.test('answers, statuses and sizes', async (t) => {
  const server = createServer((req, res) => {
    if (req.url === '/big') res.end('x'.repeat(2048));
    else if (req.url === '/missing') res.writeHead(404).end('no');
    else res.end('PEM');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  t.same(await httpGetText(`${base}/ca.pem`, 5_000, 1024), { status: 200, text: 'PEM' });
  t.same(await httpGetText(`${base}/missing`, 5_000, 1024), { status: 404, text: 'no' });
  await t.rejects(httpGetText(`${base}/big`, 5_000, 1024), { code: 'malformed_pem' });
  server.close();
  await t.rejects(httpGetText(`${base}/gone`, 5_000, 1024), { code: 'unavailable' }, 'nobody listening');
});
