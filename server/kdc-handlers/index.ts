// The request types the KDC serves: one handler per request type of the message catalog, in one table.
// Its type (KdcHandlers) makes a request type without a handler, or a handler typed for another body
// or reply, a compile error; a feature adds its handler here.
import type { KdcHandlers } from '../kdc/dispatch.js';
import { KEY_HANDLERS } from '../keys/handlers.js';
import { adminToken } from './admin-token.js';
import { certRenew } from './cert-renew.js';
import { certRevoke } from './cert-revoke.js';
import { certStatus } from './cert-status.js';
import { enroll } from './enroll.js';
import { ping } from './ping.js';
import { sessionTicket } from './session-ticket.js';

export const KDC_HANDLERS: KdcHandlers = {
  ping,
  'cert.status': certStatus,
  'cert.revoke': certRevoke,
  'admin.token': adminToken,
  enroll,
  'cert.renew': certRenew,
  'session.ticket': sessionTicket,
  ...KEY_HANDLERS, // key distribution (key.*, msg.send, admin.keys, admin.key.revoke)
};
