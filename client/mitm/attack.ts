// The shape of one attack of the MITM lab (docs/attacks.md): a module with a name, a
// description that says WHERE Mallory sits, the defence it expects to be stopped by, what should
// happen in the insecure control mode, and hooks on the frames of each victim connection.
//
// Mallory is a WebSocket proxy between a client and the KDC (client/mitm/proxy.ts). For every client
// that connects to her she opens a connection to the real KDC and hands both directions to the
// attack's hooks (client/mitm/link.ts). A hook that is absent forwards frames unchanged.
import type { DefenceName } from '../../shared/defences.js';
import type { Link } from './link.js';
import type { MitmContext } from './context.js';

export type Outcome = 'succeeded' | 'failed' | 'inconclusive';

/** What the catalog promises for one mode: the matrix test asserts exactly this. */
export interface Expectation {
  outcome: Outcome;
  /** The defence that stops it (outcome `failed`). */
  defence?: DefenceName;
  /** Why, in one sentence (docs/attacks.md prints it). */
  why: string;
}

export interface ConnectionHooks {
  /** A frame the victim client sent (Mallory decides what reaches the KDC). */
  fromClient?(frame: Buffer): void | Promise<void>;
  /** A frame the KDC sent (Mallory decides what reaches the victim). */
  fromServer?(frame: Buffer): void | Promise<void>;
  /** Both sockets are closed: last chance to judge this connection. */
  closed?(): void | Promise<void>;
}

export interface AttackModule {
  readonly name: string;
  /** One line for `kds mitm --list`. */
  readonly summary: string;
  /** Where Mallory has to sit for this attack, and what she can reach from there. */
  readonly position: string;
  /** What she does, step by step (docs/attacks.md). */
  readonly action: string;
  /** Against the default (secure) mode. */
  readonly secure: Expectation;
  /** Against `--insecure-dh` clients and a server that allows them. */
  readonly insecure: Expectation;
  /** Needs a client identity of Mallory's own (`kds mitm --identity <home>`). */
  readonly needsIdentity?: boolean;
  /** Once per Mallory, before the first connection (e.g. forge a CA). */
  prepare?(mitm: MitmContext): Promise<void>;
  /** Hooks for one victim connection. */
  connection(link: Link): ConnectionHooks;
}
