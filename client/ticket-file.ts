// The client's resumption ticket (docs/protocol.md "Resumption"): `<home>/ticket`, 0600, holding the
// last ticket the KDC pushed, its psk and the certificate serial it belongs to. The psk is a secret (with
// the ticket it opens a session as this client, until the ticket expires), so the file is sealed like
// the key store's files: "KDSTKT1\0" || nonce (12) || AES-256-GCM(file key, JSON, AAD) || tag (16), the
// file key = HKDF-SHA256(IKM = the identity private key as PKCS#8 DER, salt = "kds v1 client ticket",
// info = name): whoever can use the identity key can resume, nobody else; KDS_CLIENT_PASSPHRASE on
// key.pem protects the ticket too.
//
// A ticket serves every session until a session is given a new one (client/ticket-renewal.ts: when it is
// due, or after a full handshake), which replaces the file; one the KDC refuses as `ticket_invalid` is
// discarded. Anything wrong with the file (another identity's, unreadable, expired, for a certificate the
// home no longer holds) simply means "no ticket": the next session is a full handshake.
import type { KeyObject } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { hkdfSha256 } from '../shared/crypto/hkdf.js';
import { openBlob, sealBlob } from '../shared/keys/aes-gcm.js';
import { writeFileAtomic } from '../io/fs-atomic.js';

export const TICKET_FILE = 'ticket';
const MAGIC = Buffer.from('KDSTKT1\0', 'latin1');
const LABEL = 'kds v1 client ticket';

export interface StoredTicket {
  ticket: Buffer;
  psk: Buffer;
  expiresAt: number;
  /** The certificate the session that received it authenticated with. */
  serialHex: string;
}

function fileKey(identityKey: KeyObject, name: string): Buffer {
  const ikm = identityKey.export({ type: 'pkcs8', format: 'der' });
  return hkdfSha256(ikm, Buffer.from(LABEL, 'latin1'), Buffer.from(name, 'utf8'), 32);
}

function aad(name: string): Buffer {
  return Buffer.from(`${LABEL}\0${name}`, 'utf8');
}

export function saveTicket(home: string, name: string, identityKey: KeyObject, t: StoredTicket): void {
  const json = JSON.stringify({
    ticket: t.ticket.toString('base64'),
    psk: t.psk.toString('base64'),
    expiresAt: t.expiresAt,
    serialHex: t.serialHex,
  });
  const sealed = sealBlob(fileKey(identityKey, name), Buffer.from(json, 'utf8'), aad(name));
  writeFileAtomic(join(home, TICKET_FILE), Buffer.concat([MAGIC, sealed]));
}

/**
 * The ticket in the home if it is usable for the certificate `serialHex` at `now` (the file stays: the
 * next sessions resume with it too); undefined otherwise, and an unusable file is removed.
 */
export function readTicket(
  home: string,
  name: string,
  identityKey: KeyObject,
  serialHex: string,
  now = Date.now(),
): StoredTicket | undefined {
  const path = join(home, TICKET_FILE);
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch {
    return undefined;
  }
  const usable = openTicketFile(raw, name, identityKey, serialHex, now);
  if (usable === undefined) discardTicket(home);
  return usable;
}

function openTicketFile(
  raw: Buffer,
  name: string,
  identityKey: KeyObject,
  serialHex: string,
  now: number,
): StoredTicket | undefined {
  if (!raw.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  try {
    const json = JSON.parse(
      openBlob(fileKey(identityKey, name), raw.subarray(MAGIC.length), aad(name)).toString('utf8'),
    ) as { ticket: string; psk: string; expiresAt: number; serialHex: string };
    const t: StoredTicket = {
      ticket: Buffer.from(json.ticket, 'base64'),
      psk: Buffer.from(json.psk, 'base64'),
      expiresAt: json.expiresAt,
      serialHex: json.serialHex,
    };
    if (t.serialHex !== serialHex || !(now < t.expiresAt) || t.psk.length !== 32) return undefined;
    return t;
  } catch {
    return undefined;
  }
}

/** Forget the home's ticket (the KDC refused it, or it is unusable). */
export function discardTicket(home: string): void {
  rmSync(join(home, TICKET_FILE), { force: true });
}
