// The ablation table of the MITM lab (docs/attacks.md, "Ablation: one defence off at a time"): for every
// attack of the catalog, the switches of its row (shared/lab-switches.ts) on each side, what the row
// shows, and the victim's command. Pure data: client/mitm/ablation.ts runs it, the e2e test asserts it,
// tools/docs.ts prints it into docs/attacks.md.
//
// A row switches off the defence the catalog names for the attack, on the processes that must
// cooperate (the KDC, the victim, and the honest clients that prepare the scene). Where no single
// switch lets the attack through, the row names the pair and `why` says so; where no switch can, the
// row still runs (its defence off) and `why` says what stops it then.
import type { LabSwitch } from '../../shared/lab-switches.js';
import type { Outcome } from './attack.js';

export type LabName = 'alice' | 'bob' | 'mallory' | 'zed' | 'yan';
export type HonestStep = 'bob-keys' | 'kdc-key' | 'e2e-key' | 'alice-ticket';

export interface AblationRow {
  attack: string;
  /** Switched off on the KDC. */
  kdc: readonly LabSwitch[];
  /** Switched off on the victim and on the honest clients that prepare the scene. */
  client: readonly LabSwitch[];
  /** What the row is expected to show with those switches off. */
  without: Outcome;
  /** One sentence for docs/attacks.md: why it succeeds now, or why it still does not. */
  why: string;
}

const both = (...s: LabSwitch[]): Pick<AblationRow, 'kdc' | 'client'> => ({ kdc: s, client: s });

export const ABLATION_ROWS: readonly AblationRow[] = [
  {
    attack: 'passthrough',
    ...both('authentication'),
    without: 'failed',
    why: 'no switch makes a passive observer succeed: even unauthenticated Diffie-Hellman keeps her out, since she never holds a DH secret; confidentiality is not a check that can be removed',
  },
  {
    attack: 'substitute-dh',
    ...both('transcript-signature'),
    without: 'succeeded',
    why: 'nobody verifies the signatures: Mallory runs both handshakes under the real certificates, with her own DH shares and MACs, and reads every record',
  },
  {
    attack: 'impersonate-server',
    ...both('certificate-chain'),
    without: 'succeeded',
    why: "the victim no longer asks who issued the KDC certificate: Mallory's own `kdc` certificate and her valid signature pass",
  },
  {
    attack: 'impersonate-client',
    ...both('finished-mac'),
    without: 'succeeded',
    why: "the KDC no longer compares the victim's MAC with its transcript: it opens the session under Mallory's certificate",
  },
  {
    attack: 'tamper',
    ...both('record-authentication'),
    without: 'succeeded',
    why: "the tag is not checked: the KDC decrypts the altered record and acts on it (the flipped bit turns the first request's `listHeld: true` into `false`), and the victim carries on",
  },
  {
    attack: 'replay',
    ...both('sequence-number'),
    without: 'succeeded',
    why: 'any recent sequence number opens a record: the KDC runs the replayed request a second time',
  },
  {
    attack: 'reorder',
    ...both('sequence-number'),
    without: 'succeeded',
    why: 'the swapped records open under their own sequence numbers: the victim carries on',
  },
  {
    attack: 'drop',
    ...both('sequence-number'),
    without: 'succeeded',
    why: 'the record after the dropped one opens: the victim never learns it missed one',
  },
  {
    attack: 'truncate-tag',
    ...both('record-authentication'),
    without: 'failed',
    why: 'with the tag unchecked the last 16 bytes are still taken as the tag, so 4 bytes of ciphertext are lost and the plaintext no longer decodes: input validation stops it (a decoder cannot be switched off)',
  },
  {
    attack: 'downgrade',
    kdc: ['authentication'],
    client: ['downgrade-protection'],
    without: 'failed',
    why: 'the client takes the unauthenticated reply, but the offer it sent is in the transcript: the Finished MAC disagrees; with that off too the traffic keys still differ (they hash the transcript), so no switch pair lets a downgrade through',
  },
  {
    attack: 'reflect',
    ...both('direction-bound-keys', 'sequence-number'),
    without: 'failed',
    why: "it takes two switches for the reflected record to open at all (one key and additional data for both directions, and any sequence number: it carries the client's own number, not the next one the client expects); then it holds the client's own request, which is no answer from the KDC, and input validation refuses it",
  },
  {
    attack: 'unknown-key-share',
    ...both('authentication', 'e2e-transcript-signature'),
    without: 'failed',
    why: "Mallory is inside the receiver's channel (authentication off) and the sender's signature goes unchecked, yet Bob still refuses: the wrapped key is sealed under the same transcript (both names), so renaming the sender breaks the unwrap; no switch removes that binding",
  },
  {
    attack: 'relay-substitute',
    ...both('authentication', 'e2e-transcript-signature'),
    without: 'succeeded',
    why: "two defences: Mallory must first be inside the sender's channel (authentication off), then the signature over Bob's prekey must go unchecked",
  },
  {
    attack: 'revoked-cert',
    ...both('revocation'),
    without: 'succeeded',
    why: 'the KDC no longer looks the certificate up in its revocation list: the revoked identity opens a session',
  },
  {
    attack: 'stale-key',
    ...both('revocation'),
    without: 'succeeded',
    why: 'the KDC no longer refuses a revoked key: it relays a message under it',
  },
  {
    attack: 'oversize',
    kdc: ['frame-limits', 'input-validation'],
    client: [],
    without: 'succeeded',
    why: 'two defences: Mallory pads the frame with bytes after the message, so the KDC must read past 64 KiB (frame limits) and ignore what follows the message (input validation)',
  },
  {
    attack: 'garbage',
    kdc: ['input-validation'],
    client: [],
    without: 'failed',
    why: 'random bytes are not a message: with input validation off the KDC still cannot decode them (bad_frame), so there is nothing to accept',
  },
  {
    attack: 'ticket-replay',
    kdc: ['finished-mac'],
    client: [],
    without: 'succeeded',
    why: "the KDC no longer compares the replayed client_finish with its transcript: it opens a session in the victim's name for a replayer who holds neither its DH key nor the ticket's psk (tickets are replay-bounded by the Finished MAC, not single-use)",
  },
  {
    attack: 'revoked-ticket',
    ...both('revocation'),
    without: 'succeeded',
    why: 'the KDC no longer looks up the identity a ticket names: the revoked insider resumes with the ticket she kept',
  },
  {
    attack: 'resume-downgrade',
    kdc: ['authentication'],
    client: [],
    without: 'failed',
    why: "the KDC takes the stripped hello as an insecure session, but the victim's keys hash the ticket's psk and its own hello: the KDC's Finished MAC fails at the victim (bad_mac); no switch lets it through, as the two ends never hold the same keys",
  },
];

