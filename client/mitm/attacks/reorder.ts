// reorder: deliver two records of one direction in swapped order. Each record is sealed under the
// nonce of its position (RFC 8446 5.3: the sequence number XORed into the IV), so the receiver opens
// the second record with the first one's nonce: record_auth. Mallory needs two records in flight in
// one direction, which is rare (a peer mostly waits for each reply), so she holds each record a
// moment and strikes when a second follows in time (e.g. queued deliveries pushed before the reply
// to key.sync). Until then she only delays records.
import type { AttackModule } from '../attack.js';
import { BurstWatcher, burstHooks } from '../burst.js';

export const reorder: AttackModule = {
  name: 'reorder',
  summary: 'swap two consecutive records of one direction',
  position: 'on the path between a client and the KDC, after the handshake',
  action:
    'Holds each record briefly; when a second record follows in the same direction, sends the second before the first. Best seen on a client that receives queued notices (e.g. `kds client keys` or `listen` with deliveries waiting).',
  secure: {
    outcome: 'failed',
    defence: 'sequence number',
    why: 'nonces are the implicit record sequence number: out-of-order records fail authentication',
  },
  insecure: { outcome: 'failed', defence: 'sequence number', why: 'the same record layer' },
  connection(link) {
    const pair = (toward: 'client' | 'server') => (first: Buffer, second: Buffer) => {
      const send = toward === 'server' ? link.toServer.bind(link) : link.toClient.bind(link);
      send(second, 'reorder', 'sent before the record it follows');
      send(first, 'reorder', 'sent after the record that followed it');
      link.expect({
        defence: 'sequence number',
        toward,
        codes: ['record_auth'],
        what: 'swapped two records',
      });
      other(toward).flush();
    };
    const c2s = new BurstWatcher(link, 'client', pair('server'));
    const s2c = new BurstWatcher(link, 'server', pair('client'));
    const other = (toward: 'client' | 'server'): BurstWatcher => (toward === 'server' ? s2c : c2s);
    return burstHooks(link, c2s, s2c);
  },
};
