"""Negative cases and other roles for the independent kds client (kds_client.py edges ...).

Written, like kds_client.py, from docs/protocol.md, docs/messages.md and docs/keys.md alone; every
expected code and close code below is the one those documents give. It covers: upgrades the KDC
refuses (another path: 404; an Origin header: 403); a text message; client_hellos with insecure mode,
v=2, a group not offered, an unknown field, a nil field, an all-zero x25519 share, only an unknown
group, a binder that is not the last entry, and v written as uint64 (accepted: decoders take any
width); a client_finish with a bad MAC; in a session: request id 0, a second session.ticket, an
unknown type, an unknown body field, a nil field, enroll from a client; a record with a bad tag
(never answered, closed 4005); the admin's session issuing a token; an enroll session (only enroll;
ping refused), enrollment with an RSA key and CSR made here; that certificate's session revoking
itself (session.closing cert_revoked, close 4002); and its next handshake refused (cert_revoked).
"""
import base64, os, socket, struct
from urllib.parse import urlparse

from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kds_client import (CLI_CV, DH, PSS, WS, ProtoError, cut, fetch_ca, handshake, load_identity,
                        mp_decode_frame, mp_encode, serial_hex, sha256)


def upgrade_status(url, path, extra_headers=""):
    """The status line of a WebSocket upgrade request for `path`."""
    u = urlparse(url)
    s = socket.create_connection((u.hostname, u.port), timeout=15)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
               % (path, u.hostname, u.port, key, extra_headers)).encode())
    data = b""
    while b"\r\n" not in data:
        c = s.recv(4096)
        if not c:
            break
        data += c
    s.close()
    return data.split(b"\r\n")[0].decode("latin1")


def first_reply(ws):
    """(the first frame the KDC sends, decoded, or None; its close (code, reason))."""
    frame = None
    try:
        frame = mp_decode_frame(ws.recv())[0]
        ws.recv()  # the close that follows an alert
    except ProtoError:
        pass
    except OSError:
        pass
    return frame, ws.close_info


def client_hello(**kw):
    ch = {"t": "client_hello", "v": 1, "mode": "auth", "groups": ["x25519"], "group": "x25519",
          "nonce": os.urandom(32), "share": DH("x25519").public}
    ch.update(kw)
    return ch


def alert_check(checks, name, frame, close, code, close_code):
    got = (frame or {}).get("t"), (frame or {}).get("code"), close[0] if close else None
    checks.that("%s -> alert %s, close %d" % (name, code, close_code), got == ("alert", code, close_code),
                "got frame %r, close %r" % (frame, close))


