// The KDC's own port serves /metrics to loopback scrapers only (docs/security.md "Metrics"), and only
// under a loopback name: a page on another site can point its name at 127.0.0.1 (DNS rebinding) and
// have a browser on the KDC's host fetch it, so a request that names another host gets no figures.
import { request } from 'node:http';
import t from 'tap';
import { startTestKdc } from '../../helpers/kdc-in-process.js';

function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics', headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('/metrics on the KDC port: loopback names only', async (t) => {
  const { kdc } = await startTestKdc(t);
  for (const host of [`127.0.0.1:${kdc.port}`, `localhost:${kdc.port}`, 'localhost', `[::1]:${kdc.port}`]) {
    const res = await get(kdc.port, host);
    t.equal(res.status, 200, `Host ${host}`);
    t.match(res.body, /^# HELP kds_/m, 'the figures');
  }
  for (const host of ['rebind.attacker.example', `rebind.attacker.example:${kdc.port}`, '127.0.0.1.nip.io']) {
    const res = await get(kdc.port, host);
    t.not(res.status, 200, `Host ${JSON.stringify(host)} is refused`);
    t.notMatch(res.body, /kds_/, 'and gets no figures');
  }
});
