#!/usr/bin/env python3
"""An independent kds protocol v1 client, written in Python from the documents alone.

It was written from docs/protocol.md (framing, handshake, transcript, key schedule, records,
resumption, certificates, errors), docs/messages.md (every message body) and docs/keys.md (key
distribution: transcripts, digests, receiver signatures, message AAD), plus the vector files
test/vectors/protocol-v1.json and keys-v1.json, without reading any kds source. It must stay that
way: it imports nothing of kds and reads no TypeScript. Its own MessagePack codec and RFC 6455
WebSocket client are below; the only dependency is the `cryptography` package (38 or newer).

test/interop/python-client.test.ts runs it in the test suite (README.md here says how by hand):

  kds_client.py vectors --protocol test/vectors/protocol-v1.json --keys test/vectors/keys-v1.json
      re-derives every value of both vector files (all five handshake cases, the key flows).
  kds_client.py live --server ws://HOST:PORT/kds --pin FINGERPRINT --home ALICE_HOME
                     --peer bob --peer-home BOB_HOME
      against a running KDC: GET /ca.pem and the pin; an auth handshake over x25519; ping,
      cert.status, key.list, key.create (KDC mode) to the peer, key.get, msg.send; as the peer an
      auth handshake over ffdhe2048, key.sync, key.verify with the receiver signature, the message
      decrypted, key.ack; session.ticket, a resumed handshake and requests in it, among them a
      key.create.batch the peer verifies with one key.verify.batch; a resumption with a wrong psk
      refused with ticket_invalid.
  kds_client.py edges --server URL --pin FINGERPRINT --home ALICE_HOME --admin-dir DATA_DIR/admin
                      --ca-passphrase-file FILE
      negative cases and other roles (kds_edges.py): refused upgrades (404, 403), bad frames and
      client_hellos, a bad client MAC, request errors, a tampered record, an admin session issuing a
      token, enrollment with a key and CSR made here, then self-revocation.

Output: one line per check, "ok   <check>" or "FAIL <check>: <why>", "info <name> <value>" lines
for the caller, and a last line "<N> passed, <M> failed". Exit status 0 only when every check passed
(1 on a failure, 2 on a usage error).
"""
import argparse, base64, hashlib, hmac, json, os, socket, struct, sys, time, traceback
from datetime import timezone
from urllib.parse import urlparse

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, x25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


