// The `kds admin` subcommands, one file each. A new subcommand is one import + one array entry here.
import type { CommandModule } from 'yargs';
import { tokenCommand } from './token.js';
import { revokeCertCommand } from './revoke-cert.js';
import { certStatusCommand } from './cert-status.js';
import { keysCommand } from './keys.js';
import { revokeKeyCommand } from './revoke-key.js';
import { auditCommand } from './audit.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each module has its own argv type
export const adminCommands: CommandModule<any, any>[] = [tokenCommand, revokeCertCommand, certStatusCommand];
// key distribution (docs/keys.md)
adminCommands.push(keysCommand, revokeKeyCommand);
// the audit trail: read it, verify its chain
adminCommands.push(auditCommand);
