// The two ends of the end-to-end key exchange (docs/keys.md, flow 1) and the receiver's acknowledgement of a
// KDC-generated key (flow 2), as pure functions: the client drives them with what the KDC relayed.
//
// Sender (Alice), given Bob's certificate and one of his signed prekeys (key.reserve):
//   1. authenticate Bob's certificate (pinned root, clientAuth, name == bob),
//   2. verify the prekey signature with Bob's certificate key             -> bad_signature
//   3. fresh X25519 ephemeral; Z = X25519(ephemeral, prekey)              -> bad_dh_public
//   4. TH = e2eTranscriptHash(serial, names, cert serials, prekey, ephemeral, expiry)
//   5. K = random 32 bytes; blob = wrapKey(K, HKDF(Z, TH), TH); digest = SHA-256(blob)
//   6. signature = RSA-PSS(sender context || TH || digest)
// Receiver (Bob), given the delivery (key.delivered) and his prekey private:
//   1. authenticate Alice's certificate; 2. recompute TH from HIS view (his name, his cert serial, his
//   prekey public) and verify her signature -> bad_signature; 3. Z, unwrap -> bad_mac;
//   4. receiver signature = RSA-PSS(receiver context || TH || digest), sent with key.verify.
// Anything a relay swaps (prekey, either certificate, either ephemeral, serial, expiry, blob) changes
// TH or the digest on one side only, so a signature check fails and no key is accepted.
import { labOff, type Defences } from '../lab-switches.js';
import { AuthError, InputError } from '../errors.js';
import { signPss, verifyPss, type PrivateKeyInput, type PublicKeyInput } from '../crypto/rsa.js';
import { generateDhKeyPair } from '../crypto/dh.js';
import { randomBytes } from '../crypto/random.js';
import type { ParsedCertificate } from '../pki/x509.js';
import { authenticatePeerCertificate } from './peer-certificate.js';
import { verifyPrekey, type SignedPrekey } from './prekey.js';
import { e2eTranscriptHash, kdcTranscriptHash, signedContent, type SignerRole } from './transcript.js';
import { ciphertextDigest, kdcKeyDigest, AES_KEY_BYTES } from './digest.js';
import { deriveWrappingKey, unwrapKey, wrapKey } from './key-wrap.js';

export interface LocalIdentity {
  name: string;
  certSerial: string;
  privateKey: PrivateKeyInput;
}

/** What key.reserve gives the sender. */
export interface Reservation {
  serial: string;
  expiresAt: number;
  peer: string;
  peerCert: Uint8Array;
  prekey: SignedPrekey;
}

export interface SenderResult {
  /** The body of key.deposit. */
  deposit: { serial: string; ephemeral: Buffer; signature: Buffer; ciphertext: Buffer };
  key: Buffer;
  digest: Buffer;
  transcriptHash: Buffer;
  peerCertSerial: string;
}

export async function runSenderExchange(
  me: LocalIdentity,
  reservation: Reservation,
  opts: { ca: ParsedCertificate; now?: number; defences?: Defences },
): Promise<SenderResult> {
  const peerCert = authenticatePeerCertificate(reservation.peerCert, {
    ca: opts.ca,
    expectName: reservation.peer,
    ...(opts.now === undefined ? {} : { now: opts.now }),
  });
  // LAB SWITCH e2e-transcript-signature: the peer's prekey signature is not verified.
  if (!labOff(opts.defences, 'e2e-transcript-signature'))
    verifyPrekey(
      { name: reservation.peer, certSerial: peerCert.serialHex },
      reservation.prekey,
      peerCert.publicKeyPem,
    );
  const ephemeral = generateDhKeyPair('x25519');
  const shared = ephemeral.deriveSharedSecret(reservation.prekey.publicKey);
  const transcriptHash = e2eTranscriptHash({
    serial: reservation.serial,
    sender: { name: me.name, certSerial: me.certSerial },
    receiver: { name: reservation.peer, certSerial: peerCert.serialHex },
    prekeyId: reservation.prekey.id,
    prekeyPublic: reservation.prekey.publicKey,
    ephemeralPublic: ephemeral.publicKey,
    expiresAt: reservation.expiresAt,
  });
  const key = randomBytes(AES_KEY_BYTES);
  const ciphertext = wrapKey(key, deriveWrappingKey(shared, transcriptHash), transcriptHash);
  const digest = ciphertextDigest(ciphertext);
  const signature = await signPss(signedContent('sender', transcriptHash, digest), me.privateKey);
  return {
    deposit: { serial: reservation.serial, ephemeral: ephemeral.publicKey, signature, ciphertext },
    key,
    digest,
    transcriptHash,
    peerCertSerial: peerCert.serialHex,
  };
}