# ----------------------------------------------------------------------------- check reporting
class Checks:
    """Prints one line per check and counts them."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, name):
        self.passed += 1
        print("ok   " + name, flush=True)

    def fail(self, name, why):
        self.failed += 1
        print("FAIL %s: %s" % (name, why), flush=True)

    def that(self, name, cond, why="not as expected"):
        if cond:
            self.ok(name)
        else:
            self.fail(name, why)
        return cond

    def equal(self, name, got, want):
        if got == want:
            self.ok(name)
            return True
        show = lambda v: v.hex()[:160] if isinstance(v, (bytes, bytearray)) else repr(v)[:160]
        self.fail(name, "got %s, want %s" % (show(got), show(want)))
        return False

    def refused(self, name, fn, code, close=None):
        """fn() must raise ProtoError `code` (and, when given, the WebSocket close code `close`)."""
        try:
            fn()
        except ProtoError as e:
            got_close = e.close[0] if e.close else None
            if e.code == code and (close is None or got_close == close):
                self.ok("%s -> %s%s" % (name, code, "" if close is None else " (close %d)" % close))
            else:
                self.fail(name, "want %s/close %s, got %s/close %s (%s)" % (code, close, e.code, got_close, e))
            return
        self.fail(name, "accepted; want %s" % code)

    def summary(self):
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        return 0 if self.failed == 0 and self.passed > 0 else 1


# ----------------------------------------------------------------------------- msgpack
class MsgpackError(Exception):
    pass


def mp_encode(v):
    out = bytearray()
    _enc(v, out)
    return bytes(out)


def _enc(v, o):
    if v is None:
        o.append(0xC0)
    elif v is True:
        o.append(0xC3)
    elif v is False:
        o.append(0xC2)
    elif isinstance(v, int):
        if v < 0:
            raise MsgpackError("negative ints not used by kds")
        if v < 0x80:
            o.append(v)
        elif v < 0x100:
            o += b"\xcc" + struct.pack(">B", v)
        elif v < 0x10000:
            o += b"\xcd" + struct.pack(">H", v)
        elif v < 0x100000000:
            o += b"\xce" + struct.pack(">I", v)
        else:
            o += b"\xcf" + struct.pack(">Q", v)
    elif isinstance(v, str):
        b = v.encode("utf-8")
        n = len(b)
        if n < 32:
            o.append(0xA0 | n)
        elif n < 0x100:
            o += b"\xd9" + struct.pack(">B", n)
        elif n < 0x10000:
            o += b"\xda" + struct.pack(">H", n)
        else:
            o += b"\xdb" + struct.pack(">I", n)
        o += b
    elif isinstance(v, (bytes, bytearray)):
        n = len(v)
        if n < 0x100:
            o += b"\xc4" + struct.pack(">B", n)
        elif n < 0x10000:
            o += b"\xc5" + struct.pack(">H", n)
        else:
            o += b"\xc6" + struct.pack(">I", n)
        o += bytes(v)
    elif isinstance(v, (list, tuple)):
        n = len(v)
        if n < 16:
            o.append(0x90 | n)
        elif n < 0x10000:
            o += b"\xdc" + struct.pack(">H", n)
        else:
            o += b"\xdd" + struct.pack(">I", n)
        for x in v:
            _enc(x, o)
    elif isinstance(v, dict):
        n = len(v)
        if n < 16:
            o.append(0x80 | n)
        elif n < 0x10000:
            o += b"\xde" + struct.pack(">H", n)
        else:
            o += b"\xdf" + struct.pack(">I", n)
        for k, x in v.items():
            _enc(k, o)
            _enc(x, o)
    else:
        raise MsgpackError("cannot encode %r" % type(v))


MAX_DEPTH, MAX_STRING, MAX_BYTES, MAX_ARRAY = 8, 16384, 65536, 1024


class _Dec:
    def __init__(self, b):
        self.b = b
        self.p = 0

    def take(self, n):
        if self.p + n > len(self.b):
            raise MsgpackError("truncated")
        r = self.b[self.p:self.p + n]
        self.p += n
        return r

    def u(self, n):
        return int.from_bytes(self.take(n), "big")

    def value(self, depth):
        t = self.u(1)
        if t <= 0x7F:
            return t
        if t >= 0xE0:
            return t - 0x100
        if 0x80 <= t <= 0x8F:
            return self.map(t & 0x0F, depth)
        if 0x90 <= t <= 0x9F:
            return self.arr(t & 0x0F, depth)
        if 0xA0 <= t <= 0xBF:
            return self.str(t & 0x1F)
        if t == 0xC0:
            return None
        if t == 0xC2:
            return False
        if t == 0xC3:
            return True
        if t in (0xC4, 0xC5, 0xC6):
            n = self.u({0xC4: 1, 0xC5: 2, 0xC6: 4}[t])
            if n > MAX_BYTES:
                raise MsgpackError("bin too long")
            return bytes(self.take(n))
        if t == 0xCA:
            return struct.unpack(">f", self.take(4))[0]
        if t == 0xCB:
            return struct.unpack(">d", self.take(8))[0]
        if t in (0xCC, 0xCD, 0xCE, 0xCF):
            return self.u({0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}[t])
        if t in (0xD0, 0xD1, 0xD2, 0xD3):
            n = {0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}[t]
            return int.from_bytes(self.take(n), "big", signed=True)
        if t in (0xD9, 0xDA, 0xDB):
            return self.str(self.u({0xD9: 1, 0xDA: 2, 0xDB: 4}[t]))
        if t in (0xDC, 0xDD):
            return self.arr(self.u(2 if t == 0xDC else 4), depth)
        if t in (0xDE, 0xDF):
            return self.map(self.u(2 if t == 0xDE else 4), depth)
        raise MsgpackError("refused type byte 0x%02x" % t)

    def str(self, n):
        if n > MAX_STRING:
            raise MsgpackError("string too long")
        return bytes(self.take(n)).decode("utf-8")  # strict: invalid utf-8 raises

    def arr(self, n, depth):
        if depth + 1 > MAX_DEPTH or n > MAX_ARRAY:
            raise MsgpackError("depth/array limit")
        return [self.value(depth + 1) for _ in range(n)]

    def map(self, n, depth, offsets=None):
        if depth + 1 > MAX_DEPTH or n > MAX_ARRAY:
            raise MsgpackError("depth/map limit")
        d = {}
        for _ in range(n):
            kp = self.p
            k = self.value(depth + 1)
            if not isinstance(k, str) or k in d or k == "__proto__":
                raise MsgpackError("bad map key")
            if offsets is not None:
                offsets.append((k, kp))
            d[k] = self.value(depth + 1)
        return d


def mp_decode_frame(b):
    """Decode a frame (top-level map). Returns (dict, [(key, key_offset), ...])."""
    d = _Dec(b)
    t = d.u(1)
    if 0x80 <= t <= 0x8F:
        n = t & 0x0F
    elif t == 0xDE:
        n = d.u(2)
    elif t == 0xDF:
        n = d.u(4)
    else:
        raise MsgpackError("top level is not a map")
    offs = []
    m = d.map(n, 0, offs)
    if d.p != len(b):
        raise MsgpackError("trailing bytes")
    return m, offs


def cut(frame, key):
    """docs/protocol.md Transcript: bytes up to key `key`, map count lowered."""
    m, offs = mp_decode_frame(frame)
    idx = [k for k, _ in offs].index(key)
    removed = len(offs) - idx
    pos = offs[idx][1]
    t = frame[0]
    if 0x80 <= t <= 0x8F:
        hdr = bytes([0x80 | ((t & 0x0F) - removed)])
        rest = frame[1:pos]
    elif t == 0xDE:
        hdr = b"\xde" + struct.pack(">H", len(offs) - removed)
        rest = frame[3:pos]
    else:
        hdr = b"\xdf" + struct.pack(">I", len(offs) - removed)
        rest = frame[5:pos]
    return hdr + rest


# ----------------------------------------------------------------------------- crypto helpers
def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def hmac256(k, m):
    return hmac.new(k, m, hashlib.sha256).digest()


def hkdf_extract(salt, ikm):
    return hmac256(salt if salt else b"\x00" * 32, ikm)


def hkdf_expand(prk, info, L):
    out, t, i = b"", b"", 1
    while len(out) < L:
        t = hmac256(prk, t + info + bytes([i]))
        out += t
        i += 1
    return out[:L]


def K(th, ikm, label, L):
    return hkdf_expand(hkdf_extract(th, ikm), label.encode(), L)


def _ffdhe2048_prime():
    # RFC 7919: p = 2^b - 2^{b-64} + {[2^{b-130} e] + X } * 2^64 - 1, b=2048, X=560316
    prec = 2200
    one = 1 << prec
    e, term, k = 0, one, 0
    while term:
        e += term
        k += 1
        term //= k
    fl = (e << (2048 - 130)) >> prec  # floor(2^1918 * e)
    return (1 << 2048) - (1 << 1984) + (fl + 560316) * (1 << 64) - 1


FFDHE2048_P = _ffdhe2048_prime()


class DH:
    def __init__(self, group, priv=None):
        self.group = group
        if group == "x25519":
            self.sk = x25519.X25519PrivateKey.from_private_bytes(priv) if priv else x25519.X25519PrivateKey.generate()
            self.public = self.sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        elif group == "ffdhe2048":
            self.x = int.from_bytes(priv, "big") if priv else int.from_bytes(os.urandom(32), "big")
            self.public = pow(2, self.x, FFDHE2048_P).to_bytes(256, "big")
        else:
            raise ValueError(group)

    def shared(self, peer):
        if self.group == "x25519":
            if len(peer) != 32:
                raise ProtoError("bad_dh_public", "share length")
            z = self.sk.exchange(x25519.X25519PublicKey.from_public_bytes(peer))
            if hmac.compare_digest(z, b"\x00" * 32):
                raise ProtoError("bad_dh_public", "zero shared secret")
            return z
        if len(peer) != 256:
            raise ProtoError("bad_dh_public", "share length")
        y = int.from_bytes(peer, "big")
        if not (1 < y < FFDHE2048_P - 1):
            raise ProtoError("bad_dh_public", "Y out of range")
        return pow(y, self.x, FFDHE2048_P).to_bytes(256, "big")


class ProtoError(Exception):
    """A protocol error with its docs/protocol.md code; `close` is the peer's (code, reason) if known."""

    def __init__(self, code, msg="", close=None):
        super().__init__("%s: %s" % (code, msg))
        self.code = code
        self.close = close


