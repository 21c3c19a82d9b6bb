// The MITM lab's ablation switches (docs/attacks.md, "Ablation"): one switch per defence, each of which
// removes exactly one check so a learner can watch the attack that check stops succeed. Pure data and
// one predicate: no I/O, and above all no environment. A switch reaches a check only as a value passed
// down explicitly from the command line (cli/lab-switches.ts, which also demands KDS_ALLOW_INSECURE=1),
// never from a peer and never from a global.
//
// How a check consults its switch (test/shared/lab-switches.test.ts scans every source file for this):
//
//   // LAB SWITCH sequence-number: <what exactly is skipped>
//   if (labOff(defences, 'sequence-number')) { ...the removed check's replacement... }
//
// The comment names the switch, the call names the same switch, and the call sits right under the
// comment: a check reads its own switch and no other. Every other line of the check is the same code
// as with all defences on.

export const LAB_SWITCHES = [
  'authentication',
  'transcript-signature',
  'certificate-chain',
  'finished-mac',
  'record-authentication',
  'sequence-number',
  'direction-bound-keys',
  'downgrade-protection',
  'revocation',
  'frame-limits',
  'input-validation',
  'e2e-transcript-signature',
  'replay-window',
] as const;

export type LabSwitch = (typeof LAB_SWITCHES)[number];

/** For each switch, whether its defence is ON (true: the check runs). Always frozen. */
export type Defences = Readonly<Record<LabSwitch, boolean>>;

/** The default everywhere: every defence on. Frozen, so no code path can switch a defence off later. */
export const ALL_DEFENCES_ON: Defences = Object.freeze(
  Object.fromEntries(LAB_SWITCHES.map((s) => [s, true])) as Record<LabSwitch, boolean>,
);

/** What each switch removes, in a user's words (`--help`, the start warning, docs/attacks.md). */
export const LAB_SWITCH_EFFECT: Readonly<Record<LabSwitch, string>> = Object.freeze({
  authentication:
    'unauthenticated Diffie-Hellman to the KDC: no certificate, no signature (the same as --insecure-dh)',
  'transcript-signature':
    'the RSA-PSS signature over the handshake transcript is not verified (the certificate still is)',
  'certificate-chain':
    'the peer certificate is not checked against the pinned root (issuer, signature, validity, usage, name); revocation still is',
  'finished-mac': "the peer's Finished MAC is not compared with our own transcript",
  'record-authentication':
    "records are decrypted without checking their GCM tag (a tag's length is still required)",
  'sequence-number':
    'a record sealed under any recent sequence number is accepted (replayed, reordered or skipped records open)',
  'direction-bound-keys': 'both directions use the client-to-server key, IV and additional data',
  'downgrade-protection':
    'a secure client accepts a server_hello without certificate and signature (it is then not authenticated)',
  revocation: 'revoked certificates are accepted in the handshake and revoked keys are served',
  'frame-limits':
    'the KDC reads a client_hello over the 64 KiB frame limit (up to 1 MiB) instead of refusing it',
  'input-validation':
    'the KDC reads a client_hello up to the end of its map and ignores the bytes after it instead of refusing the frame',
  'e2e-transcript-signature':
    "end-to-end key exchange: the signatures over the peer's prekey and key transcript are not verified",
  'replay-window': 'a relayed message already received under a key is accepted again',
});

/**
 * The defence names of docs/attacks.md and shared/defences.ts that each switch removes (the Finished MAC
 * is one half of "key confirmation"; "authentication" is the handshake's whole authentication).
 */
export const LAB_SWITCH_DEFENCE: Readonly<Record<LabSwitch, string>> = Object.freeze({
  authentication: 'authentication',
  'transcript-signature': 'transcript signature',
  'certificate-chain': 'certificate chain',
  'finished-mac': 'Finished MAC',
  'record-authentication': 'record authentication',
  'sequence-number': 'sequence number',
  'direction-bound-keys': 'direction-bound keys',
  'downgrade-protection': 'downgrade protection',
  revocation: 'revocation',
  'frame-limits': 'frame limits',
  'input-validation': 'input validation',
  'e2e-transcript-signature': 'e2e transcript signature',
  'replay-window': 'replay window',
});

export function isLabSwitch(name: string): name is LabSwitch {
  return (LAB_SWITCHES as readonly string[]).includes(name);
}

/** A frozen set with exactly `off` switched off (the order of LAB_SWITCHES, duplicates ignored). */
export function defencesWithout(off: readonly LabSwitch[]): Defences {
  if (off.length === 0) return ALL_DEFENCES_ON;
  return Object.freeze(
    Object.fromEntries(LAB_SWITCHES.map((s) => [s, !off.includes(s)])) as Record<LabSwitch, boolean>,
  );
}

/** The switches that are off, in LAB_SWITCHES order (`/healthz`, the console, warnings). */
export function switchedOff(defences: Defences): LabSwitch[] {
  return LAB_SWITCHES.filter((s) => defences[s] !== true);
}

/** True when the check guarded by `name` must be skipped. The only way a check reads its switch. */
export function labOff(defences: Defences | undefined, name: LabSwitch): boolean {
  return defences !== undefined && defences[name] === false;
}
