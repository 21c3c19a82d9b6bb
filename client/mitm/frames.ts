// What Mallory can see of a frame without any key (docs/protocol.md, "Frames"): the handshake messages
// and alerts are plaintext msgpack, records are `{t: 'r', c}` with opaque ciphertext. This module names
// a frame for the watch output and rewrites handshake fields for the attacks. Every rewrite goes
// through the real codec (shared/protocol/messages.ts), so the bytes Mallory sends are well-formed kds
// frames: what stops her is the cryptography, not a parse error.
import { ProtocolError } from '../../shared/errors.js';
import {
  decodeFrame,
  encodeFrame,
  type ClientHello,
  type Frame,
  type ServerHello,
} from '../../shared/protocol/messages.js';
import { MAX_FRAME_BYTES } from '../../shared/protocol/limits.js';
import type { HandshakeMode } from '../../shared/protocol/handshake.js';
import { parseCertificate } from '../../shared/pki/x509.js';

export type FrameKind =
  | 'client_hello'
  | 'server_hello'
  | 'client_finish'
  | 'alert'
  | 'record'
  | 'garbage'
  | 'oversize';

export interface FrameView {
  kind: FrameKind;
  frame?: Frame;
  /** Short public facts for the watch line (never key material: there is none in plaintext frames). */
  info: string;
}

/**
 * Classify a frame; never throws (garbage is a kind too). `answering`: the mode of the client_hello a
 * server_hello answers, when known (a resumed server_hello carries no certificate, yet is authenticated
 * by the ticket's psk: docs/protocol.md "Resumption").
 */
export function viewFrame(raw: Uint8Array, answering?: HandshakeMode): FrameView {
  if (raw.length > MAX_FRAME_BYTES) return { kind: 'oversize', info: `over the ${MAX_FRAME_BYTES} B limit` };
  let frame: Frame;
  try {
    frame = decodeFrame(raw);
  } catch (err) {
    return {
      kind: 'garbage',
      info: err instanceof ProtocolError ? `undecodable (${err.code})` : 'undecodable',
    };
  }
  switch (frame.t) {
    case 'client_hello':
      return {
        kind: 'client_hello',
        frame,
        info: `mode=${frame.mode} group=${frame.group} offered=${frame.groups.join(',')}`,
      };
    case 'server_hello':
      return {
        kind: 'server_hello',
        frame,
        info: `group=${frame.group}${
          frame.cert
            ? ` cert CN=${certName(frame.cert)} signed`
            : answering === 'resume'
              ? ' resumed (authenticated by the ticket psk)'
              : ' unauthenticated'
        }`,
      };
    case 'client_finish': {
      const who =
        frame.cert !== undefined
          ? `cert CN=${certName(frame.cert)} signed`
          : frame.name !== undefined
            ? `claims name=${frame.name}`
            : 'anonymous';
      return { kind: 'client_finish', frame, info: who };
    }
    case 'alert':
      return { kind: 'alert', frame, info: `code=${frame.code}` };
    case 'r':
      return { kind: 'record', frame, info: 'ciphertext' };
  }
}

/** The subject CN of a certificate carried in a handshake message (public: certificates travel in clear). */
export function certName(der: Uint8Array): string {
  try {
    return parseCertificate(Buffer.from(der)).subjectCN;
  } catch {
    return '?';
  }
}

export function rewriteClientHello(raw: Uint8Array, edit: (hello: ClientHello) => void): Buffer {
  const frame = decodeFrame(raw);
  if (frame.t !== 'client_hello')
    throw new ProtocolError('unexpected_message', `expected client_hello, got ${frame.t}`);
  edit(frame);
  return encodeFrame(frame);
}

export function rewriteServerHello(raw: Uint8Array, edit: (hello: ServerHello) => void): Buffer {
  const frame = decodeFrame(raw);
  if (frame.t !== 'server_hello')
    throw new ProtocolError('unexpected_message', `expected server_hello, got ${frame.t}`);
  edit(frame);
  return encodeFrame(frame);
}

/** A record frame with its ciphertext transformed (bit flips, a cut tag). */
export function rewriteRecord(raw: Uint8Array, edit: (ciphertext: Buffer) => Buffer): Buffer {
  const frame = decodeFrame(raw);
  if (frame.t !== 'r') throw new ProtocolError('unexpected_message', `expected a record, got ${frame.t}`);
  return encodeFrame({ t: 'r', c: edit(Buffer.from(frame.c)) });
}