SRV_CV = b"kds v1 server CertificateVerify\x00"
CLI_CV = b"kds v1 client CertificateVerify\x00"


def traffic_keys(th_final, ikm):
    return {
        "c2s_key": K(th_final, ikm, "kds v1 c2s key", 32),
        "c2s_iv": K(th_final, ikm, "kds v1 c2s iv", 12),
        "s2c_key": K(th_final, ikm, "kds v1 s2c key", 32),
        "s2c_iv": K(th_final, ikm, "kds v1 s2c iv", 12),
        "session_id": K(th_final, ikm, "kds v1 session id", 16),
        "exporter_secret": K(th_final, ikm, "kds v1 exporter", 32),
        "resumption_secret": K(th_final, ikm, "kds v1 resumption", 32),
    }


def finished_keys(th_hello, ikm):
    return (K(th_hello, ikm, "kds v1 server finished", 32), K(th_hello, ikm, "kds v1 client finished", 32))


def record_nonce(iv, seq):
    return bytes(a ^ b for a, b in zip(iv, b"\x00" * 4 + struct.pack(">Q", seq)))


def seal_record(key, iv, seq, direction, plaintext):
    c = AESGCM(key).encrypt(record_nonce(iv, seq), plaintext, ("kds v1 " + direction).encode())
    return mp_encode({"t": "r", "c": c})


def open_record(key, iv, seq, direction, frame):
    m, _ = mp_decode_frame(frame)
    if m.get("t") != "r":
        raise ProtoError("unexpected_message", "expected record, got %r" % m.get("t"))
    c = m["c"]
    if len(c) < 16:
        raise ProtoError("record_auth", "short")
    try:
        return AESGCM(key).decrypt(record_nonce(iv, seq), c, ("kds v1 " + direction).encode())
    except Exception:
        raise ProtoError("record_auth", "record authentication failed")


def binder_for(ch_without_binder_cut, psk):
    bk = hkdf_expand(hkdf_extract(b"", psk), b"kds v1 resumption binder", 32)
    return bk, hmac256(bk, sha256(ch_without_binder_cut))


def export(exporter_secret, label, L):
    return hkdf_expand(hkdf_extract(b"", exporter_secret), b"kds v1 exporter " + label.encode(), L)



# ----------------------------------------------------------------------------- keys (docs/keys.md)
def fields(label, *fs):
    out = label.encode() + b"\x00"
    for f in fs:
        if isinstance(f, str):
            f = f.encode()
        out += struct.pack(">H", len(f)) + f
    return out


u64 = lambda n: struct.pack(">Q", n)


def kdc_digest(serial, key):
    return sha256(b"kds v1 kdc key digest\x00" + serial.encode() + key)


def kdc_th(serial, frm, frm_cs, to, to_cs, digest, expires_at):
    return sha256(fields("kds v1 key exchange kdc", serial, frm, frm_cs, to, to_cs, digest, u64(expires_at)))


def e2e_th(serial, frm, frm_cs, to, to_cs, prekey_id, prekey_pub, eph, expires_at):
    return sha256(fields("kds v1 key exchange e2e", serial, frm, frm_cs, to, to_cs, prekey_id, prekey_pub, eph, u64(expires_at)))


def msg_aad(serial, frm, to, seq):
    return fields("kds v2 message", serial, frm, to, u64(seq))


# ----------------------------------------------------------------------------- vectors
def vector_signer(role, data):
    # The vectors' stand-in for RSA-PSS (docs/protocol.md "Test vectors"): deterministic bytes.
    return sha256(b"kds vector signer " + role.encode() + data) * 8


