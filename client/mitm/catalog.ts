// The attack catalog of the MITM lab (docs/attacks.md): exactly these names, in this order, in
// `kds mitm --list` and docs/attacks.md. One module per attack under client/mitm/attacks/.
import { InputError } from '../../shared/errors.js';
import type { AttackModule } from './attack.js';
import { passthrough } from './attacks/passthrough.js';
import { substituteDh } from './attacks/substitute-dh.js';
import { impersonateServer } from './attacks/impersonate-server.js';
import { impersonateClient } from './attacks/impersonate-client.js';
import { tamper } from './attacks/tamper.js';
import { replay } from './attacks/replay.js';
import { reorder } from './attacks/reorder.js';
import { drop } from './attacks/drop.js';
import { truncateTag } from './attacks/truncate-tag.js';
import { downgrade } from './attacks/downgrade.js';
import { reflect } from './attacks/reflect.js';
import { unknownKeyShare } from './attacks/unknown-key-share.js';
import { relaySubstitute } from './attacks/relay-substitute.js';
import { revokedCert } from './attacks/revoked-cert.js';
import { staleKey } from './attacks/stale-key.js';
import { oversize } from './attacks/oversize.js';
import { garbage } from './attacks/garbage.js';
import { ticketReplay } from './attacks/ticket-replay.js';
import { revokedTicket } from './attacks/revoked-ticket.js';
import { resumeDowngrade } from './attacks/resume-downgrade.js';

export const ATTACKS: readonly AttackModule[] = [
  passthrough,
  substituteDh,
  impersonateServer,
  impersonateClient,
  tamper,
  replay,
  reorder,
  drop,
  truncateTag,
  downgrade,
  reflect,
  unknownKeyShare,
  relaySubstitute,
  revokedCert,
  staleKey,
  oversize,
  garbage,
  ticketReplay,
  revokedTicket,
  resumeDowngrade,
];

export const ATTACK_NAMES: readonly string[] = ATTACKS.map((a) => a.name);

export function findAttack(name: string): AttackModule {
  const found = ATTACKS.find((a) => a.name === name);
  if (found === undefined) {
    throw new InputError(
      'bad_request',
      `unknown attack ${JSON.stringify(name)}; kds mitm --list shows the ${ATTACKS.length} attacks`,
    );
  }
  return found;
}