/** What key.delivered carries for an end-to-end key. */
export interface E2eDelivery {
  serial: string;
  from: string;
  fromCert: Uint8Array;
  to: string;
  toCertSerial: string;
  prekeyId: string;
  ephemeral: Uint8Array;
  signature: Uint8Array;
  ciphertext: Uint8Array;
  expiresAt: number;
}

/** The receiver's own prekey, from his encrypted key store. */
export interface OwnPrekey {
  id: string;
  certSerial: string;
  publicKey: Uint8Array;
  /** Raw 32-byte X25519 private scalar. */
  privateKey: Uint8Array;
}

export interface ReceiverResult {
  key: Buffer;
  digest: Buffer;
  transcriptHash: Buffer;
  /** RSA-PSS over the receiver context, for key.verify. */
  signature: Buffer;
  senderCertSerial: string;
}

export async function runReceiverExchange(
  me: LocalIdentity,
  delivery: E2eDelivery,
  prekey: OwnPrekey,
  opts: { ca: ParsedCertificate; now?: number; defences?: Defences },
): Promise<ReceiverResult> {
  if (delivery.to !== me.name || delivery.prekeyId !== prekey.id) {
    throw new AuthError('bad_signature', 'signature verification failed');
  }
  const senderCert = authenticatePeerCertificate(delivery.fromCert, {
    ca: opts.ca,
    expectName: delivery.from,
    ...(opts.now === undefined ? {} : { now: opts.now }),
  });
  // Bob's own view: his name, the certificate serial he signed the prekey under, his prekey public.
  const transcriptHash = e2eTranscriptHash({
    serial: delivery.serial,
    sender: { name: delivery.from, certSerial: senderCert.serialHex },
    receiver: { name: me.name, certSerial: prekey.certSerial },
    prekeyId: prekey.id,
    prekeyPublic: prekey.publicKey,
    ephemeralPublic: delivery.ephemeral,
    expiresAt: delivery.expiresAt,
  });
  const digest = ciphertextDigest(delivery.ciphertext);
  // LAB SWITCH e2e-transcript-signature: the sender's signature over the key transcript is not verified.
  if (!labOff(opts.defences, 'e2e-transcript-signature'))
    verifyTranscriptSignature('sender', transcriptHash, digest, delivery.signature, senderCert.publicKeyPem);
  const shared = generateDhKeyPair('x25519', prekey.privateKey).deriveSharedSecret(delivery.ephemeral);
  const key = unwrapKey(delivery.ciphertext, deriveWrappingKey(shared, transcriptHash), transcriptHash);
  const signature = await signPss(signedContent('receiver', transcriptHash, digest), me.privateKey);
  return { key, digest, transcriptHash, signature, senderCertSerial: senderCert.serialHex };
}

/** What key.delivered carries for a KDC-generated key (inside the record layer). */
export interface KdcDelivery {
  serial: string;
  from: string;
  fromCertSerial: string;
  to: string;
  toCertSerial: string;
  key: Uint8Array;
  expiresAt: number;
}

export async function acceptKdcKey(
  me: LocalIdentity,
  delivery: KdcDelivery,
): Promise<{ key: Buffer; digest: Buffer; transcriptHash: Buffer; signature: Buffer }> {
  if (delivery.key.length !== AES_KEY_BYTES) throw new InputError('malformed', 'expected a 32-byte key');
  if (delivery.to !== me.name) throw new AuthError('bad_signature', 'signature verification failed');
  const key = Buffer.from(delivery.key);
  const digest = kdcKeyDigest(delivery.serial, key);
  const transcriptHash = kdcTranscriptHash({
    serial: delivery.serial,
    sender: { name: delivery.from, certSerial: delivery.fromCertSerial },
    // The certificate the KDC bound the key to (ours, possibly before a renewal); the KDC checks our
    // signature with the certificate of the session we send key.verify on.
    receiver: { name: me.name, certSerial: delivery.toCertSerial },
    digest,
    expiresAt: delivery.expiresAt,
  });
  const signature = await signPss(signedContent('receiver', transcriptHash, digest), me.privateKey);
  return { key, digest, transcriptHash, signature };
}

/** The KDC's (and each party's) check of a transcript signature. Fixed message on failure. */
export function verifyTranscriptSignature(
  role: SignerRole,
  transcriptHash: Uint8Array,
  digest: Uint8Array,
  signature: Uint8Array,
  publicKey: PublicKeyInput,
): void {
  if (!verifyPss(signedContent(role, transcriptHash, digest), signature, publicKey)) {
    throw new AuthError('bad_signature', 'signature verification failed');
  }
}
