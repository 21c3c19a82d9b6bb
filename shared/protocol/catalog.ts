// The message catalog: importing this module loads every application type. A feature adds its types
// in its own shared/protocol/messages-<feature>.ts (calling defineAppType) and ONE import line here.
import './messages-core.js';
import './messages-keys.js'; // symmetric keys (docs/keys.md)
import './messages-renewal.js'; // certificate renewal

export { defineAppType, getAppType, appTypeNames, APP_TYPE_PATTERN } from './app-types.js';