def run(a, checks):
    url = a.server
    root = fetch_ca(url, a.pin)

    # Transport (docs/protocol.md "Transport")
    st = upgrade_status(url, "/other")
    checks.that("upgrade on another path -> 404", st.startswith("HTTP/1.1 404"), st)
    st = upgrade_status(url, urlparse(url).path, "Origin: http://evil.example\r\n")
    checks.that("upgrade with an Origin header -> 403", st.startswith("HTTP/1.1 403"), st)

    ws = WS(url)
    ws._send(0x1, b'{"t":"client_hello"}')
    frame, close = first_reply(ws)
    alert_check(checks, "text message", frame, close, "bad_frame", 4000)

    # client_hello checks (docs/protocol.md "Checks, in order, and their codes", "Errors")
    for name, ch, code, close_code in [
        ("client_hello mode insecure", client_hello(mode="insecure"), "insecure_refused", 1008),
        ("client_hello v=2", client_hello(v=2), "version_unsupported", 4006),
        ("client_hello group not in groups", client_hello(groups=["ffdhe2048"]), "no_common_group", 4006),
        ("client_hello unknown field", client_hello(extra=1), "schema", 4000),
        ("client_hello nil ticket in auth mode", client_hello(ticket=None), "schema", 4000),
        ("client_hello all-zero x25519 share", client_hello(share=b"\x00" * 32), "bad_dh_public", 4001),
        ("client_hello only an unknown group", client_hello(groups=["p256"], group="p256", share=os.urandom(65)),
         "no_common_group", 4006),
    ]:
        ws = WS(url)
        ws.send(mp_encode(ch))
        frame, close = first_reply(ws)
        alert_check(checks, name, frame, close, code, close_code)

    ch = client_hello(mode="resume")
    order = ["t", "v", "mode", "groups", "group", "nonce", "binder", "ticket", "share"]
    ch = dict(ch, binder=os.urandom(32), ticket=os.urandom(100))
    ws = WS(url)
    ws.send(mp_encode({k: ch[k] for k in order}))
    frame, close = first_reply(ws)
    alert_check(checks, "resume client_hello, binder not the last entry", frame, close, "schema", 4000)

    enc = mp_encode(client_hello())
    wide = enc.replace(b"\xa1v\x01", b"\xa1v\xcf" + struct.pack(">Q", 1), 1)
    ws = WS(url)
    ws.send(wide)
    reply = mp_decode_frame(ws.recv())[0]
    checks.equal("client_hello with v as uint64 is accepted", reply.get("t"), "server_hello")
    ws.close()

    # a client_finish with a wrong MAC
    cert, key = load_identity(a.home)
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    ws = WS(url)
    dh = DH("x25519")
    CH = mp_encode(client_hello(share=dh.public))
    ws.send(CH)
    SH = ws.recv()
    cf = {"t": "client_finish", "cert": cert_der, "sig": b"\x00" * 256}
    cf["sig"] = key.sign(CLI_CV + sha256(CH + SH + cut(mp_encode(cf), "sig")), PSS, hashes.SHA256())
    cf["mac"] = os.urandom(32)
    ws.send(mp_encode(cf))
    frame, close = first_reply(ws)
    alert_check(checks, "client_finish with a wrong MAC", frame, close, "bad_mac", 4001)

    # request errors in an authenticated session (docs/protocol.md "Application messages", "Errors")
    s = handshake(url, "auth", "x25519", root, cert_der, key)
    s.next_id = 0
    checks.equal("request id 0 is answered", s.request("ping", {}), {"pong": True})
    checks.that("session.ticket", "ticket" in s.request("session.ticket", {}))
    checks.refused("second session.ticket in one session", lambda: s.request("session.ticket", {}), "forbidden")
    checks.refused("unknown request type", lambda: s.request("no.such", {}), "unknown_type")
    checks.refused("unknown body field", lambda: s.request("ping", {"bogus": 1}), "schema")
    checks.refused("nil where bytes are expected", lambda: s.request("ping", {"data": None}), "schema")
    checks.refused("enroll from a client session",
                   lambda: s.request("enroll", {"token": "a" * 20, "csr": "-----BEGIN CERTIFICATE REQUEST-----\nx"}),
                   "forbidden")
    checks.equal("the session survives its error responses", s.request("ping", {}), {"pong": True})
    s.ws.send(mp_encode({"t": "r", "c": os.urandom(40)}))  # a record with a bad tag
    s.cseq += 1
    frame, close = first_reply(s.ws)
    checks.that("record with a bad tag -> no answer, close 4005 record_auth",
                frame is None and close == (4005, "record_auth"), "frame %r, close %r" % (frame, close))

    # the admin's session issues an enrollment token
    passphrase = open(a.ca_passphrase_file, "rb").read().rstrip(b"\r\n")
    akey = serialization.load_pem_private_key(open(os.path.join(a.admin_dir, "key.pem"), "rb").read(), passphrase)
    acert = x509.load_pem_x509_certificate(open(os.path.join(a.admin_dir, "cert.pem"), "rb").read())
    adm = handshake(url, "auth", "x25519", root, acert.public_bytes(serialization.Encoding.DER), akey)
    checks.equal("admin session (encrypted PKCS#8 key): role", adm.ready.get("role"), "admin")
    tok = adm.request("admin.token", {"name": a.enroll_name, "ttl": 600000})
    checks.that("admin.token for %s" % a.enroll_name, isinstance(tok.get("token"), str), repr(tok))
    adm.ws.close(1000)

    # enrollment with a key and CSR made here (docs/protocol.md "Certificates and enrollment")
    dk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, a.enroll_name)]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(a.enroll_name)]), critical=False)
           .sign(dk, hashes.SHA256()))
    e = handshake(url, "enroll", "x25519", root)
    checks.equal("enroll session: role", e.ready.get("role"), "anonymous")
    checks.refused("ping in an enroll session", lambda: e.request("ping", {}), "not_authenticated")
    r = e.request("enroll", {"token": tok["token"], "csr": csr.public_bytes(serialization.Encoding.PEM).decode()})
    dc = x509.load_pem_x509_certificate(r["cert"].encode())
    cns = [x.value for x in dc.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    checks.that("enroll with a CSR made here: certificate for %s on this key" % a.enroll_name,
                cns == [a.enroll_name] and dc.public_key().public_numbers() == dk.public_key().public_numbers(),
                "subject %s" % dc.subject.rfc4514_string())
    print("info enrolled-serial %s" % serial_hex(dc), flush=True)
    try:
        e.ws.close()
    except OSError:
        pass

    # that certificate's session revokes itself
    dc_der = dc.public_bytes(serialization.Encoding.DER)
    d = handshake(url, "auth", "ffdhe2048", root, dc_der, dk)
    checks.that("auth handshake (ffdhe2048) with the new certificate",
                d.ready.get("name") == a.enroll_name and d.ready.get("serial") == serial_hex(dc), repr(d.ready))
    r = d.request("cert.revoke", {"reason": "cessationOfOperation"})
    checks.that("cert.revoke of the own certificate", r.get("status") == "revoked" and r.get("serial") == serial_hex(dc),
                repr(r))
    closing = None
    try:
        while True:
            m = d.recv_msg()
            if m.get("t") == "session.closing":
                closing = m["b"]
    except ProtoError:
        pass
    checks.that("session.closing cert_revoked, close 4002",
                (closing or {}).get("code") == "cert_revoked" and (d.ws.close_info or (None,))[0] == 4002,
                "closing %r, close %r" % (closing, d.ws.close_info))
    checks.refused("handshake with the revoked certificate",
                   lambda: handshake(url, "auth", "x25519", root, dc_der, dk), "cert_revoked", 4002)
