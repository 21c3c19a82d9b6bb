// The request types the KDC serves. Each module registers its handler(s) into server/kdc/dispatch.ts
// when imported; a feature adds its types with one import line here.
import './ping.js';
import './cert-status.js';
import './cert-revoke.js';
import './admin-token.js';
import './enroll.js';
import '../keys/handlers.js'; // key distribution (key.*, msg.send, admin.keys, admin.key.revoke)
import './cert-renew.js';
import './session-ticket.js';
