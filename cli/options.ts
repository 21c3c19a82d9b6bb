// Options shared by several commands, defined once so every command spells them the same way.
// Each can also come from the environment as KDS_<NAME> (yargs .env('KDS')), e.g. KDS_DATA_DIR.
import type { Options } from 'yargs';
import { KEY_REVOCATION_REASONS, REVOCATION_REASONS } from '../shared/revocation-reasons.js';
import {
  NAME_RULE,
  certSerialValue,
  keySerialValue,
  nameValue,
  pathValue,
  serverUrlValue,
  storeUrlValue,
} from './option-values.js';

const DEFAULT_SERVER_URL = 'ws://127.0.0.1:8443/kds';

export const dataDirOption: Options = {
  type: 'string',
  default: 'certs',
  describe: 'data directory of the KDC/CA (env KDS_DATA_DIR)',
  coerce: pathValue('--data-dir'),
};

export const storeOption: Options = {
  type: 'string',
  describe:
    'the store: a PostgreSQL URL (postgres://user@host/db[?schema=NAME]) shared by several KDC nodes (env KDS_STORE); default the SQLite file of the data directory',
  coerce: storeUrlValue,
};

export const serverOption: Options = {
  type: 'string',
  default: DEFAULT_SERVER_URL,
  describe: 'KDC WebSocket URL (env KDS_SERVER)',
  coerce: serverUrlValue,
};

export const nameOption: Options = {
  type: 'string',
  demandOption: true,
  describe: `client identity name (${NAME_RULE.replace(/^a name is /, '')})`,
  coerce: nameValue('--name'),
};

/** A symmetric key serial, checked while parsing (32 hex digits). */
export const keySerialOption: Options = {
  type: 'string',
  demandOption: true,
  describe: 'key serial (32 hex digits)',
  coerce: keySerialValue,
};

/** A certificate serial, checked while parsing (hex, colons allowed). */
export const certSerialOption: Options = {
  type: 'string',
  describe: 'certificate serial (hex, colons allowed)',
  coerce: certSerialValue,
};

export const homeOption: Options = {
  type: 'string',
  describe: 'client state directory (default <data-dir>/clients/<name>; env KDS_HOME)',
  coerce: pathValue('--home'),
};

/** RFC 5280 reasons for revoking a certificate. */
export const reasonChoices = REVOCATION_REASONS;
/** The reasons that apply to a symmetric key (shared/revocation-reasons.ts says why the others do not). */
export const keyReasonChoices = KEY_REVOCATION_REASONS;
