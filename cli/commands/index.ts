// Every command area of `kds`, in the order --help lists them.
import type { Argv } from 'yargs';
import { register as server } from './server.js';
import { register as cert } from './cert.js';
import { register as crl } from './crl.js';
import { register as admin } from './admin.js';
import { register as client } from './client.js';
import { register as mitm } from './mitm.js';
import { register as demo } from './demo.js';

export const commands: ((y: Argv) => void)[] = [server, cert, crl, admin, client, mitm, demo];
