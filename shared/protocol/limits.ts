// Explicit limits of the kds wire protocol v1 (docs/protocol.md, "Framing and limits"). Every decoder
// enforces them before it allocates or recurses; the ws server sets maxPayload = MAX_FRAME_BYTES.

export const PROTOCOL_VERSION = 1;

/** Largest WebSocket message (one frame = one msgpack value). Bigger -> frame_too_large, close 1009. */
export const MAX_FRAME_BYTES = 64 * 1024;
/** MITM lab only, with the frame-limits switch off (shared/lab-switches.ts): the KDC reads up to this. */
export const LAB_MAX_FRAME_BYTES = 1024 * 1024;
/** Deepest nesting of maps/arrays; the top-level map is depth 1. Checked on the raw bytes, iteratively. */
export const MAX_DEPTH = 8;
/** Longest msgpack string, in UTF-8 bytes (PEM CSRs and certificates are the big ones, ~1-3 KiB). */
export const MAX_STRING = 16 * 1024;
/** Longest msgpack binary: a record's ciphertext can fill the frame; schemas set tighter per-field caps. */
export const MAX_BYTES = MAX_FRAME_BYTES;
/** Most elements in one array, or entries in one map. */
export const MAX_ARRAY = 1024;

/** Largest application message inside one record (leaves room for the record envelope and the tag). */
export const MAX_RECORD_PLAINTEXT = MAX_FRAME_BYTES - 64;
/**
 * Records per direction per session. RFC 8446 section 5.3: "If a TLS implementation would need to wrap
 * a sequence number, it MUST either rekey (Section 4.6.3) or terminate the connection." kds terminates,
 * far below 2^64 and below the AES-GCM usage bound for one key (2^32 invocations, NIST SP 800-38D 8.3);
 * sessions are cheap to re-establish, so there is no rekey message.
 */
export const SEQUENCE_LIMIT = 2 ** 32;

export const NONCE_BYTES = 32;
export const MAC_BYTES = 32;
/** A resumption ticket (shared/protocol/ticket.ts): key id, nonce, sealed contents and tag, with room. */
export const MAX_TICKET_BYTES = 512;
/** A DER certificate in a handshake message (RSA-8192 certificates are ~2 KiB). */
export const MAX_CERT_BYTES = 16 * 1024;
/** An RSA signature: the modulus size, up to RSA-8192. */
export const MAX_SIGNATURE_BYTES = 1024;
/** Group names offered in one client_hello. */
export const MAX_GROUPS = 8;
/** Request ids are uint32: the client picks them, unique among its requests in flight. */
export const MAX_REQUEST_ID = 2 ** 32 - 1;