/** The switches of a row, both sides, in LAB_SWITCHES order of first appearance. */
export function rowSwitches(row: AblationRow): LabSwitch[] {
  const out: LabSwitch[] = [];
  for (const s of [...row.kdc, ...row.client]) if (!out.includes(s)) out.push(s);
  return out;
}

/** What the victim runs, and what must happen before Mallory starts. */
export interface CellPlan {
  victim: LabName;
  args: string[];
  /** Mallory's identity: a client home of hers (mallory, or zed whose certificate is revoked). */
  identity?: LabName;
  /** The victim's args end with `--serial <its own certificate's serial>` (`cert-status`). */
  ownSerial?: true;
  /**
   * Honest steps first, straight to the KDC: bob comes online (`bob-keys`: he publishes prekeys and
   * takes what is queued for him), alice sends bob a KDC (`kdc-key`) or end-to-end (`e2e-key`) key, or
   * asks for her certificate's status (`alice-ticket`), which leaves her a resumption ticket.
   */
  before?: readonly HonestStep[];
}

/** The victim's command per attack: the same scenes as the matrix test (test/e2e/mitm-helpers.ts). */
export function cellPlan(attack: string): CellPlan {
  const sendKdcKey: CellPlan = {
    victim: 'alice',
    args: ['send-key', '--to', 'bob', '--mode', 'kdc', '--json'],
  };
  switch (attack) {
    case 'passthrough':
      return {
        victim: 'alice',
        args: ['send', '--to', 'bob', '--message', 'the eagle lands at dawn', '--json'],
        before: ['kdc-key', 'bob-keys'],
      };
    case 'reorder':
    case 'drop':
      return { victim: 'bob', args: ['keys', '--json'], before: ['kdc-key'] };
    case 'unknown-key-share':
      return {
        victim: 'bob',
        args: ['keys', '--json'],
        identity: 'mallory',
        before: ['bob-keys', 'e2e-key'],
      };
    case 'relay-substitute':
      return { victim: 'alice', args: ['send-key', '--to', 'bob', '--json'], before: ['bob-keys'] };
    case 'impersonate-client':
    case 'stale-key':
      return { ...sendKdcKey, identity: 'mallory' };
    case 'revoked-cert':
      return { ...sendKdcKey, identity: 'zed' };
    case 'ticket-replay':
    case 'resume-downgrade':
      // The key commands always run a full handshake; `cert-status` resumes with the ticket alice's
      // honest session left her.
      return { victim: 'alice', args: ['cert-status', '--json'], ownSerial: true, before: ['alice-ticket'] };
    case 'revoked-ticket':
      return { ...sendKdcKey, identity: 'yan' };
    default:
      return sendKdcKey;
  }
}
