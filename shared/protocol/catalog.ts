// The message catalog: importing this module loads every application type. A feature adds its types
// in its own shared/protocol/messages-<feature>.ts (calling defineAppType) and ONE import line here.
//
// It also names every request type with the types of its bodies, inferred from the schemas the codec
// validates them with: the KDC's handler table (server/kdc-handlers/index.ts) is keyed by RequestType,
// and each handler receives RequestBody<T> and answers ResponseBody<T>, so a handler can only read what
// its request schema guarantees and only answer what its response schema allows.
import './messages-core.js';
import './messages-keys.js'; // symmetric keys (docs/keys.md)
import './messages-renewal.js'; // certificate renewal
import type { adminToken, certRevoke, certStatus, enroll, ping, sessionTicket } from './messages-core.js';
import type { KEY_REQUESTS } from './messages-keys.js';
import type { certRenew } from './messages-renewal.js';
import type { Infer } from './schema.js';

export { defineAppType, getAppType, appTypeNames, APP_TYPE_PATTERN } from './app-types.js';

/**
 * The request types defined one by one (defineAppType keeps each name's literal type). A new request
 * type goes here too: until it does, the KDC's table cannot hold its handler, and the test that the
 * table serves every request type of the catalog fails (test/server/kdc/dispatch.test.ts).
 */
type NamedRequestTypes =
  | typeof adminToken
  | typeof certRenew
  | typeof certRevoke
  | typeof certStatus
  | typeof enroll
  | typeof ping
  | typeof sessionTicket;

/** Every request type's schemas by its name (the key types are defined from KEY_REQUESTS' keys). */
type RequestSchemas = { [A in NamedRequestTypes as A['name']]: A } & typeof KEY_REQUESTS;

export type RequestType = keyof RequestSchemas;
/** The body of a `T` request as the codec validated it (ServerChannel.open). */
export type RequestBody<T extends RequestType> = Infer<RequestSchemas[T]['request']>;
/** The body of the `ok` reply to a `T` request, as the codec validates it (ServerChannel.sealOk). */
export type ResponseBody<T extends RequestType> = Infer<RequestSchemas[T]['response']>;