def run_vectors(path, checks):
    V = json.load(open(path))
    h = bytes.fromhex
    for c in V["cases"]:
        I, M, T, Kv = c["inputs"], c["messages"], c["transcript"], c["keys"]
        mode, group = c["mode"], c["group"]

        def check(what, got, want):
            if want is not None:
                checks.equal("%s: %s" % (c["name"], what), got, h(want))

        cdh = DH(group, h(I["client_dh_private"]))
        sdh = DH(group, h(I["server_dh_private"]))
        ch = {"t": "client_hello", "v": 1, "mode": mode, "groups": c["groups"], "group": group,
              "nonce": h(I["client_nonce"]), "share": cdh.public}
        R = c.get("resumption")
        if mode == "resume":
            psk = h(R["psk"])
            # the ticket, sealed here from its given contents
            tk = AESGCM(h(R["ticket_key"])).encrypt(h(R["ticket_nonce"]), h(R["ticket_contents"]),
                                                    b"kds v1 ticket\x00" + h(R["ticket_key_id"]))
            ticket = h(R["ticket_key_id"]) + h(R["ticket_nonce"]) + tk
            check("ticket (sealed)", ticket, R["ticket"])
            check("ticket_aad", b"kds v1 ticket\x00" + h(R["ticket_key_id"]), R["ticket_aad"])
            ch["ticket"] = ticket
            ch["binder"] = b"\x00" * 32
            pre = cut(mp_encode(ch), "binder")
            check("th_binder", sha256(pre), R["th_binder"])
            bk, binder = binder_for(pre, psk)
            check("binder_key", bk, R["binder_key"])
            check("binder", binder, R["binder"])
            ch["binder"] = binder
        CH = mp_encode(ch)
        check("client_hello bytes", CH, M["client_hello"])
        Z = cdh.shared(sdh.public)
        check("shared_secret", Z, Kv["shared_secret"])
        check("shared_secret (server side)", sdh.shared(cdh.public), Kv["shared_secret"])
        ikm = Z + (h(R["psk"]) if mode == "resume" else b"")
        if R:
            check("ikm", ikm, R["ikm"])
        sh = {"t": "server_hello", "v": 1, "group": group, "nonce": h(I["server_nonce"]), "share": sdh.public}
        authsrv = mode in ("auth", "enroll")
        if authsrv:
            sh["cert"] = h(I["server_cert"])
            sh["sig"] = b"\x00" * 256
        sh["mac"] = b"\x00" * 32
        th_hello = sha256(CH + cut(mp_encode(sh), "sig" if authsrv else "mac"))
        check("th_hello", th_hello, T["th_hello"])
        sfk, cfk = finished_keys(th_hello, ikm)
        check("server_finished_key", sfk, Kv["server_finished_key"])
        check("client_finished_key", cfk, Kv["client_finished_key"])
        if authsrv:
            sin = SRV_CV + th_hello
            check("server_signature_input", sin, T["server_signature_input"])
            sh["sig"] = vector_signer("server", sin)
            check("server signature", sh["sig"], c["signatures"]["server"])
        th_smac = sha256(CH + cut(mp_encode(sh), "mac"))
        check("th_server_mac", th_smac, T["th_server_mac"])
        sh["mac"] = hmac256(sfk, th_smac)
        check("server mac", sh["mac"], c["macs"]["server"])
        SH = mp_encode(sh)
        check("server_hello bytes", SH, M["server_hello"])
        cf = {"t": "client_finish"}
        if mode == "auth":
            cf["cert"] = h(I["client_cert"])
            cf["sig"] = b"\x00" * 256
        if mode == "insecure" and I.get("client_name"):
            cf["name"] = I["client_name"]
        cf["mac"] = b"\x00" * 32
        if mode == "auth":
            th_csig = sha256(CH + SH + cut(mp_encode(cf), "sig"))
            check("th_client_sig", th_csig, T["th_client_sig"])
            cin = CLI_CV + th_csig
            check("client_signature_input", cin, T["client_signature_input"])
            cf["sig"] = vector_signer("client", cin)
            check("client signature", cf["sig"], c["signatures"]["client"])
        th_cmac = sha256(CH + SH + cut(mp_encode(cf), "mac"))
        check("th_client_mac", th_cmac, T["th_client_mac"])
        cf["mac"] = hmac256(cfk, th_cmac)
        check("client mac", cf["mac"], c["macs"]["client"])
        CF = mp_encode(cf)
        check("client_finish bytes", CF, M["client_finish"])
        th_final = sha256(CH + SH + CF)
        check("th_final", th_final, T["th_final"])
        tk = traffic_keys(th_final, ikm)
        for name in ("c2s_key", "c2s_iv", "s2c_key", "s2c_iv", "session_id", "exporter_secret", "resumption_secret"):
            if name == "resumption_secret" and mode not in ("auth", "resume"):
                continue
            check(name, tk[name], Kv[name])
        for i, r in enumerate(c["records"]):
            d = r["direction"]
            key, iv = tk[d + "_key"], tk[d + "_iv"]
            fr = seal_record(key, iv, r["sequence"], d, h(r["plaintext"]))
            check("record %d frame (%s seq %d)" % (i, d, r["sequence"]), fr, r["frame"])
            pt = open_record(key, iv, r["sequence"], d, h(r["frame"]))
            check("record %d opens" % i, pt, r["plaintext"])
            m, _ = mp_decode_frame(pt)
            # the decoded plaintext re-encodes byte for byte (smallest forms, field order)
            check("record %d plaintext re-encodes" % i, mp_encode(m), r["plaintext"])


def run_key_vectors(path, checks):
    V = json.load(open(path))
    h = bytes.fromhex
    I = V["inputs"]

    def check(what, got, want):
        checks.equal("keys: " + what, got, h(want))

    pk = x25519.X25519PrivateKey.from_private_bytes(h(I["prekey_private"]))
    pub = pk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    check("prekey public", pub, V["prekey"]["public"])
    check("prekey signed data", fields("kds v1 prekey", I["receiver_name"], I["receiver_cert_serial"], I["prekey_id"], pub), V["prekey"]["signed_data"])
    check("last-resort signed data", fields("kds v1 last-resort prekey", I["receiver_name"], I["receiver_cert_serial"], I["prekey_id"], pub), V["prekey"]["last_resort_signed_data"])
    ek = x25519.X25519PrivateKey.from_private_bytes(h(I["sender_ephemeral_private"]))
    epub = ek.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    E = V["e2e"]
    check("e2e ephemeral public", epub, E["sender_ephemeral_public"])
    tf = fields("kds v1 key exchange e2e", I["key_serial"], I["sender_name"], I["sender_cert_serial"], I["receiver_name"], I["receiver_cert_serial"], I["prekey_id"], pub, epub, u64(I["expires_at"]))
    check("e2e transcript fields", tf, E["transcript_fields"])
    th = sha256(tf)
    check("e2e TH", th, E["transcript_hash"])
    check("e2e TH (e2e_th)", e2e_th(I["key_serial"], I["sender_name"], I["sender_cert_serial"], I["receiver_name"], I["receiver_cert_serial"], I["prekey_id"], pub, epub, I["expires_at"]), E["transcript_hash"])
    z = ek.exchange(pk.public_key())
    check("e2e X25519", z, E["shared_secret"])
    wk = K(th, z, "kds v1 e2e key wrap", 32)
    check("wrapping key", wk, E["wrapping_key"])
    ct = h(I["wrap_nonce"]) + AESGCM(wk).encrypt(h(I["wrap_nonce"]), h(I["key"]), th)
    check("e2e ciphertext", ct, E["ciphertext"])
    dg = sha256(ct)
    check("e2e digest", dg, E["digest"])
    check("sender signed content", b"kds v1 key sender signature\x00" + th + dg, E["sender_signed_content"])
    check("receiver signed content", b"kds v1 key receiver signature\x00" + th + dg, E["receiver_signed_content"])
    Kd = V["kdc"]
    dg = kdc_digest(I["key_serial"], h(I["key"]))
    check("kdc digest", dg, Kd["digest"])
    tf = fields("kds v1 key exchange kdc", I["key_serial"], I["sender_name"], I["sender_cert_serial"], I["receiver_name"], I["receiver_cert_serial"], dg, u64(I["expires_at"]))
    check("kdc transcript fields", tf, Kd["transcript_fields"])
    check("kdc TH", sha256(tf), Kd["transcript_hash"])
    check("kdc TH (kdc_th)", kdc_th(I["key_serial"], I["sender_name"], I["sender_cert_serial"], I["receiver_name"], I["receiver_cert_serial"], dg, I["expires_at"]), Kd["transcript_hash"])
    check("kdc receiver signed content", b"kds v1 key receiver signature\x00" + sha256(tf) + dg, Kd["receiver_signed_content"])
    aad = msg_aad(I["key_serial"], I["sender_name"], I["receiver_name"], I["message_seq"])
    check("message aad", aad, V["message"]["aad"])
    check("message ciphertext", AESGCM(h(I["key"])).encrypt(h(I["message_nonce"]), h(I["message_plaintext"]), aad), V["message"]["ciphertext"])


