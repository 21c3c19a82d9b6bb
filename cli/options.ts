// Options shared by several commands, defined once so every command spells them the same way.
// Each can also come from the environment as KDS_<NAME> (yargs .env('KDS')), e.g. KDS_DATA_DIR.
import type { Options } from 'yargs';

export const DEFAULT_SERVER_URL = 'ws://127.0.0.1:8443/kds';

export const dataDirOption: Options = {
  type: 'string',
  default: 'certs',
  describe: 'data directory of the KDC/CA (env KDS_DATA_DIR)',
};

export const serverOption: Options = {
  type: 'string',
  default: DEFAULT_SERVER_URL,
  describe: 'KDC WebSocket URL (env KDS_SERVER)',
};

export const nameOption: Options = {
  type: 'string',
  demandOption: true,
  describe: 'client identity name (^[a-z0-9][a-z0-9._-]{0,63}$)',
};

export const homeOption: Options = {
  type: 'string',
  describe: 'client state directory (default <data-dir>/clients/<name>; env KDS_HOME)',
};

export const reasonChoices = [
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
  'privilegeWithdrawn',
  'aACompromise',
] as const;
