// The `kds client` subcommands, one file each. A new subcommand is one import + one array entry here.
import type { CommandModule } from 'yargs';
import { enrollCommand } from './enroll.js';
import { statusCommand } from './status.js';
import { revokeCertCommand } from './revoke-cert.js';
import { certStatusCommand } from './cert-status.js';
import { sendKeyCommand } from './send-key.js';
import { keysCommand } from './keys.js';
import { verifyKeyCommand } from './verify-key.js';
import { sendCommand } from './send.js';
import { revokeKeyCommand } from './revoke-key.js';
import { rotateKeyCommand } from './rotate-key.js';
import { listenCommand } from './listen.js';
import { menuCommand } from './menu.js';
import { renewCommand } from './renew.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each module has its own argv type
export const clientCommands: CommandModule<any, any>[] = [
  enrollCommand,
  statusCommand,
  revokeCertCommand,
  certStatusCommand,
];
// key distribution (docs/keys.md)
clientCommands.push(
  sendKeyCommand,
  keysCommand,
  verifyKeyCommand,
  sendCommand,
  revokeKeyCommand,
  rotateKeyCommand,
  listenCommand,
);
// the interactive menu
clientCommands.push(menuCommand);
// certificate renewal
clientCommands.push(renewCommand);