# ----------------------------------------------------------------------------- websocket (RFC 6455)
class WS:
    def __init__(self, url):
        u = urlparse(url)
        assert u.scheme == "ws"
        self.s = socket.create_connection((u.hostname, u.port or 80), timeout=15)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n") % (u.path or "/", u.hostname, u.port or 80, key)
        self.s.sendall(req.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.s.recv(4096)
            if not chunk:
                raise IOError("closed during upgrade")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise IOError("upgrade refused: " + lines[0])
        hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
        want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        if hdrs.get("sec-websocket-accept") != want:
            raise IOError("bad Sec-WebSocket-Accept")
        self.close_info = None

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([0x80 | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.s.sendall(hdr + mask + masked)

    def send(self, data):
        self._send(0x2, data)

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise IOError("connection closed")
            self.buf += chunk
        r, self.buf = self.buf[:n], self.buf[n:]
        return r

    def recv(self):
        """Return the next binary message; raises on close (close_info set)."""
        msg, op0 = b"", None
        while True:
            b0, b1 = self._read(2)
            fin, op = b0 & 0x80, b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            if b1 & 0x80:
                mk = self._read(4)
                p = bytes(b ^ mk[i & 3] for i, b in enumerate(self._read(n)))
            else:
                p = self._read(n)
            if op == 0x8:
                code = struct.unpack(">H", p[:2])[0] if len(p) >= 2 else None
                self.close_info = (code, p[2:].decode("utf-8", "replace"))
                try:
                    self._send(0x8, p[:2])
                except OSError:
                    pass
                raise ProtoError("session_closed", "close %s %s" % self.close_info, self.close_info)
            if op == 0x9:
                self._send(0xA, p)
                continue
            if op == 0xA:
                continue
            if op in (0x1, 0x2):
                op0 = op
            msg += p
            if fin:
                if op0 == 0x1:
                    raise ProtoError("bad_frame", "text message")
                return msg

    def close(self, code=1000, reason=""):
        try:
            self._send(0x8, struct.pack(">H", code) + reason.encode())
            self.s.settimeout(2)
            try:
                while True:
                    self.recv()
            except Exception:
                pass
        finally:
            self.s.close()


# ----------------------------------------------------------------------------- live client
def validity(cert):
    """(notBefore, notAfter) as epoch seconds. cryptography 42 added the *_utc properties and
    deprecated the naive ones (which are UTC); Debian 12 ships 38, which has only those."""
    if hasattr(cert, "not_valid_before_utc"):
        return cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()
    return (cert.not_valid_before.replace(tzinfo=timezone.utc).timestamp(),
            cert.not_valid_after.replace(tzinfo=timezone.utc).timestamp())


def serial_hex(cert):
    """docs/protocol.md Serials: lowercase hex of the serial's octets (an even number of digits)."""
    s = "%x" % cert.serial_number
    return s if len(s) % 2 == 0 else "0" + s


def check_kdc_cert(der, root):
    cert = x509.load_der_x509_certificate(der)
    # chain to the pinned root
    if cert.issuer != root.subject:
        raise ProtoError("cert_unknown_issuer")
    try:
        root.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        raise ProtoError("cert_bad_signature")
    now = time.time()
    for cc in (cert, root):
        not_before, not_after = validity(cc)
        if now < not_before:
            raise ProtoError("cert_not_yet_valid")
        if now > not_after:
            raise ProtoError("cert_expired")
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    if bc.ca:
        raise ProtoError("cert_wrong_usage", "CA as leaf")
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not ku.digital_signature:
            raise ProtoError("cert_wrong_usage")
    except x509.ExtensionNotFound:
        pass
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    if ExtendedKeyUsageOID.SERVER_AUTH not in eku:
        raise ProtoError("cert_wrong_usage")
    cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        dns = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns = []
    if "kdc" not in cns and "kdc" not in [d.lower() for d in dns]:
        raise ProtoError("cert_wrong_name")
    pub = cert.public_key()
    if not isinstance(pub, rsa.RSAPublicKey) or pub.public_numbers().e != 65537:
        raise ProtoError("unsupported_key")
    return pub


PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


class Session:
    def __init__(self, ws, keys, ready):
        self.ws, self.k, self.ready = ws, keys, ready
        self.cseq, self.sseq, self.next_id = 0, 1, 1
        self.pushes = []

    def send_msg(self, m):
        self.ws.send(seal_record(self.k["c2s_key"], self.k["c2s_iv"], self.cseq, "c2s", mp_encode(m)))
        self.cseq += 1

    def recv_msg(self):
        pt = open_record(self.k["s2c_key"], self.k["s2c_iv"], self.sseq, "s2c", self.ws.recv())
        self.sseq += 1
        return mp_decode_frame(pt)[0]

    def request(self, t, body):
        rid = self.next_id
        self.next_id += 1
        self.send_msg({"t": t, "id": rid, "b": body})
        while True:
            m = self.recv_msg()
            if "id" not in m:
                self.pushes.append(m)
                continue
            if m["id"] != rid:
                raise ProtoError("unexpected_message", "id %r" % m["id"])
            if m["t"] == "error":
                raise ProtoError(m["code"], m["message"])
            return m["b"]


def handshake(url, mode, group, root, cert_der=None, key=None, ticket=None, psk=None, ch_order=None):
    ws = WS(url)
    dh = DH(group)
    ch = {"t": "client_hello", "v": 1, "mode": mode, "groups": ["x25519", "ffdhe2048"], "group": group,
          "nonce": os.urandom(32), "share": dh.public}
    if ch_order:
        ch = {k: ch[k] for k in ch_order}
    if mode == "resume":
        ch["ticket"] = ticket
        ch["binder"] = b"\x00" * 32
        _, ch["binder"] = binder_for(cut(mp_encode(ch), "binder"), psk)
    CH = mp_encode(ch)
    ws.send(CH)
    SH = ws.recv()
    sh, offs = mp_decode_frame(SH)
    if sh.get("t") == "alert":
        ws.close()
        raise ProtoError(sh["code"], "alert: " + sh["message"], ws.close_info)
    if sh.get("t") != "server_hello":
        raise ProtoError("unexpected_message")
    if sh.get("v") != 1:
        raise ProtoError("version_unsupported")
    allowed = {"t", "v", "group", "nonce", "share", "cert", "sig", "mac"}
    if set(sh) - allowed or not {"t", "v", "group", "nonce", "share", "mac"} <= set(sh):
        raise ProtoError("schema", "server_hello fields")
    keys_order = [k for k, _ in offs]
    if ("cert" in sh) != ("sig" in sh):
        raise ProtoError("schema", "cert/sig")
    if "sig" in sh and keys_order[-2:] != ["sig", "mac"]:
        raise ProtoError("schema", "server_hello: sig and then mac must be the last entries")
    if keys_order[-1] != "mac":
        raise ProtoError("schema", "server_hello: mac must be the last entry")
    if sh["group"] != group:
        raise ProtoError("no_common_group")
    if mode in ("auth", "enroll") and "cert" not in sh:
        raise ProtoError("insecure_refused")
    if mode == "resume" and "cert" in sh:
        raise ProtoError("schema", "cert in resumed reply")
    Z = dh.shared(sh["share"])
    ikm = Z + (psk if mode == "resume" else b"")
    if "sig" in sh:
        th_hello = sha256(CH + cut(SH, "sig"))
    else:
        th_hello = sha256(CH + cut(SH, "mac"))
    sfk, cfk = finished_keys(th_hello, ikm)
    if mode in ("auth", "enroll"):
        spub = check_kdc_cert(sh["cert"], root)
        try:
            spub.verify(sh["sig"], SRV_CV + th_hello, PSS, hashes.SHA256())
        except Exception:
            ws.close(4001, "bad_signature")
            raise ProtoError("bad_signature", "signature verification failed")
    th_smac = sha256(CH + cut(SH, "mac"))
    if not hmac.compare_digest(hmac256(sfk, th_smac), sh["mac"]):
        ws.close(4001, "bad_mac")
        raise ProtoError("bad_mac", "MAC verification failed")
    cf = {"t": "client_finish"}
    if mode == "auth":
        cf["cert"] = cert_der
        cf["sig"] = b"\x00" * 256
        th_csig = sha256(CH + SH + cut(mp_encode(cf), "sig"))
        cf["sig"] = key.sign(CLI_CV + th_csig, PSS, hashes.SHA256())
    cf["mac"] = b"\x00" * 32
    th_cmac = sha256(CH + SH + cut(mp_encode(cf), "mac"))
    cf["mac"] = hmac256(cfk, th_cmac)
    CF = mp_encode(cf)
    ws.send(CF)
    th_final = sha256(CH + SH + CF)
    tk = traffic_keys(th_final, ikm)
    sess = Session(ws, tk, None)
    # first server record: ready (seq 0)
    first = ws.recv()
    fm, _ = mp_decode_frame(first)
    if fm.get("t") == "alert":  # a client_finish refused by the KDC: alert in place of the first record
        try:
            ws.recv()
        except ProtoError:
            pass
        raise ProtoError(fm["code"], "alert: %s (close %s)" % (fm["message"], ws.close_info), ws.close_info)
    pt = open_record(tk["s2c_key"], tk["s2c_iv"], 0, "s2c", first)
    ready = mp_decode_frame(pt)[0]
    if ready.get("t") != "ready":
        raise ProtoError("unexpected_message", "first record %r" % ready)
    if ready["b"]["session"] != tk["session_id"].hex():
        raise ProtoError("internal", "session id mismatch")
    sess.ready = ready["b"]
    return sess


def fetch_ca(url, pin):
    u = urlparse(url)
    s = socket.create_connection((u.hostname, u.port), timeout=15)
    s.sendall(("GET /ca.pem HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n" % (u.hostname, u.port)).encode())
    data = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        data += c
    s.close()
    head, body = data.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        raise IOError("GET /ca.pem: " + head.split(b"\r\n")[0].decode("latin1"))
    cert = x509.load_pem_x509_certificate(body)
    fp = sha256(cert.public_bytes(serialization.Encoding.DER))
    pinb = bytes.fromhex(pin.lower().replace(":", "").replace("sha256 fingerprint=", ""))
    if not hmac.compare_digest(fp, pinb):
        raise ProtoError("ca_fingerprint_mismatch")
    return cert


def load_identity(home):
    cert = x509.load_pem_x509_certificate(open(os.path.join(home, "cert.pem"), "rb").read())
    key = serialization.load_pem_private_key(open(os.path.join(home, "key.pem"), "rb").read(), None)
    return cert, key



# ----------------------------------------------------------------------------- live scenario
MESSAGE = b"hello bob, from the python client"


def peer_receive(checks, url, home, root, peer, sender, created):
    """As the peer: an ffdhe2048 session, the key delivered by the KDC verified and acknowledged, the
    sender's message opened with it."""
    cert, key = load_identity(home)
    s = handshake(url, "auth", "ffdhe2048", root, cert.public_bytes(serialization.Encoding.DER), key)
    checks.that("%s: auth handshake (ffdhe2048), ready as %s" % (peer, peer),
                s.ready.get("name") == peer and s.ready.get("serial") == serial_hex(cert), repr(s.ready))
    r = s.request("key.sync", {"messages": True})
    checks.that("%s: key.sync pushed the delivery and the message" % peer, r.get("pushed", 0) >= 2, repr(r))
    delivered = [p["b"] for p in s.pushes if p["t"] == "key.delivered" and p["b"]["serial"] == created["serial"]]
    if not checks.that("%s: key.delivered for the new key" % peer, len(delivered) == 1, repr(s.pushes)[:300]):
        return
    b = delivered[0]
    checks.that("%s: delivered key is KDC mode, from %s, the key %s was given" % (peer, sender, sender),
                b["mode"] == "kdc" and b["from"] == sender and b["to"] == peer and b["key"] == created["key"])
    checks.equal("%s: toCertSerial is %s's certificate" % (peer, peer), b["toCertSerial"], serial_hex(cert))
    dg = kdc_digest(b["serial"], b["key"])
    th = kdc_th(b["serial"], b["from"], b["fromCertSerial"], b["to"], b["toCertSerial"], dg, b["expiresAt"])
    sig = key.sign(b"kds v1 key receiver signature\x00" + th + dg, PSS, hashes.SHA256())
    v = s.request("key.verify", {"serial": b["serial"], "digest": dg, "signature": sig, "ack": [b["d"]]})
    checks.that("%s: key.verify with the receiver signature -> valid, peerVerified" % peer,
                v.get("verdict") == "valid" and v.get("peerVerified") is True, repr(v))
    msgs = [p["b"] for p in s.pushes if p["t"] == "msg" and p["b"]["serial"] == created["serial"]]
    if checks.that("%s: msg pushed" % peer, len(msgs) == 1, repr(s.pushes)[:300]):
        m = msgs[0]
        pt = AESGCM(b["key"]).decrypt(m["nonce"], m["ciphertext"], msg_aad(m["serial"], m["from"], m["to"], m["seq"]))
        checks.equal("%s: message opens with the key and its AAD" % peer, pt, MESSAGE)
        r = s.request("key.ack", {"ids": [m["d"]]})
        checks.equal("%s: key.ack" % peer, r, {"acknowledged": 1})
    s.ws.close(1000)


def peer_verify_batch(checks, url, home, root, peer, sender, batch):
    """As the peer: the keys of one key.create.batch arrive as ordinary key.delivered pushes, and are
    verified together in one key.verify.batch that acknowledges their deliveries."""
    cert, key = load_identity(home)
    s = handshake(url, "auth", "x25519", root, cert.public_bytes(serialization.Encoding.DER), key)
    s.request("key.sync", {"messages": False})
    serials = [k["serial"] for k in batch["keys"]]
    got = {p["b"]["serial"]: p["b"] for p in s.pushes if p["t"] == "key.delivered" and p["b"]["serial"] in serials}
    if not checks.that("%s: one key.delivered per key of the batch" % peer, sorted(got) == sorted(serials),
                       repr(s.pushes)[:300]):
        return
    items = []
    for k in batch["keys"]:
        b = got[k["serial"]]
        checks.that("%s: batch key %s is the key %s was given" % (peer, k["serial"][:8], sender),
                    b["mode"] == "kdc" and b["from"] == sender and b["key"] == k["key"])
        dg = kdc_digest(b["serial"], b["key"])
        th = kdc_th(b["serial"], b["from"], b["fromCertSerial"], b["to"], b["toCertSerial"], dg, b["expiresAt"])
        sig = key.sign(b"kds v1 key receiver signature\x00" + th + dg, PSS, hashes.SHA256())
        items.append({"serial": b["serial"], "digest": dg, "signature": sig})
    v = s.request("key.verify.batch", {"items": items, "ack": sorted(b["d"] for b in got.values())})
    checks.that("%s: key.verify.batch -> valid, peerVerified for each key, in order" % peer,
                [(r.get("serial"), r.get("verdict"), r.get("peerVerified")) for r in v.get("results", [])]
                == [(x, "valid", True) for x in serials], repr(v)[:300])
    r = s.request("key.sync", {"messages": False})
    checks.equal("%s: the batch's deliveries were acknowledged" % peer, r.get("remaining"), 0)
    s.ws.close(1000)


def live(a, checks):
    root = fetch_ca(a.server, a.pin)
    checks.ok("GET /ca.pem matches the pinned fingerprint (%s)" % root.subject.rfc4514_string())
    cert, key = load_identity(a.home)
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    s = handshake(a.server, "auth", "x25519", root, cert_der, key)
    me = s.ready.get("name")
    checks.that("auth handshake (x25519): server certificate, signature and MAC check, ready",
                s.ready.get("mode") == "auth" and s.ready.get("serial") == serial_hex(cert), repr(s.ready))
    checks.equal("ping echoes its data", s.request("ping", {"data": b"hello from python"}),
                 {"pong": True, "data": b"hello from python"})
    checks.equal("cert.status of the own certificate", s.request("cert.status", {"serial": serial_hex(cert)}),
                 {"status": "good"})
    r = s.request("key.list", {})
    checks.that("key.list answers a list", isinstance(r.get("keys"), list), repr(r))
    created = s.request("key.create", {"peer": a.peer, "ttl": 3600000})
    checks.that("key.create (KDC mode) for %s: a 32-byte key" % a.peer,
                len(created.get("key", b"")) == 32 and created.get("peer") == a.peer
                and created.get("ownerCertSerial") == serial_hex(cert), repr(created)[:300])
    print("info key-serial %s" % created["serial"], flush=True)
    g = s.request("key.get", {"serial": created["serial"]})
    checks.that("key.get: kdc, active, not yet verified by %s" % a.peer,
                g.get("mode") == "kdc" and g.get("state") == "active" and g.get("owner") == me
                and g.get("peerVerified") is False, repr(g))
    nonce = os.urandom(12)
    aad = msg_aad(created["serial"], me, a.peer, 1)
    ct = AESGCM(created["key"]).encrypt(nonce, MESSAGE, aad)
    r = s.request("msg.send", {"to": a.peer, "serial": created["serial"], "seq": 1, "nonce": nonce, "ciphertext": ct})
    checks.that("msg.send to %s (queued while offline)" % a.peer, r.get("queued") is True or r.get("delivered", 0) >= 1, repr(r))

    peer_receive(checks, a.server, a.peer_home, root, a.peer, me, created)

    t = s.request("session.ticket", {})
    checks.that("session.ticket", isinstance(t.get("ticket"), bytes) and isinstance(t.get("expiresAt"), int), repr(t)[:200])
    psk = s.k["resumption_secret"]
    s.ws.close(1000)

    s2 = handshake(a.server, "resume", "x25519", root, ticket=t["ticket"], psk=psk)
    checks.that("resumed handshake (binder, psk in the key schedule), ready",
                s2.ready.get("mode") == "resume" and s2.ready.get("name") == me
                and s2.ready.get("serial") == serial_hex(cert), repr(s2.ready))
    checks.equal("ping in the resumed session", s2.request("ping", {}), {"pong": True})
    keys = s2.request("key.list", {})["keys"]
    mine = [k for k in keys if k["serial"] == created["serial"]]
    checks.that("key.list in the resumed session: the key, verified by %s" % a.peer,
                len(mine) == 1 and mine[0]["peerVerified"] is True, repr(keys)[:300])
    s2.request("key.sync", {"messages": False})
    verified = [p for p in s2.pushes if p["t"] == "key.verified" and p["b"]["serial"] == created["serial"]]
    checks.that("key.sync: key.verified pushed for the key", len(verified) >= 1, repr(s2.pushes)[:300])
    ds = sorted({p["b"]["d"] for p in s2.pushes if "d" in p.get("b", {})})
    if ds:
        checks.equal("key.ack of the pushes", s2.request("key.ack", {"ids": ds}), {"acknowledged": len(ds)})
    batch = s2.request("key.create.batch", {"peer": a.peer, "count": 3, "ttl": 3600000})
    checks.that("key.create.batch of 3 for %s: 3 keys of 32 bytes, one lifetime" % a.peer,
                len(batch.get("keys", [])) == 3 and all(len(k["key"]) == 32 for k in batch["keys"])
                and batch.get("peer") == a.peer and batch.get("expiresAt", 0) - batch.get("createdAt", 0) == 3600000,
                repr(batch)[:300])
    peer_verify_batch(checks, a.server, a.peer_home, root, a.peer, me, batch)
    s2.ws.close(1000)

    checks.refused("resumption with a wrong psk",
                   lambda: handshake(a.server, "resume", "x25519", root, ticket=t["ticket"], psk=b"\x01" * 32),
                   "ticket_invalid", 4001)


# ----------------------------------------------------------------------------- command line
def main(argv):
    ap = argparse.ArgumentParser(prog="kds_client.py", description="independent kds v1 client (see the header)")
    sub = ap.add_subparsers(dest="command", required=True)
    v = sub.add_parser("vectors", help="re-derive the vector files")
    v.add_argument("--protocol", help="path of test/vectors/protocol-v1.json")
    v.add_argument("--keys", help="path of test/vectors/keys-v1.json")
    for name in ("live", "edges"):
        p = sub.add_parser(name)
        p.add_argument("--server", required=True, help="the KDC's WebSocket URL, ws://HOST:PORT/kds")
        p.add_argument("--pin", required=True, help="SHA-256 fingerprint of the root CA certificate (hex)")
        p.add_argument("--home", required=True, help="an enrolled client's home (cert.pem, key.pem)")
        if name == "live":
            p.add_argument("--peer", required=True, help="the peer's name")
            p.add_argument("--peer-home", required=True, help="the peer's home")
        else:
            p.add_argument("--admin-dir", required=True, help="the KDC's admin credentials (DATA_DIR/admin)")
            p.add_argument("--ca-passphrase-file", required=True, help="file holding the CA passphrase")
            p.add_argument("--enroll-name", default="dave", help="name to enroll with a CSR made here")
    a = ap.parse_args(argv)
    if a.command == "vectors" and not (a.protocol or a.keys):
        ap.error("vectors: give --protocol and/or --keys")

    checks = Checks()
    try:
        if a.command == "vectors":
            if a.protocol:
                run_vectors(a.protocol, checks)
            if a.keys:
                run_key_vectors(a.keys, checks)
        elif a.command == "live":
            live(a, checks)
        else:
            import kds_edges
            kds_edges.run(a, checks)
    except Exception as e:  # a step that could not go on: a failure, with its traceback on stderr
        traceback.print_exc()
        checks.fail("unexpected error", "%s: %s" % (type(e).__name__, e))
    return checks.summary()


if __name__ == "__main__":
    # kds_edges imports this module by name: let it get this one (one ProtoError class), not a second copy.
    sys.modules.setdefault("kds_client", sys.modules[__name__])
    sys.exit(main(sys.argv[1:]))
