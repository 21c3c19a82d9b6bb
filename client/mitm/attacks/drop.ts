// drop: silently remove one record. A missing record cannot be detected while nothing follows it (no
// defence can tell a dropped record from a slow network: that is denial of service, and the victim's
// timeout ends it). But the next record is opened with the dropped one's sequence number: record_auth.
// Like reorder, Mallory waits for two records in a row in one direction, drops the first and
// forwards the second.
import type { AttackModule } from '../attack.js';
import { BurstWatcher, burstHooks } from '../burst.js';

export const drop: AttackModule = {
  name: 'drop',
  summary: 'drop one record and forward the next',
  position: 'on the path between a client and the KDC, after the handshake',
  action:
    'Holds each record briefly; when a second follows in the same direction, drops the first and forwards the second.',
  secure: {
    outcome: 'failed',
    defence: 'sequence number',
    why: 'the record after a gap is opened with the missing sequence number and fails',
  },
  insecure: { outcome: 'failed', defence: 'sequence number', why: 'the same record layer' },
  connection(link) {
    const pair = (from: 'client' | 'server') => (first: Buffer, second: Buffer) => {
      link.note(from, first, 'drop', 'never delivered');
      if (from === 'client') link.toServer(second, 'forward', 'the record after the dropped one');
      else link.toClient(second, 'forward', 'the record after the dropped one');
      link.expect({
        defence: 'sequence number',
        toward: from === 'client' ? 'server' : 'client',
        codes: ['record_auth'],
        what: 'dropped a record',
      });
      (from === 'client' ? s2c : c2s).flush();
    };
    const c2s = new BurstWatcher(link, 'client', pair('client'));
    const s2c = new BurstWatcher(link, 'server', pair('server'));
    return burstHooks(link, c2s, s2c);
  },
};
