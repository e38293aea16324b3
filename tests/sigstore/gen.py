#!/usr/bin/env python3
"""Independent generator and checker of sigstore (cosign) material for ferry's tests.

This program is deliberately independent of ferry: it never runs ferry and never
imports ferry code.  It was written from the format descriptions of cosign and
containers/image (see README.md next to it), using only the Python standard
library, `cryptography` and `PyNaCl`. `verify-bundle` (only) imports sigstore-python,
the independent verifier the generated bundles are checked against.

Network traffic goes to http://127.0.0.1:PORT only (the registry subcommands);
any other host is refused.

Exit codes: 0 success; 1 a verification failed (the material is well-formed
enough to check but is not valid); 2 bad input or usage, with a message on stderr.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
    import nacl.exceptions
    import nacl.secret
except ImportError as e:  # pragma: no cover - environment problem
    sys.stderr.write(
        f"gen.py: error: missing Python package ({e}); run: pip install -r {os.path.dirname(os.path.abspath(__file__))}/requirements.txt\n"
    )
    sys.exit(2)

PROG = "gen.py"

# --- constants (names from cosign / containers/image) ---------------------------------------------

SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
PAYLOAD_TYPE = "cosign container image signature"
SIGFILE_PREFIX = b"\x00sigstore-json\n"

OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
OCI_INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
ZERO_TIME = "0001-01-01T00:00:00Z"

PEM_TYPE_SIGSTORE = "ENCRYPTED SIGSTORE PRIVATE KEY"
PEM_TYPE_COSIGN = "ENCRYPTED COSIGN PRIVATE KEY"
SCRYPT_N_ALLOWED = (32768, 65536, 131072)  # the parameter sets go-securesystemslib/encrypted accepts (r=8, p=1)
SCRYPT_R, SCRYPT_P = 8, 1
SALT_LEN, NONCE_LEN, BOX_KEY_LEN = 32, 24, 32

OID_FULCIO_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")  # raw string value (deprecated, still accepted)
OID_FULCIO_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")  # DER UTF8String value

OID_SCT_LIST = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")  # embedded precertificate SCT list (RFC 6962)

REKOR_API_VERSION = "0.0.1"

KEY_TYPES = ("ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519")

DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$")
REPO_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPO_RE = re.compile(rf"^{REPO_COMPONENT}(?:/{REPO_COMPONENT})*$")


class GenError(Exception):
    """Bad input or an operational failure: message to stderr, exit 2."""


class VerifyFailed(Exception):
    """Material that does not verify: message to stderr, exit 1."""


# --- Go-compatible JSON encoding ------------------------------------------------------------------
#
# Go's encoding/json, which cosign and containers/image use, emits compact JSON, struct fields in
# declaration order, map keys sorted, and escapes <, >, &, U+2028 and U+2029 as \u00XX sequences.
# Python dicts keep insertion order: callers build "structs" in field order and use gomap() for
# Go maps.


class RawJSON:
    """Already-encoded JSON inserted verbatim (Go's json.RawMessage)."""

    def __init__(self, data: bytes):
        self.data = data


def gomap(d: dict) -> dict:
    return dict(sorted(d.items()))


def gomap_deep(v):
    """Sorts every object's keys, as Go does for map[string]any."""
    if isinstance(v, dict):
        return {k: gomap_deep(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        return [gomap_deep(x) for x in v]
    return v


_GO_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _go_string(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in _GO_SHORT_ESCAPES:
            out.append(_GO_SHORT_ESCAPES[ch])
        elif o < 0x20 or ch in "<>&" or o in (0x2028, 0x2029):
            out.append("\\u%04x" % o)
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\ufffd")  # Go replaces invalid UTF-8 with U+FFFD
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _go_encode(v, out: list) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        out.append(str(v))
    elif isinstance(v, str):
        out.append(_go_string(v))
    elif isinstance(v, RawJSON):
        out.append(v.data.decode("utf-8"))
    elif isinstance(v, dict):
        out.append("{")
        for i, (k, x) in enumerate(v.items()):
            if i:
                out.append(",")
            out.append(_go_string(k))
            out.append(":")
            _go_encode(x, out)
        out.append("}")
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(",")
            _go_encode(x, out)
        out.append("]")
    else:
        raise GenError(f"cannot encode a {type(v).__name__} as JSON here (only strings, integers, booleans, null, objects, arrays)")


def go_json(v) -> bytes:
    out: list = []
    _go_encode(v, out)
    return "".join(out).encode("utf-8")


def canonical_json(v) -> bytes:
    """RFC 8785 canonical JSON for data made of strings, integers, objects and arrays."""
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _reject_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise GenError(f"duplicate JSON key {k!r}")
        d[k] = v
    return d


def parse_json(data: bytes | str, what: str):
    try:
        return json.loads(data, object_pairs_hook=_reject_duplicates)
    except GenError as e:
        raise GenError(f"{what}: {e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise GenError(f"{what} is not valid JSON: {e}") from None


# --- small helpers --------------------------------------------------------------------------------


def b64e(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def b64d(s: str | bytes, what: str) -> bytes:
    """Standard base64 with padding, like Go's base64.StdEncoding (which skips \\r and \\n)."""
    if not isinstance(s, (str, bytes)):
        raise GenError(f"{what} is not a base64 string")
    if isinstance(s, bytes):
        try:
            s = s.decode("ascii")
        except UnicodeDecodeError:
            raise GenError(f"{what} is not base64 (non-ASCII bytes)") from None
    s = s.replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(s, validate=True)
    except (ValueError, base64.binascii.Error) as e:
        raise GenError(f"{what} is not valid base64: {e}") from None


def read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise GenError(f"cannot read {what} {path!r}: {e.strerror}") from None


def write_file(path: str, data: bytes, what: str, private: bool = False) -> None:
    try:
        if private:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        else:
            with open(path, "wb") as f:
                f.write(data)
    except OSError as e:
        raise GenError(f"cannot write {what} {path!r}: {e.strerror}") from None


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_b64_signature(path: str) -> tuple[str, bytes]:
    """Reads a base64 signature file; returns (base64 text as stored, decoded bytes)."""
    text = read_file(path, "signature file")
    try:
        s = text.decode("ascii").strip()
    except UnicodeDecodeError:
        raise GenError(f"signature file {path!r} is not base64 text") from None
    if not s:
        raise GenError(f"signature file {path!r} is empty")
    return s, b64d(s, f"signature file {path!r}")


def parse_kv(items: list[str] | None, what: str) -> dict:
    d = {}
    for it in items or []:
        if "=" not in it:
            raise GenError(f"{what} {it!r} is not KEY=VALUE")
        k, v = it.split("=", 1)
        if not k:
            raise GenError(f"{what} {it!r} has an empty key")
        d[k] = v
    return d


def parse_annotation_files(items: list[str] | None) -> dict:
    d = {}
    for it in items or []:
        if "=" not in it:
            raise GenError(f"--annotation-file {it!r} is not KEY=PATH")
        k, p = it.split("=", 1)
        try:
            d[k] = read_file(p, "annotation file").decode("utf-8")
        except UnicodeDecodeError:
            raise GenError(f"annotation file {p!r} is not UTF-8") from None
    return d


# --- PEM ------------------------------------------------------------------------------------------

_PEM_RE = re.compile(rb"-----BEGIN ([^\r\n-]+)-----\r?\n(.*?)-----END \1-----", re.S)


def pem_encode(typ: str, der: bytes) -> bytes:
    b = b64e(der)
    lines = [b[i : i + 64] for i in range(0, len(b), 64)]
    return ("-----BEGIN %s-----\n%s\n-----END %s-----\n" % (typ, "\n".join(lines), typ)).encode("ascii")


def pem_blocks(data: bytes, what: str) -> list[tuple[str, bytes]]:
    blocks = []
    for m in _PEM_RE.finditer(data):
        typ = m.group(1).decode("ascii", "replace")
        body_lines = [ln.strip() for ln in m.group(2).splitlines()]
        if any(b":" in ln for ln in body_lines):
            raise GenError(f"{what}: PEM block {typ!r} has headers, which are not supported here")
        der = b64d(b"".join(body_lines), f"{what}: PEM block {typ!r}")
        blocks.append((typ, der))
    return blocks


def pem_first(data: bytes, what: str) -> tuple[str, bytes]:
    blocks = pem_blocks(data, what)
    if not blocks:
        raise GenError(f"{what} contains no PEM block")
    return blocks[0]


# --- keys -----------------------------------------------------------------------------------------


def key_kind(key) -> str:
    pub = key.public_key() if hasattr(key, "public_key") else key
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384", "secp521r1": "ecdsa-p521"}.get(
            pub.curve.name, f"ecdsa-{pub.curve.name}"
        )
    if isinstance(pub, rsa.RSAPublicKey):
        return f"rsa-{pub.key_size}"
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return "ed25519"
    return type(pub).__name__


def generate_key(kind: str):
    if kind == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ecdsa-p521":
        return ec.generate_private_key(ec.SECP521R1())
    if kind.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[4:]))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise GenError(f"unknown key type {kind!r} (known: {', '.join(KEY_TYPES)})")


def pkcs8_der(key) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def spki_der(key) -> bytes:
    pub = key.public_key() if hasattr(key, "public_key") and not _is_public(key) else key
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _is_public(key) -> bool:
    return isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey))


def scrypt_key(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=BOX_KEY_LEN)


def encrypt_cosign(plaintext: bytes, password: bytes, n: int) -> bytes:
    """go-securesystemslib/encrypted.Encrypt: scrypt KDF + nacl/secretbox, as JSON (Go struct order)."""
    if n not in SCRYPT_N_ALLOWED:
        raise GenError(f"scrypt N must be one of {SCRYPT_N_ALLOWED}")
    salt = os.urandom(SALT_LEN)
    nonce = os.urandom(NONCE_LEN)
    key = scrypt_key(password, salt, n, SCRYPT_R, SCRYPT_P)
    ciphertext = nacl.secret.SecretBox(key).encrypt(plaintext, nonce).ciphertext  # tag || encrypted, as Go's secretbox.Seal
    return go_json(
        {
            "kdf": {"name": "scrypt", "params": {"N": n, "r": SCRYPT_R, "p": SCRYPT_P}, "salt": b64e(salt)},
            "cipher": {"name": "nacl/secretbox", "nonce": b64e(nonce)},
            "ciphertext": b64e(ciphertext),
        }
    )


def decrypt_cosign_pem(data: bytes, password: bytes, what: str) -> tuple[str, bytes]:
    """Returns (PEM type, PKCS#8 DER) of a cosign encrypted private key."""
    typ, blob = pem_first(data, what)
    if typ not in (PEM_TYPE_SIGSTORE, PEM_TYPE_COSIGN):
        raise GenError(f"{what}: PEM type {typ!r} is not {PEM_TYPE_SIGSTORE!r} or {PEM_TYPE_COSIGN!r}")
    j = parse_json(blob, f"{what}: encrypted key body")
    if not isinstance(j, dict):
        raise GenError(f"{what}: encrypted key body is not a JSON object")
    try:
        kdf, cipher = j["kdf"], j["cipher"]
        kdf_name, params, salt_b64 = kdf["name"], kdf["params"], kdf["salt"]
        n, r, p = params["N"], params["r"], params["p"]
        cipher_name, nonce_b64 = cipher["name"], cipher["nonce"]
        ct_b64 = j["ciphertext"]
    except (KeyError, TypeError) as e:
        raise GenError(f"{what}: encrypted key JSON lacks field {e}") from None
    if kdf_name != "scrypt":
        raise GenError(f"{what}: unknown kdf name {kdf_name!r}")
    if cipher_name != "nacl/secretbox":
        raise GenError(f"{what}: unknown cipher name {cipher_name!r}")
    if (r, p) != (SCRYPT_R, SCRYPT_P) or n not in SCRYPT_N_ALLOWED:
        raise GenError(f"{what}: unsupported scrypt parameters N={n} r={r} p={p}")
    salt = b64d(salt_b64, f"{what}: kdf salt")
    nonce = b64d(nonce_b64, f"{what}: cipher nonce")
    ct = b64d(ct_b64, f"{what}: ciphertext")
    if len(nonce) != NONCE_LEN:
        raise GenError(f"{what}: nonce is {len(nonce)} bytes, not {NONCE_LEN}")
    key = scrypt_key(password, salt, n, r, p)
    try:
        plain = nacl.secret.SecretBox(key).decrypt(ct, nonce)
    except nacl.exceptions.CryptoError:
        raise GenError(f"{what}: decryption failed: wrong password, or the key file is corrupted") from None
    return typ, plain


def load_pkcs8_der(der: bytes, what: str):
    try:
        return serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError) as e:
        raise GenError(f"{what}: not a PKCS#8 private key: {e}") from None


def load_private_key(path: str, password: str | None):
    data = read_file(path, "private key")
    typ, der = pem_first(data, f"private key {path!r}")
    if typ in (PEM_TYPE_SIGSTORE, PEM_TYPE_COSIGN):
        if password is None:
            raise GenError(f"private key {path!r} is encrypted ({typ}); give --password")
        _, der = decrypt_cosign_pem(data, password.encode("utf-8"), f"private key {path!r}")
        return load_pkcs8_der(der, f"private key {path!r}")
    if typ in ("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"):
        try:
            return serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as e:
            raise GenError(f"private key {path!r}: {e}") from None
    raise GenError(f"private key {path!r}: unsupported PEM type {typ!r}")


def load_public_key(path: str):
    """A PEM PUBLIC KEY (SubjectPublicKeyInfo) or the key of a PEM CERTIFICATE."""
    data = read_file(path, "public key")
    typ, der = pem_first(data, f"public key {path!r}")
    try:
        if typ == "PUBLIC KEY":
            return serialization.load_der_public_key(der)
        if typ == "CERTIFICATE":
            return x509.load_der_x509_certificate(der).public_key()
    except (ValueError, TypeError) as e:
        raise GenError(f"public key {path!r}: {e}") from None
    raise GenError(f"public key {path!r}: unsupported PEM type {typ!r} (want PUBLIC KEY or CERTIFICATE)")


_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def sign_bytes(key, data: bytes, hash_name: str = "sha256") -> bytes:
    h = _HASHES[hash_name]()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(h))  # ASN.1 DER (r, s)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), h)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)  # pure Ed25519: no pre-hash
    raise GenError(f"unsupported private key type {type(key).__name__}")


def verify_bytes(pub, sig: bytes, data: bytes) -> bool:
    """containers/image verifies with SHA-256 hard-coded for ECDSA (any curve) and RSA PKCS#1 v1.5; pure Ed25519."""
    try:
        if isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(pub, rsa.RSAPublicKey):
            pub.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(pub, ed25519.Ed25519PublicKey):
            pub.verify(sig, data)
        else:
            raise GenError(f"unsupported public key type {type(pub).__name__}")
    except InvalidSignature:
        return False
    return True


# --- the simple-signing payload -------------------------------------------------------------------


def check_digest(d: str) -> None:
    if not DIGEST_RE.match(d):
        raise GenError(f"digest {d!r} is not ALGO:HEX (sha256:<64 hex>, sha384:<96 hex> or sha512:<128 hex>, lower case)")


def make_payload(digest: str, reference: str, optional, sig_type: str = PAYLOAD_TYPE) -> bytes:
    """The cosign simple-signing payload, as cosign and containers/image marshal it (Go maps: sorted keys)."""
    return go_json(
        {
            "critical": {
                "identity": {"docker-reference": reference},
                "image": {"docker-manifest-digest": digest},
                "type": sig_type,
            },
            "optional": optional,
        }
    )


def check_exact_fields(obj, fields: set, what: str) -> dict:
    if not isinstance(obj, dict):
        raise VerifyFailed(f"{what} is not a JSON object")
    got = set(obj)
    if got != fields:
        extra, missing = sorted(got - fields), sorted(fields - got)
        raise VerifyFailed(f"{what}: unexpected fields {extra}, missing fields {missing}")
    return obj


def parse_payload_strict(payload: bytes) -> dict:
    """Parses a payload with the strictness of containers/image (exact field sets, no duplicate keys)."""
    try:
        top = parse_json(payload, "payload")
    except GenError as e:
        raise VerifyFailed(str(e)) from None
    check_exact_fields(top, {"critical", "optional"}, "payload")
    crit = check_exact_fields(top["critical"], {"type", "image", "identity"}, "payload critical")
    if crit["type"] != PAYLOAD_TYPE:
        raise VerifyFailed(f"unrecognized signature type {crit['type']!r}")
    image = check_exact_fields(crit["image"], {"docker-manifest-digest"}, "payload critical.image")
    ident = check_exact_fields(crit["identity"], {"docker-reference"}, "payload critical.identity")
    digest, ref = image["docker-manifest-digest"], ident["docker-reference"]
    if not isinstance(digest, str) or not isinstance(ref, str):
        raise VerifyFailed("payload digest and reference must be strings")
    try:
        check_digest(digest)
    except GenError as e:
        raise VerifyFailed(str(e)) from None
    opt = top["optional"]
    if opt is not None:
        if not isinstance(opt, dict):
            raise VerifyFailed("payload optional is neither null nor an object")
        if "creator" in opt and not isinstance(opt["creator"], str):
            raise VerifyFailed("payload optional.creator is not a string")
        if "timestamp" in opt and (not isinstance(opt["timestamp"], int) or isinstance(opt["timestamp"], bool)):
            raise VerifyFailed("payload optional.timestamp is not an integer")
    return {"digest": digest, "reference": ref, "optional": opt}


# --- the containers/image signature file ----------------------------------------------------------


def make_sigfile(payload: bytes, annotations: dict, mime_type: str = SIMPLESIGNING_MEDIA_TYPE) -> bytes:
    return SIGFILE_PREFIX + go_json({"mimeType": mime_type, "payload": b64e(payload), "annotations": gomap(annotations)})


def parse_sigfile(blob: bytes, what: str) -> dict:
    if not blob:
        raise GenError(f"{what} is empty")
    if blob[0] != 0:
        raise GenError(f"{what} does not start with a 0x00 byte (starts with {blob[0]:#x}); not a sigstore signature file")
    fmt, nl, rest = blob[1:].partition(b"\n")
    if not nl:
        raise GenError(f"{what}: no newline after the format name")
    if fmt != b"sigstore-json":
        raise GenError(f"{what}: format {fmt!r} is not 'sigstore-json'")
    j = parse_json(rest, what)
    if not isinstance(j, dict):
        raise GenError(f"{what}: JSON is not an object")
    mime = j.get("mimeType")
    payload_b64 = j.get("payload")
    ann = j.get("annotations")
    if not isinstance(mime, str) or not isinstance(payload_b64, str):
        raise GenError(f"{what}: mimeType and payload must be strings")
    if ann is not None and (not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values())):
        raise GenError(f"{what}: annotations must be an object of strings")
    return {"mimeType": mime, "payload": b64d(payload_b64, f"{what}: payload"), "annotations": ann or {}}


# --- registry client (plain HTTP, 127.0.0.1 only) -------------------------------------------------


class _LocalOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).hostname != "127.0.0.1":
            raise GenError(f"refusing a redirect to {newurl!r}: only 127.0.0.1 may be contacted")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Registry:
    def __init__(self, url: str, repo: str):
        if "://" not in url:
            url = "http://" + url  # 127.0.0.1:PORT
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http":
            raise GenError(f"registry URL {url!r} must be http://127.0.0.1:PORT")
        if u.hostname != "127.0.0.1":
            raise GenError(f"registry host {u.hostname!r} refused: only 127.0.0.1 may be contacted")
        try:
            port = u.port
        except ValueError:
            raise GenError(f"registry URL {url!r} has a bad port") from None
        if port is None:
            raise GenError(f"registry URL {url!r} needs an explicit port")
        if u.path not in ("", "/") or u.query or u.fragment or u.username or u.password:
            raise GenError(f"registry URL {url!r} must be just http://127.0.0.1:PORT")
        if not REPO_RE.match(repo):
            raise GenError(f"repository name {repo!r} is not valid (lower-case path components)")
        self.base = f"http://127.0.0.1:{port}"
        self.repo = repo
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _LocalOnlyRedirects())

    def request(self, method: str, url: str, body: bytes | None = None, headers: dict | None = None):
        full = urllib.parse.urljoin(self.base + "/", url)
        if urllib.parse.urlsplit(full).hostname != "127.0.0.1":
            raise GenError(f"refusing to contact {full!r}: only 127.0.0.1 may be contacted")
        req = urllib.request.Request(full, data=body, method=method, headers=headers or {})
        try:
            with self.opener.open(req, timeout=60) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()
        except urllib.error.URLError as e:
            raise GenError(f"{method} {full}: {e.reason}") from None
        except OSError as e:
            raise GenError(f"{method} {full}: {e}") from None

    def _fail(self, what: str, status: int, body: bytes):
        text = body[:300].decode("utf-8", "replace").strip()
        raise GenError(f"{what}: HTTP {status}: {text}")

    def blob_exists(self, digest: str) -> bool:
        st, _, _ = self.request("HEAD", f"/v2/{self.repo}/blobs/{digest}")
        return st == 200

    def put_blob(self, data: bytes) -> str:
        """Monolithic upload: POST /v2/REPO/blobs/uploads/, then PUT <location>?digest=."""
        digest = sha256_digest(data)
        if self.blob_exists(digest):
            return digest
        st, hdrs, body = self.request("POST", f"/v2/{self.repo}/blobs/uploads/", b"", {"Content-Length": "0"})
        if st != 202:
            self._fail(f"starting the upload of blob {digest}", st, body)
        loc = hdrs.get("Location")
        if not loc:
            raise GenError(f"starting the upload of blob {digest}: no Location header")
        sep = "&" if "?" in loc else "?"
        st, _, body = self.request(
            "PUT",
            loc + sep + "digest=" + urllib.parse.quote(digest, safe=""),
            data,
            {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
        )
        if st != 201:
            self._fail(f"uploading blob {digest}", st, body)
        return digest

    def get_blob(self, digest: str) -> bytes:
        st, _, body = self.request("GET", f"/v2/{self.repo}/blobs/{digest}")
        if st != 200:
            self._fail(f"fetching blob {digest}", st, body)
        if sha256_digest(body) != digest and digest.startswith("sha256:"):
            raise GenError(f"blob {digest} fetched with a different digest {sha256_digest(body)}")
        return body

    def get_manifest(self, tag: str):
        """Returns (bytes, media type) or None if the tag does not exist."""
        accept = ", ".join([OCI_MANIFEST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE, "application/vnd.oci.image.index.v1+json",
                            "application/vnd.docker.distribution.manifest.list.v2+json"])
        st, hdrs, body = self.request("GET", f"/v2/{self.repo}/manifests/{tag}", None, {"Accept": accept})
        if st == 404:
            return None
        if st != 200:
            self._fail(f"fetching manifest {self.repo}:{tag}", st, body)
        return body, (hdrs.get("Content-Type") or "").split(";")[0].strip()

    def head_manifest(self, ref: str):
        """Returns (media type, size, digest) or None if it does not exist (go-containerregistry's remote.Head)."""
        accept = ", ".join([OCI_MANIFEST_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE, OCI_INDEX_MEDIA_TYPE,
                            "application/vnd.docker.distribution.manifest.list.v2+json"])
        st, hdrs, body = self.request("HEAD", f"/v2/{self.repo}/manifests/{ref}", None, {"Accept": accept})
        if st == 404:
            return None
        if st != 200:
            self._fail(f"HEAD manifest {self.repo}@{ref}", st, body)
        mt = (hdrs.get("Content-Type") or "").split(";")[0].strip()
        try:
            size = int(hdrs.get("Content-Length") or "")
        except ValueError:
            raise GenError(f"HEAD manifest {self.repo}@{ref}: no Content-Length") from None
        return mt, size, hdrs.get("Docker-Content-Digest") or ref

    def put_manifest(self, tag: str, data: bytes, media_type: str) -> str:
        st, hdrs, body = self.request("PUT", f"/v2/{self.repo}/manifests/{tag}", data,
                                      {"Content-Type": media_type, "Content-Length": str(len(data))})
        if st != 201:
            self._fail(f"uploading manifest {self.repo}:{tag}", st, body)
        return hdrs.get("Docker-Content-Digest") or sha256_digest(data)


def attachment_tag(digest: str, kind: str = "sig") -> str:
    check_digest(digest)
    return digest.replace(":", "-", 1) + "." + kind


# --- subcommands: keyed ---------------------------------------------------------------------------


def cmd_keygen(a) -> int:
    key = generate_key(a.type)
    pem_type = PEM_TYPE_COSIGN if a.legacy_pem else PEM_TYPE_SIGSTORE
    enc = encrypt_cosign(pkcs8_der(key), a.password.encode("utf-8"), a.scrypt_n)
    write_file(a.out + ".key", pem_encode(pem_type, enc), "encrypted private key", private=True)
    write_file(a.out + ".pem", pem_encode("PRIVATE KEY", pkcs8_der(key)), "private key", private=True)
    write_file(a.out + ".pub", pem_encode("PUBLIC KEY", spki_der(key)), "public key")
    return 0


def cmd_decrypt_key(a) -> int:
    data = read_file(a.key, "encrypted key")
    typ, der = decrypt_cosign_pem(data, a.password.encode("utf-8"), f"key {a.key!r}")
    key = load_pkcs8_der(der, f"key {a.key!r}")
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        raise GenError(f"key {a.key!r}: unsupported key type {type(key).__name__}")
    if pkcs8_der(key) != der:
        sys.stderr.write(f"{PROG}: note: the decrypted PKCS#8 is not in the canonical form cryptography re-encodes\n")
    write_file(a.out, pem_encode("PRIVATE KEY", der), "decrypted key", private=True)
    if a.pub_out:
        write_file(a.pub_out, pem_encode("PUBLIC KEY", spki_der(key)), "public key")
    print(f"{key_kind(key)} {typ}")
    if a.expect_pub:
        want = spki_der(load_public_key(a.expect_pub))
        if want != spki_der(key):
            raise VerifyFailed(f"the decrypted private key does not match the public key {a.expect_pub!r}")
    return 0


def cmd_payload(a) -> int:
    if a.manifest:
        digest = sha256_digest(read_file(a.manifest, "manifest"))
    else:
        digest = a.digest
    if not a.no_validate:
        check_digest(digest)
        if not a.reference or any(c.isspace() for c in a.reference):
            raise GenError(f"reference {a.reference!r} is empty or contains white space")
    if a.optional_raw is not None:
        if a.timestamp is not None:
            raise GenError("--timestamp cannot be combined with --optional-raw")
        write_file(a.out, make_payload(digest, a.reference, RawJSON(a.optional_raw.encode("utf-8")), a.type), "payload")
        return 0
    if a.optional_json is not None:
        if a.timestamp is not None:
            raise GenError("--timestamp cannot be combined with --optional-json")
        opt = parse_json(a.optional_json, "--optional-json")
        if not isinstance(opt, dict) and opt is not None:
            raise GenError("--optional-json must be a JSON object or null")
        _reject_floats(opt, "--optional-json")
        optional = gomap_deep(opt)
    elif a.creator is not None or a.timestamp is not None:
        optional = {}
        if a.creator is not None:
            optional["creator"] = a.creator
        if a.timestamp is not None:
            optional["timestamp"] = a.timestamp
        optional = gomap(optional)
    else:
        if a.timestamp is not None:
            raise GenError("--timestamp cannot be combined with --optional-null")
        optional = None  # --optional-null, cosign's default
    write_file(a.out, make_payload(digest, a.reference, optional, a.type), "payload")
    return 0


def _reject_floats(v, what):
    if isinstance(v, float):
        raise GenError(f"{what}: floating-point numbers are not supported (Go re-encodes them); use --optional-raw")
    if isinstance(v, dict):
        for x in v.values():
            _reject_floats(x, what)
    if isinstance(v, list):
        for x in v:
            _reject_floats(x, what)


def cmd_sign(a) -> int:
    key = load_private_key(a.key, a.password)
    payload = read_file(a.payload, "payload")
    if isinstance(key, ed25519.Ed25519PrivateKey) and a.hash != "sha256":
        raise GenError("--hash does not apply to Ed25519 keys")
    sig = sign_bytes(key, payload, a.hash)
    write_file(a.out, b64e(sig).encode("ascii"), "signature")
    return 0


def cmd_verify(a) -> int:
    pub = load_public_key(a.pub)
    payload = read_file(a.payload, "payload")
    try:
        _, sig = read_b64_signature(a.signature)
    except GenError as e:
        raise VerifyFailed(str(e)) from None
    if not verify_bytes(pub, sig, payload):
        raise VerifyFailed(f"signature does not verify with {key_kind(pub)} public key {a.pub!r}")
    _check_payload_expectations(payload, a)
    print("OK")
    return 0


def _check_payload_expectations(payload: bytes, a) -> None:
    if not (a.check_payload or a.expect_digest or a.expect_reference):
        return
    p = parse_payload_strict(payload)
    if a.expect_digest and p["digest"] != a.expect_digest:
        raise VerifyFailed(f"payload digest {p['digest']!r} is not {a.expect_digest!r}")
    if a.expect_reference and p["reference"] != a.expect_reference:
        raise VerifyFailed(f"payload reference {p['reference']!r} is not {a.expect_reference!r}")


def cmd_sigfile(a) -> int:
    payload = read_file(a.payload, "payload")
    ann = {}
    if a.signature:
        b64sig, _ = read_b64_signature(a.signature)
        ann[SIGNATURE_ANNOTATION] = b64sig
    elif not a.omit_signature_annotation:
        raise GenError("give --signature (or --omit-signature-annotation)")
    ann.update(parse_annotation_files(a.annotation_file))
    ann.update(parse_kv(a.annotation, "--annotation"))
    write_file(a.out, make_sigfile(payload, ann, a.mime_type), "signature file")
    return 0


def cmd_read_sigfile(a) -> int:
    s = parse_sigfile(read_file(a.input, "signature file"), f"signature file {a.input!r}")
    try:
        shown_payload = parse_json(s["payload"], "payload")
    except GenError:
        shown_payload = s["payload"].decode("utf-8", "replace")
    print(json.dumps({"mimeType": s["mimeType"], "payload": shown_payload, "annotations": s["annotations"]}, indent=2))
    if a.payload_out:
        write_file(a.payload_out, s["payload"], "payload")
    sig_b64 = s["annotations"].get(SIGNATURE_ANNOTATION)
    if a.signature_out:
        if sig_b64 is None:
            raise GenError(f"no {SIGNATURE_ANNOTATION} annotation to write")
        write_file(a.signature_out, sig_b64.encode("utf-8"), "signature")
    if a.pub:
        pub = load_public_key(a.pub)
        if s["mimeType"] != SIMPLESIGNING_MEDIA_TYPE:
            raise VerifyFailed(f"mimeType {s['mimeType']!r} is not {SIMPLESIGNING_MEDIA_TYPE!r}")
        if sig_b64 is None:
            raise VerifyFailed(f"missing {SIGNATURE_ANNOTATION} annotation")
        try:
            sig = b64d(sig_b64, "signature annotation")
        except GenError as e:
            raise VerifyFailed(str(e)) from None
        if not verify_bytes(pub, sig, s["payload"]):
            raise VerifyFailed(f"signature does not verify with {key_kind(pub)} public key {a.pub!r}")
        _check_payload_expectations(s["payload"], a)
        sys.stderr.write("signature OK\n")
    return 0


def _oci_descriptor(media_type: str, data: bytes, digest: str, annotations: dict | None) -> dict:
    d = {"mediaType": media_type, "size": len(data), "digest": digest}  # go-containerregistry field order
    if annotations:
        d["annotations"] = gomap(annotations)
    return d


def _new_config(style: str, created: str | None) -> dict:
    if style == "cosign":
        # go-containerregistry's v1.ConfigFile as cosign writes it (zero times, one history entry per layer;
        # some cosign versions set "created" to the signing time).
        return {"architecture": "", "created": created or ZERO_TIME, "history": [], "os": "", "rootfs": {"type": "layers", "diff_ids": []},
                "config": {}}
    # containers/image: opencontainers image-spec v1.Image with only rootfs.type set.
    return {"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}


def cmd_attach(a) -> int:
    reg = Registry(a.registry, a.repo)
    kind = a.kind or ("att" if a.attestation else "sbom" if a.sbom else "sig")
    tag = a.tag or attachment_tag(a.digest, kind)
    if not a.sig and not a.raw_layer and not a.sigfile and not a.attestation and not a.sbom:
        raise GenError("nothing to attach: give --sig PAYLOAD:SIGNATURE, --sigfile FILE, --attestation ENVELOPE, --sbom FILE and/or --raw-layer FILE:MEDIATYPE")
    extra_ann = parse_annotation_files(a.annotation_file)
    extra_ann.update(parse_kv(a.annotation, "--annotation"))

    # Read all inputs before touching the registry.
    new_layers = []  # (data, media type, annotations)
    for spec in a.sig or []:
        if ":" not in spec:
            raise GenError(f"--sig {spec!r} is not PAYLOADFILE:SIGFILE")
        pfile, sfile = spec.rsplit(":", 1)
        payload = read_file(pfile, "payload")
        b64sig, _ = read_b64_signature(sfile)
        ann = {}
        if not a.omit_signature_annotation:
            ann[SIGNATURE_ANNOTATION] = ("!not-base64!" + b64sig) if a.bad_base64 else b64sig
        ann.update(extra_ann)
        new_layers.append((payload, a.layer_media_type, ann))
    for path in a.sigfile or []:
        s = parse_sigfile(read_file(path, "signature file"), f"signature file {path!r}")
        ann = dict(s["annotations"])
        ann.update(extra_ann)
        new_layers.append((s["payload"], s["mimeType"], ann))
    for path in a.attestation or []:
        # cosign v2 `attest`: the DSSE envelope is the layer, media type application/vnd.dsse.envelope.v1+json,
        # annotations predicateType and an empty dev.cosignproject.cosign/signature (static.NewAttestation
        # has no detached signature, and staticLayer.Annotations always sets the key).
        env_bytes = read_file(path, "DSSE envelope")
        ptype = a.predicate_type or _envelope_predicate_type(env_bytes, path)
        ann = {SIGNATURE_ANNOTATION: "", "predicateType": ptype}
        ann.update(extra_ann)
        new_layers.append((env_bytes, DSSE_ENVELOPE_MEDIA_TYPE, ann))
    for path in a.sbom or []:
        # cosign `attach sbom`: static.NewFile, one layer with the SBOM's media type and no annotations.
        new_layers.append((read_file(path, "SBOM"), a.sbom_media_type, dict(extra_ann)))
    for spec in a.raw_layer or []:
        if ":" not in spec:
            raise GenError(f"--raw-layer {spec!r} is not FILE:MEDIATYPE")
        f, mt = spec.split(":", 1)
        if not mt:
            raise GenError(f"--raw-layer {spec!r} has an empty media type")
        new_layers.append((read_file(f, "raw layer"), mt, dict(extra_ann)))

    existing = None if a.replace else reg.get_manifest(tag)
    if existing is None:
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST_MEDIA_TYPE, "config": None, "layers": []}
        config = _new_config(a.config_style, a.config_created)
    else:
        body, mt = existing
        if mt != OCI_MANIFEST_MEDIA_TYPE:
            raise GenError(f"{a.repo}:{tag} exists with media type {mt!r}, not an OCI image manifest (use --replace)")
        manifest = parse_json(body, f"existing manifest {a.repo}:{tag}")
        if not isinstance(manifest, dict) or not isinstance(manifest.get("layers", []), list) or not isinstance(manifest.get("config"), dict):
            raise GenError(f"existing manifest {a.repo}:{tag} is not a usable OCI image manifest (use --replace)")
        manifest.setdefault("layers", [])
        cdigest = manifest["config"].get("digest")
        if not isinstance(cdigest, str):
            raise GenError(f"existing manifest {a.repo}:{tag} has no config digest (use --replace)")
        config = parse_json(reg.get_blob(cdigest), f"existing config {cdigest}")
        if not isinstance(config, dict):
            raise GenError(f"existing config {cdigest} is not a JSON object (use --replace)")
        rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        if not isinstance(rootfs, dict):
            raise GenError(f"existing config {cdigest} has a bad rootfs (use --replace)")
        if not isinstance(rootfs.get("diff_ids"), list):
            rootfs["diff_ids"] = []

    added = 0
    for data, mt, ann in new_layers:
        digest = sha256_digest(data)
        desc = _oci_descriptor(mt, data, digest, ann)
        if not a.no_dedup and any(
            isinstance(l, dict) and l.get("mediaType") == mt and l.get("digest") == digest and l.get("size") == len(data)
            and (l.get("annotations") or {}) == ann
            for l in manifest["layers"]
        ):
            sys.stderr.write(f"layer {digest} with the same annotations is already attached; skipped\n")
            continue
        reg.put_blob(data)
        manifest["layers"].append(desc)
        config["rootfs"]["diff_ids"].append(digest)
        if isinstance(config.get("history"), list):
            config["history"].append({"created": ZERO_TIME})
        added += 1

    config_bytes = go_json(config)
    cdigest = reg.put_blob(config_bytes)
    manifest["config"] = _oci_descriptor(OCI_CONFIG_MEDIA_TYPE, config_bytes, cdigest, None)
    if a.manifest_media_type:
        manifest["mediaType"] = a.manifest_media_type
    manifest_bytes = go_json(manifest)
    mdigest = reg.put_manifest(tag, manifest_bytes, a.manifest_media_type or OCI_MANIFEST_MEDIA_TYPE)
    if a.out:
        write_file(a.out, manifest_bytes, "manifest")
    print(f"{a.repo}:{tag} {mdigest} layers={len(manifest['layers'])} added={added}")
    return 0


def _envelope_predicate_type(env_bytes: bytes, path: str) -> str:
    env = parse_json(env_bytes, f"DSSE envelope {path!r}")
    try:
        st = parse_json(b64d(env["payload"], "DSSE payload"), "DSSE payload")
        pt = st["predicateType"]
    except (KeyError, TypeError):
        raise GenError(f"DSSE envelope {path!r}: no in-toto predicateType in its payload; give --predicate-type") from None
    if not isinstance(pt, str):
        raise GenError(f"DSSE envelope {path!r}: predicateType is not a string")
    return pt


def cmd_fetch_attachment(a) -> int:
    reg = Registry(a.registry, a.repo)
    tag = a.tag or attachment_tag(a.digest, a.kind)
    got = reg.get_manifest(tag)
    if got is None:
        raise VerifyFailed(f"no attachment: {a.repo}:{tag} does not exist")
    body, mt = got
    if mt != OCI_MANIFEST_MEDIA_TYPE:
        raise VerifyFailed(f"{a.repo}:{tag} has media type {mt!r}, not {OCI_MANIFEST_MEDIA_TYPE!r}")
    manifest = parse_json(body, f"manifest {a.repo}:{tag}")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("layers"), list):
        raise VerifyFailed(f"manifest {a.repo}:{tag} has no layers list")
    try:
        os.makedirs(a.out, exist_ok=True)
    except OSError as e:
        raise GenError(f"cannot create {a.out!r}: {e.strerror}") from None
    write_file(os.path.join(a.out, "manifest.json"), body, "manifest")
    cfg = manifest.get("config")
    if isinstance(cfg, dict) and isinstance(cfg.get("digest"), str):
        write_file(os.path.join(a.out, "config.json"), reg.get_blob(cfg["digest"]), "config")
    pub = load_public_key(a.pub) if a.pub else None
    failures = []
    for i, layer in enumerate(manifest["layers"], 1):
        if not isinstance(layer, dict) or not isinstance(layer.get("digest"), str):
            failures.append(f"layer {i}: not a descriptor")
            continue
        data = reg.get_blob(layer["digest"])
        if isinstance(layer.get("size"), int) and layer["size"] != len(data):
            failures.append(f"layer {i}: size {len(data)} differs from the descriptor's {layer['size']}")
        ann = layer.get("annotations") or {}
        mt_l = layer.get("mediaType", "")
        base = os.path.join(a.out, f"layer-{i}")
        write_file(base + ".payload", data, "layer payload")
        write_file(base + ".descriptor.json", json.dumps(layer, indent=2).encode("utf-8") + b"\n", "layer descriptor")
        if isinstance(ann, dict) and all(isinstance(v, str) for v in ann.values()):
            write_file(os.path.join(a.out, f"signature-{i}"), make_sigfile(data, ann, mt_l if isinstance(mt_l, str) else ""), "signature file")
        sig_b64 = ann.get(SIGNATURE_ANNOTATION) if isinstance(ann, dict) else None
        if isinstance(sig_b64, str):
            write_file(base + ".sig", sig_b64.encode("utf-8"), "layer signature")
        status = ""
        if pub is not None:
            if mt_l != SIMPLESIGNING_MEDIA_TYPE:
                status = " verify=skipped(media type)"
            elif sig_b64 is None:
                status = " verify=FAILED(no signature annotation)"
                failures.append(f"layer {i}: no signature annotation")
            else:
                try:
                    ok = verify_bytes(pub, b64d(sig_b64, "signature annotation"), data)
                except GenError:
                    ok = False
                status = " verify=OK" if ok else " verify=FAILED"
                if not ok:
                    failures.append(f"layer {i}: signature does not verify")
        print(f"layer {i}: mediaType={mt_l} digest={layer['digest']} size={len(data)} signature={'yes' if sig_b64 is not None else 'no'}{status}")
    if failures:
        raise VerifyFailed("; ".join(failures))
    return 0


# --- keyless: a Fulcio-like CA, certificates, a Rekor key, SETs -----------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def parse_time(s: str, what: str) -> datetime.datetime:
    try:
        if re.fullmatch(r"-?\d+", s):
            return datetime.datetime.fromtimestamp(int(s), datetime.timezone.utc)
        t = datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError) as e:
        raise GenError(f"{what} {s!r} is not an ISO 8601 time or a Unix time: {e}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t.astimezone(datetime.timezone.utc)


def _write_private_pem(path: str, key) -> None:
    write_file(path, pem_encode("PRIVATE KEY", pkcs8_der(key)), "private key", private=True)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return pem_encode("CERTIFICATE", cert.public_bytes(serialization.Encoding.DER))


def _ski(pub) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(pub)


def _load_cert(path: str, what: str) -> x509.Certificate:
    typ, der = pem_first(read_file(path, what), f"{what} {path!r}")
    if typ != "CERTIFICATE":
        raise GenError(f"{what} {path!r}: PEM type {typ!r} is not CERTIFICATE")
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as e:
        raise GenError(f"{what} {path!r}: {e}") from None


def _load_certs(data: bytes, what: str) -> list[x509.Certificate]:
    out = []
    for typ, der in pem_blocks(data, what):
        if typ != "CERTIFICATE":
            raise GenError(f"{what}: unexpected PEM type {typ!r}")
        try:
            out.append(x509.load_der_x509_certificate(der))
        except ValueError as e:
            raise GenError(f"{what}: {e}") from None
    return out


def cmd_ca(a) -> int:
    nb = parse_time(a.not_before, "--not-before") if a.not_before else _now() - datetime.timedelta(days=1)
    na = parse_time(a.not_after, "--not-after") if a.not_after else nb + datetime.timedelta(days=3650)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, a.org), x509.NameAttribute(NameOID.COMMON_NAME, a.org)])
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name).issuer_name(root_name)
        .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(nb).not_valid_after(na)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ski(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, a.org),
                            x509.NameAttribute(NameOID.COMMON_NAME, a.org + "-intermediate")])
    inter = (
        x509.CertificateBuilder()
        .subject_name(inter_name).issuer_name(root_name)
        .public_key(inter_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(nb).not_valid_after(na)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ski(inter_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    write_file(a.out + ".root.pem", _cert_pem(root), "root certificate")
    _write_private_pem(a.out + ".root.key", root_key)
    write_file(a.out + ".intermediate.pem", _cert_pem(inter), "intermediate certificate")
    _write_private_pem(a.out + ".intermediate.key", inter_key)
    write_file(a.out + ".chain.pem", _cert_pem(inter) + _cert_pem(root), "certificate chain")
    return 0


def cmd_cert(a) -> int:
    issuer_cert = _load_cert(a.ca + ".intermediate.pem", "intermediate certificate")
    issuer_key = load_private_key(a.ca + ".intermediate.key", None)
    nb = parse_time(a.not_before, "--not-before") if a.not_before else _now() - datetime.timedelta(minutes=1)
    na = parse_time(a.not_after, "--not-after") if a.not_after else nb + datetime.timedelta(minutes=10)
    if na <= nb:
        raise GenError("--not-after must be later than --not-before")
    key = generate_key(a.key_type)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))  # Fulcio leaves the subject empty; the identity is in the SAN
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(nb).not_valid_after(na)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()), critical=False)
    )
    if a.eku == "code-signing":
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    elif a.eku == "server-auth":
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if a.email:
        b = b.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(e) for e in a.email]), critical=True)
    if a.issuer is not None:
        if a.issuer_ext in ("v1", "both"):
            b = b.add_extension(x509.UnrecognizedExtension(OID_FULCIO_ISSUER_V1, a.issuer.encode("utf-8")), critical=False)
        if a.issuer_ext in ("v2", "both"):
            v2 = a.issuer_v2 if a.issuer_v2 is not None else a.issuer
            b = b.add_extension(x509.UnrecognizedExtension(OID_FULCIO_ISSUER_V2, _der_utf8string(v2)), critical=False)
    if a.ct_key:
        ct_key = load_private_key(a.ct_key, None)
        if not isinstance(ct_key, ec.EllipticCurvePrivateKey):
            raise GenError("--ct-key must be an ECDSA private key (the CT log's key)")
        sct_time = parse_time(a.sct_time, "--sct-time") if a.sct_time else nb
        # The SCT signs the precertificate TBS, i.e. the TBS without the SCT list extension. That TBS does
        # not depend on the SCT's bytes, so build once with a placeholder, take the TBS without the
        # extension (cryptography's tbs_precertificate_bytes), sign it, and build again with the real SCT.
        placeholder = b.add_extension(x509.UnrecognizedExtension(OID_SCT_LIST, _sct_list_extension([b"\x00"])), critical=False)
        tbs = placeholder.sign(issuer_key, hashes.SHA256()).tbs_precertificate_bytes
        sct = make_precert_sct(ct_key, tbs, spki_der(issuer_cert.public_key()), sct_time)
        b = b.add_extension(x509.UnrecognizedExtension(OID_SCT_LIST, _sct_list_extension([sct])), critical=False)
    cert = b.sign(issuer_key, hashes.SHA256())
    write_file(a.out + ".pem", _cert_pem(cert), "certificate")
    _write_private_pem(a.out + ".key", key)
    return 0


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _der_utf8string(s: str) -> bytes:
    b = s.encode("utf-8")
    return b"\x0c" + _der_len(len(b)) + b


def _parse_der_utf8string(b: bytes) -> str:
    if len(b) < 2 or b[0] != 0x0C:
        raise VerifyFailed("OIDC issuer v2 extension is not a DER UTF8String")
    ln, i = b[1], 2
    if ln & 0x80:
        nb = ln & 0x7F
        if nb == 0 or nb > 4 or len(b) < 2 + nb:
            raise VerifyFailed("OIDC issuer v2 extension has a bad DER length")
        ln, i = int.from_bytes(b[2 : 2 + nb], "big"), 2 + nb
    if len(b) != i + ln:
        raise VerifyFailed("OIDC issuer v2 extension has trailing or missing data")
    try:
        return b[i:].decode("utf-8")
    except UnicodeDecodeError:
        raise VerifyFailed("OIDC issuer v2 extension is not UTF-8") from None


def _tls_vec(data: bytes, len_bytes: int) -> bytes:
    if len(data) >= 1 << (8 * len_bytes):
        raise GenError(f"TLS vector of {len(data)} bytes does not fit a {len_bytes}-byte length")
    return len(data).to_bytes(len_bytes, "big") + data


def make_precert_sct(ct_key, tbs_precert: bytes, issuer_spki: bytes, when: datetime.datetime) -> bytes:
    """An RFC 6962 v1 SCT (TLS encoding) for a precertificate entry, signed with the CT log's ECDSA key."""
    log_id = hashlib.sha256(spki_der(ct_key)).digest()
    ts = int(when.timestamp() * 1000).to_bytes(8, "big")
    extensions = b""
    signed = (
        b"\x00"  # sct_version v1
        + b"\x00"  # signature_type certificate_timestamp
        + ts
        + b"\x00\x01"  # entry_type precert_entry
        + hashlib.sha256(issuer_spki).digest()  # issuer_key_hash
        + _tls_vec(tbs_precert, 3)
        + _tls_vec(extensions, 2)
    )
    sig = ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
    return b"\x00" + log_id + ts + _tls_vec(extensions, 2) + b"\x04\x03" + _tls_vec(sig, 2)  # sha256, ecdsa


def _sct_list_extension(scts: list) -> bytes:
    """extnValue of 1.3.6.1.4.1.11129.2.4.2: an OCTET STRING around the TLS SignedCertificateTimestampList."""
    lst = _tls_vec(b"".join(_tls_vec(s, 2) for s in scts), 2)
    return b"\x04" + _der_len(len(lst)) + lst


def cmd_ct_key(a) -> int:
    key = ec.generate_private_key(ec.SECP256R1())
    write_file(a.out + ".pub", pem_encode("PUBLIC KEY", spki_der(key)), "CT log public key")
    _write_private_pem(a.out + ".pem", key)
    print(hashlib.sha256(spki_der(key)).hexdigest())
    return 0


def cmd_rekor_key(a) -> int:
    key = ec.generate_private_key(ec.SECP256R1())
    write_file(a.out + ".pub", pem_encode("PUBLIC KEY", spki_der(key)), "Rekor public key")
    _write_private_pem(a.out + ".pem", key)
    print(hashlib.sha256(spki_der(key)).hexdigest())
    return 0


def make_hashedrekord_body(payload: bytes, sig: bytes, key_or_cert_pem: bytes, algorithm: str = "sha256",
                           api_version: str = REKOR_API_VERSION) -> bytes:
    """The canonicalized hashedrekord v0.0.1 entry body Rekor stores (sorted keys, compact)."""
    return canonical_json(
        {
            "apiVersion": api_version,
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": algorithm, "value": hashlib.sha256(payload).hexdigest()}},
                "signature": {"content": b64e(sig), "publicKey": {"content": b64e(key_or_cert_pem)}},
            },
        }
    )


def cmd_set(a) -> int:
    rekor_key = load_private_key(a.rekor_key + ".pem", None)
    if not isinstance(rekor_key, ec.EllipticCurvePrivateKey):
        raise GenError("the Rekor key must be an ECDSA key (containers/image only accepts ECDSA Rekor keys)")
    payload = read_file(a.payload, "payload")
    _, sig = read_b64_signature(a.signature)
    key_or_cert = read_file(a.cert or a.pub, "certificate or public key")
    pem_first(key_or_cert, "certificate or public key")  # must be PEM
    body = a.body_file and read_file(a.body_file, "body") or make_hashedrekord_body(
        payload, sig, key_or_cert, a.hash_algorithm, a.api_version)
    log_id = a.log_id or hashlib.sha256(spki_der(rekor_key)).hexdigest()
    set_payload = {"body": b64e(body), "integratedTime": a.integrated_time, "logID": log_id, "logIndex": a.log_index}
    set_sig = sign_bytes(rekor_key, canonical_json(set_payload))
    # cosign's bundle.RekorBundle field order
    bundle = {"SignedEntryTimestamp": b64e(set_sig),
              "Payload": {"body": set_payload["body"], "integratedTime": a.integrated_time, "logIndex": a.log_index, "logID": log_id}}
    write_file(a.out, go_json(bundle), "SET")
    return 0


def verify_set(rekor_pubs: list, set_bytes: bytes, key_or_cert_pem: bytes, sig_b64: str, payload: bytes) -> int:
    """Checks a dev.sigstore.cosign/bundle value as containers/image does; returns integratedTime."""
    try:
        s = parse_json(set_bytes, "SET")
    except GenError as e:
        raise VerifyFailed(str(e)) from None
    check_exact_fields(s, {"SignedEntryTimestamp", "Payload"}, "SET")
    try:
        set_sig = b64d(s["SignedEntryTimestamp"] if isinstance(s["SignedEntryTimestamp"], str) else "", "SignedEntryTimestamp")
    except GenError as e:
        raise VerifyFailed(str(e)) from None
    p = s["Payload"]
    if not isinstance(p, dict):
        raise VerifyFailed("SET Payload is not an object")
    canon = canonical_json(p)
    if not any(isinstance(k, ec.EllipticCurvePublicKey) and verify_bytes(k, set_sig, canon) for k in rekor_pubs):
        raise VerifyFailed("cryptographic signature verification of the Rekor SET failed")
    check_exact_fields(p, {"body", "integratedTime", "logIndex", "logID"}, "SET Payload")
    if not all(isinstance(p[k], int) and not isinstance(p[k], bool) for k in ("integratedTime", "logIndex")) or not isinstance(p["logID"], str):
        raise VerifyFailed("SET Payload integratedTime/logIndex must be integers and logID a string")
    try:
        body = parse_json(b64d(p["body"] if isinstance(p["body"], str) else "", "SET body"), "SET body")
    except GenError as e:
        raise VerifyFailed(str(e)) from None
    if not isinstance(body, dict) or body.get("kind") != "hashedrekord":
        raise VerifyFailed("SET body is not a hashedrekord entry")
    if body.get("apiVersion") != REKOR_API_VERSION:
        raise VerifyFailed(f"unsupported hashedrekord version {body.get('apiVersion')!r}")
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    sigd = spec.get("signature") if isinstance(spec.get("signature"), dict) else None
    if sigd is None or not isinstance(sigd.get("publicKey"), dict):
        raise VerifyFailed("hashedrekord lacks signature.publicKey")
    try:
        rekor_pem = b64d(sigd["publicKey"].get("content") or "", "hashedrekord publicKey")
        rekor_sig = b64d(sigd.get("content") or "", "hashedrekord signature")
        given_sig = b64d(sig_b64, "signature")
        rb, gb = pem_blocks(rekor_pem, "hashedrekord publicKey"), pem_blocks(key_or_cert_pem, "key or certificate")
    except GenError as e:
        raise VerifyFailed(str(e)) from None
    if len(rb) != 1 or len(gb) != 1 or rb[0][1] != gb[0][1]:
        raise VerifyFailed("publicKey in Rekor SET does not match")
    if rekor_sig != given_sig:
        raise VerifyFailed("signature in Rekor SET does not match")
    h = spec.get("data", {}).get("hash") if isinstance(spec.get("data"), dict) else None
    if not isinstance(h, dict) or h.get("algorithm") != "sha256" or not isinstance(h.get("value"), str):
        raise VerifyFailed("hashedrekord data.hash is missing or not sha256")
    if h["value"].lower() != hashlib.sha256(payload).hexdigest():
        raise VerifyFailed("payload in Rekor SET does not match")
    return p["integratedTime"]


def _sig_inputs(a):
    """(payload, base64 signature, annotations) from --sigfile or from --payload/--signature."""
    if a.sigfile:
        s = parse_sigfile(read_file(a.sigfile, "signature file"), f"signature file {a.sigfile!r}")
        ann = s["annotations"]
        if SIGNATURE_ANNOTATION not in ann:
            raise VerifyFailed(f"missing {SIGNATURE_ANNOTATION} annotation")
        return s["payload"], ann[SIGNATURE_ANNOTATION], ann
    if not (a.payload and a.signature):
        raise GenError("give --sigfile, or --payload and --signature")
    b64sig, _ = read_b64_signature(a.signature)
    return read_file(a.payload, "payload"), b64sig, {}


def cmd_verify_set(a) -> int:
    payload, sig_b64, ann = _sig_inputs(a)
    if a.set:
        set_bytes = read_file(a.set, "SET")
    elif BUNDLE_ANNOTATION in ann:
        set_bytes = ann[BUNDLE_ANNOTATION].encode("utf-8")
    else:
        raise VerifyFailed(f"missing {BUNDLE_ANNOTATION} annotation (or give --set)")
    if a.pub:
        # containers/image re-marshals the trusted public key to PEM before comparing.
        kc = pem_encode("PUBLIC KEY", spki_der(load_public_key(a.pub)))
        pub = load_public_key(a.pub)
    elif a.cert:
        kc = read_file(a.cert, "certificate")
        pub = _load_cert(a.cert, "certificate").public_key()
    elif CERTIFICATE_ANNOTATION in ann:
        kc = ann[CERTIFICATE_ANNOTATION].encode("utf-8")
        pub = None
    else:
        raise GenError("give --pub or --cert (or a signature file with a certificate annotation)")
    t = verify_set([load_public_key(p) for p in a.rekor_pub], set_bytes, kc, sig_b64, payload)
    if pub is not None:
        try:
            ok = verify_bytes(pub, b64d(sig_b64, "signature"), payload)
        except GenError:
            ok = False
        if not ok:
            raise VerifyFailed("the payload signature does not verify")
    print(f"OK integratedTime={t}")
    return 0


def _ext(cert, oid):
    try:
        return cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None


def fulcio_issuer(cert: x509.Certificate) -> str:
    v1 = [e for e in cert.extensions if e.oid == OID_FULCIO_ISSUER_V1]
    v2 = [e for e in cert.extensions if e.oid == OID_FULCIO_ISSUER_V2]
    if len(v1) > 1 or len(v2) > 1:
        raise VerifyFailed("duplicate OIDC issuer extension")
    i1 = v1[0].value.value.decode("utf-8", "replace") if v1 else None
    i2 = _parse_der_utf8string(v2[0].value.value) if v2 else None
    if i1 is not None and i2 is not None and i1 != i2:
        raise VerifyFailed(f"inconsistent OIDC issuer extension values: v1 {i1!r}, v2 {i2!r}")
    if i1 is None and i2 is None:
        raise VerifyFailed("certificate is missing the OIDC issuer extension")
    return i1 if i1 is not None else i2


def verify_chain(leaf: x509.Certificate, intermediates: list, roots: list, at: datetime.datetime) -> None:
    """Leaf -> (intermediates)* -> one of roots, all valid at `at`, CA flags, EKUs allowing code signing (as Go's x509)."""

    def valid_at(c, what):
        if not (c.not_valid_before_utc <= at <= c.not_valid_after_utc):
            raise VerifyFailed(f"{what} is not valid at {at.isoformat()} (valid {c.not_valid_before_utc.isoformat()} to {c.not_valid_after_utc.isoformat()})")

    def eku_ok(c):
        e = _ext(c, x509.oid.ExtensionOID.EXTENDED_KEY_USAGE)
        return e is None or ExtendedKeyUsageOID.CODE_SIGNING in e.value or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in e.value

    valid_at(leaf, "leaf certificate")
    # Go's x509 (which containers/image uses) treats a certificate without the EKU extension as
    # allowing any usage; one with the extension must list code signing (or any).
    if not eku_ok(leaf):
        raise VerifyFailed("leaf certificate's extended key usage excludes code-signing")
    cur, depth = leaf, 0
    pool = list(intermediates)
    while True:
        for r in roots:
            try:
                cur.verify_directly_issued_by(r)
            except (ValueError, TypeError, InvalidSignature):
                continue
            valid_at(r, "root certificate")
            if not eku_ok(r):
                raise VerifyFailed("root certificate's extended key usage excludes code signing")
            return
        nxt = None
        for c in pool:
            try:
                cur.verify_directly_issued_by(c)
            except (ValueError, TypeError, InvalidSignature):
                continue
            nxt = c
            break
        if nxt is None or depth > 8:
            raise VerifyFailed("certificate chain does not lead to a trusted root")
        bc = _ext(nxt, x509.oid.ExtensionOID.BASIC_CONSTRAINTS)
        if bc is None or not bc.value.ca:
            raise VerifyFailed("an intermediate certificate is not a CA")
        if bc.value.path_length is not None and bc.value.path_length < depth:
            raise VerifyFailed("intermediate certificate path length exceeded")
        valid_at(nxt, "intermediate certificate")
        if not eku_ok(nxt):
            raise VerifyFailed("intermediate certificate's extended key usage excludes code signing")
        pool.remove(nxt)
        cur, depth = nxt, depth + 1


def cmd_verify_keyless(a) -> int:
    payload, sig_b64, ann = _sig_inputs(a)
    cert_pem = read_file(a.cert, "certificate") if a.cert else ann.get(CERTIFICATE_ANNOTATION, "").encode("utf-8")
    if not cert_pem:
        raise VerifyFailed(f"missing {CERTIFICATE_ANNOTATION} annotation (or give --cert)")
    chain_pem = read_file(a.chain, "chain") if a.chain else ann.get(CHAIN_ANNOTATION, "").encode("utf-8")
    if a.set:
        set_bytes = read_file(a.set, "SET")
    elif BUNDLE_ANNOTATION in ann:
        set_bytes = ann[BUNDLE_ANNOTATION].encode("utf-8")
    else:
        raise VerifyFailed(f"missing {BUNDLE_ANNOTATION} annotation (or give --set)")
    t = verify_set([load_public_key(p) for p in a.rekor_pub], set_bytes, cert_pem, sig_b64, payload)
    try:
        leafs = _load_certs(cert_pem, "certificate")
        chain = _load_certs(chain_pem, "chain") if chain_pem else []
    except GenError as e:
        raise VerifyFailed(str(e)) from None
    if len(leafs) != 1:
        raise VerifyFailed(f"expected exactly one certificate, got {len(leafs)}")
    leaf = leafs[0]
    roots = []
    for r in a.ca_root:
        roots += _load_certs(read_file(r, "root certificates"), f"root certificates {r!r}")
    # containers/image uses all chain certificates but the last (assumed to be the root) as intermediates.
    verify_chain(leaf, chain[:-1] if len(chain) > 1 else [], roots, datetime.datetime.fromtimestamp(t, datetime.timezone.utc))
    issuer = fulcio_issuer(leaf)
    if issuer != a.issuer:
        raise VerifyFailed(f"unexpected OIDC issuer {issuer!r}")
    san = _ext(leaf, x509.oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    emails = san.value.get_values_for_type(x509.RFC822Name) if san else []
    if a.email not in emails:
        raise VerifyFailed(f"required email {a.email!r} not found (got {emails})")
    try:
        ok = verify_bytes(leaf.public_key(), b64d(sig_b64, "signature"), payload)
    except GenError:
        ok = False
    if not ok:
        raise VerifyFailed("the payload signature does not verify with the certificate's key")
    _check_payload_expectations(payload, a)
    print(f"OK integratedTime={t} email={a.email} issuer={issuer}")
    return 0


# --- Sigstore bundles (v0.3), trust configuration, and sigstore-python as the verifier ------------

BUNDLE_V03_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
TRUST_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
SIGNING_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
INTOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1"
COSIGN_SIGN_PREDICATE_TYPE = "https://sigstore.dev/cosign/sign/v1"
DSSE_ENVELOPE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
MAX_TREE_SIZE = 1 << 16


def _b64_pem(obj) -> str:
    """base64 of the PEM of a certificate or public key, byte-identical to what sigstore-python rebuilds."""
    if isinstance(obj, x509.Certificate):
        return b64e(obj.public_bytes(serialization.Encoding.PEM))
    return b64e(obj.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _rfc6962_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _rfc6962_node(l: bytes, r: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + l + r).digest()


def _mth(leaves: list) -> bytes:
    """RFC 6962 Merkle tree hash of leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)  # largest power of two smaller than n
    return _rfc6962_node(_mth(leaves[:k]), _mth(leaves[k:]))


def _audit_path(m: int, leaves: list) -> list:
    """RFC 6962 PATH(m, D[n]), lowest level first."""
    if len(leaves) <= 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return _audit_path(m, leaves[:k]) + [_mth(leaves[k:])]
    return _audit_path(m - k, leaves[k:]) + [_mth(leaves[:k])]


def make_checkpoint(rekor_key, origin: str, signer: str, tree_size: int, root: bytes) -> str:
    """A Rekor v1 signed checkpoint (signed note): body lines, a blank line, then
    '\u2014 NAME base64(4-byte key hint || ECDSA signature over the body)'. The key hint is the first four
    bytes of the SHA-256 of the Rekor key's SubjectPublicKeyInfo."""
    body = f"{origin}\n{tree_size}\n{b64e(root)}\n"
    sig = rekor_key.sign(body.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
    hint = hashlib.sha256(spki_der(rekor_key)).digest()[:4]
    return body + "\n" + f"\u2014 {signer} {b64e(hint + sig)}\n"


def make_intoto_statement(digest_hex: str, predicate_type: str, predicate, subject_name: str | None) -> bytes:
    subject = {}
    if subject_name is not None:
        subject["name"] = subject_name
    subject["digest"] = {"sha256": digest_hex}
    return go_json({"_type": INTOTO_STATEMENT_V1, "subject": [subject], "predicateType": predicate_type, "predicate": predicate})


def _load_key_or_prefix(path: str, what: str):
    if not os.path.exists(path) and os.path.exists(path + ".pem"):
        path += ".pem"
    key = load_private_key(path, None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise GenError(f"{what} must be an ECDSA private key")
    return key


def _flip_last_byte(b: bytes) -> bytes:
    return b[:-1] + bytes([b[-1] ^ 0x01])


def cmd_bundle(a) -> int:
    check_digest(a.digest)
    if not a.digest.startswith("sha256:"):
        raise GenError("--digest must be sha256:HEX")
    digest_hex = a.digest.split(":", 1)[1]
    digest_raw = bytes.fromhex(digest_hex)
    if a.tamper_payload and not a.dsse:
        raise GenError("--tamper-payload applies to --dsse bundles only")

    # The signer: a key (verificationMaterial.publicKey) or a certificate and its key.
    if a.key:
        signer = load_private_key(a.key, a.password)
        verifier_obj = signer.public_key()
        cert = None
    else:
        if not (a.cert and a.cert_key):
            raise GenError("give --key PEM, or --cert PEM and --cert-key PEM")
        cert = _load_cert(a.cert, "certificate")
        signer = load_private_key(a.cert_key, a.password)
        if spki_der(signer) != spki_der(cert.public_key()):
            raise GenError("--cert-key does not match the certificate's public key")
        verifier_obj = cert
    if not isinstance(signer, ec.EllipticCurvePrivateKey):
        raise GenError("only ECDSA signing keys are supported here (sigstore-python verifies ECDSA leaves only)")
    hash_alg = {"secp256r1": hashes.SHA256(), "secp384r1": hashes.SHA384(), "secp521r1": hashes.SHA512()}[signer.curve.name]

    bundle = {"mediaType": BUNDLE_V03_MEDIA_TYPE, "verificationMaterial": {}}
    vm = bundle["verificationMaterial"]
    if cert is not None:
        vm["certificate"] = {"rawBytes": b64e(cert.public_bytes(serialization.Encoding.DER))}
    else:
        vm["publicKey"] = {"hint": a.key_hint if a.key_hint is not None else b64e(hashlib.sha256(spki_der(signer)).digest())}

    if a.dsse:
        predicate = parse_json(read_file(a.predicate_json, "predicate"), "predicate") if a.predicate_json else {}
        _reject_floats(predicate, "--predicate-json")
        payload = make_intoto_statement(digest_hex, a.predicate_type, predicate, a.subject_name)
        sig = signer.sign(dsse_pae(INTOTO_PAYLOAD_TYPE, payload), ec.ECDSA(hash_alg))
        envelope = {"payload": b64e(payload), "payloadType": INTOTO_PAYLOAD_TYPE, "signatures": [{"sig": b64e(sig)}]}
        # Rekor's dsse v0.0.1 entry: hashes of the payload and of the envelope, and the signatures with their
        # verifier (base64 of the PEM). sigstore-python checks payloadHash and signatures, not envelopeHash.
        envelope_json = go_json({"payloadType": INTOTO_PAYLOAD_TYPE, "payload": b64e(payload), "signatures": [{"keyid": "", "sig": b64e(sig)}]})
        body_obj = {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(envelope_json).hexdigest()},
                "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                "signatures": [{"signature": b64e(sig), "verifier": _b64_pem(verifier_obj)}],
            },
        }
        if a.envelope_out:
            write_file(a.envelope_out, envelope_json, "DSSE envelope")
        if a.payload_out:
            write_file(a.payload_out, payload, "in-toto statement")
    else:
        if hash_alg.name != "sha256":
            raise GenError("--message-signature needs a P-256 key (the digest is SHA-256)")
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

        sig = signer.sign(digest_raw, ec.ECDSA(Prehashed(hashes.SHA256())))
        message_signature = {"messageDigest": {"algorithm": "SHA2_256", "digest": b64e(digest_raw)}, "signature": b64e(sig)}
        body_obj = {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest_hex}},
                "signature": {"content": b64e(sig), "publicKey": {"content": _b64_pem(verifier_obj)}},
            },
        }
    body = canonical_json(body_obj)

    vm["tlogEntries"] = []
    if a.rekor_key:
        rekor_key = _load_key_or_prefix(a.rekor_key, "--rekor-key")
        log_id = hashlib.sha256(spki_der(rekor_key)).digest()
        t = a.integrated_time if a.integrated_time is not None else int(_now().timestamp())
        idx = a.log_index
        size = a.tree_size if a.tree_size is not None else idx + 3
        if idx < 0 or size <= idx:
            raise GenError("--tree-size must be larger than --log-index (and --log-index not negative)")
        if size > MAX_TREE_SIZE:
            raise GenError(f"--tree-size is limited to {MAX_TREE_SIZE} here")
        # SET: the Rekor key's signature over the canonical JSON of body, integratedTime, logID, logIndex.
        set_body = body
        if a.set_for_other_body:
            other = json.loads(body)
            other["spec"]["signatures" if a.dsse else "signature"] = (
                [{"signature": b64e(_flip_last_byte(sig)), "verifier": _b64_pem(verifier_obj)}] if a.dsse
                else {"content": b64e(_flip_last_byte(sig)), "publicKey": {"content": _b64_pem(verifier_obj)}})
            set_body = canonical_json(other)
        set_payload = canonical_json({"body": b64e(set_body), "integratedTime": t, "logID": log_id.hex(), "logIndex": idx})
        set_sig = rekor_key.sign(set_payload, ec.ECDSA(hashes.SHA256()))
        # Inclusion proof: the entry at idx among size leaves; the other leaves are arbitrary but fixed.
        leaves = [_rfc6962_leaf(body if i == idx else b"ferry-test-leaf-%d" % i) for i in range(size)]
        root = _mth(leaves)
        path = _audit_path(idx, leaves)
        if a.bad_inclusion_proof:
            if not path:
                raise GenError("--bad-inclusion-proof needs --tree-size of at least 2")
            path[0] = _flip_last_byte(path[0])
        checkpoint = make_checkpoint(rekor_key, f"{a.checkpoint_origin} - {a.tree_id}", a.checkpoint_origin, size, root)
        entry = {
            "logIndex": str(idx),
            "logId": {"keyId": b64e(log_id)},
            "kindVersion": {"kind": body_obj["kind"], "version": body_obj["apiVersion"]},
            "integratedTime": str(t),
        }
        if not a.no_set:
            entry["inclusionPromise"] = {"signedEntryTimestamp": b64e(set_sig)}
        if not a.no_inclusion_proof:
            entry["inclusionProof"] = {
                "logIndex": str(idx),
                "rootHash": b64e(root),
                "treeSize": str(size),
                "hashes": [b64e(h) for h in path],
                "checkpoint": {"envelope": checkpoint},
            }
        entry["canonicalizedBody"] = b64e(body)
        vm["tlogEntries"].append(entry)
    elif a.no_set or a.no_inclusion_proof or a.bad_inclusion_proof or a.set_for_other_body:
        raise GenError("the transparency-log defect switches need --rekor-key")

    if a.dsse:
        if a.tamper_payload:
            tampered = payload.replace(b'"predicate":', b'"predicate" :', 1)
            envelope["payload"] = b64e(tampered)
        if a.tamper_signature:
            envelope["signatures"][0]["sig"] = b64e(_flip_last_byte(sig))
        bundle["dsseEnvelope"] = envelope
    else:
        if a.tamper_signature:
            message_signature["signature"] = b64e(_flip_last_byte(sig))
        bundle["messageSignature"] = message_signature
    write_file(a.out, json.dumps(bundle, indent=2).encode("utf-8") + b"\n", "bundle")
    return 0


def _key_details(pub) -> str:
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return {"secp256r1": "PKIX_ECDSA_P256_SHA_256", "secp384r1": "PKIX_ECDSA_P384_SHA_384",
                "secp521r1": "PKIX_ECDSA_P521_SHA_512"}[pub.curve.name]
    if isinstance(pub, rsa.RSAPublicKey):
        if pub.key_size not in (2048, 3072, 4096):
            raise GenError(f"RSA-{pub.key_size} has no sigstore key details")
        return f"PKIX_RSA_PKCS1V15_{pub.key_size}_SHA256"
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return "PKIX_ED25519"
    raise GenError(f"unsupported key type {type(pub).__name__}")


def _rfc3339(t: datetime.datetime) -> str:
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cmd_trust_config(a) -> int:
    chain = _load_certs(read_file(a.ca, "CA chain"), f"CA chain {a.ca!r}")
    if not chain:
        raise GenError(f"CA chain {a.ca!r} holds no certificate")
    root = chain[-1]
    start = parse_time(a.not_before, "--not-before") if a.not_before else root.not_valid_before_utc
    valid_for = {"start": _rfc3339(start)}
    if a.not_after:
        valid_for["end"] = _rfc3339(parse_time(a.not_after, "--not-after"))

    def org_cn(c):
        o = c.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        cn = c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return {"organization": o[0].value if o else "", "commonName": cn[0].value if cn else ""}

    def tlog(path, url):
        pub = load_public_key(path)
        der = spki_der(pub)
        return {
            "baseUrl": url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": b64e(der), "keyDetails": _key_details(pub), "validFor": dict(valid_for)},
            "logId": {"keyId": b64e(hashlib.sha256(der).digest())},
        }

    trusted_root = {
        "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
        "tlogs": [tlog(p, a.rekor_url) for p in a.rekor_pub],
        "certificateAuthorities": [{
            "subject": org_cn(root),
            "uri": a.fulcio_url,
            "certChain": {"certificates": [{"rawBytes": b64e(c.public_bytes(serialization.Encoding.DER))} for c in chain]},
            "validFor": dict(valid_for),
        }],
        "ctlogs": [tlog(p, a.ct_url) for p in a.ct_pub],
        "timestampAuthorities": [],
    }
    svc = lambda url: {"url": url, "majorApiVersion": 1, "validFor": {"start": valid_for["start"]}, "operator": "ferry-test"}
    signing_config = {
        "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
        "caUrls": [svc(a.fulcio_url)],
        "oidcUrls": [svc(a.oidc_url)],
        "rekorTlogUrls": [svc(a.rekor_url)],
        "rekorTlogConfig": {"selector": "ANY"},
        "tsaUrls": [],
        "tsaConfig": {"selector": "ANY"},
    }
    cfg = {"mediaType": TRUST_CONFIG_MEDIA_TYPE, "trustedRoot": trusted_root, "signingConfig": signing_config}
    write_file(a.out, json.dumps(cfg, indent=2).encode("utf-8") + b"\n", "trust config")
    if a.trusted_root_out:
        write_file(a.trusted_root_out, json.dumps(trusted_root, indent=2).encode("utf-8") + b"\n", "trusted root")
    return 0


def cmd_verify_bundle(a) -> int:
    if a.digest:
        check_digest(a.digest)
        if not a.digest.startswith("sha256:"):
            raise GenError("--digest must be sha256:HEX")
    if a.cli:
        return _verify_bundle_cli(a)
    try:
        import sigstore.errors
        from sigstore.hashes import Hashed
        from sigstore.models import Bundle, ClientTrustConfig
        from sigstore.verify import Verifier, policy
        from sigstore_models.common.v1 import HashAlgorithm
    except ImportError as e:
        raise GenError(f"verify-bundle needs sigstore-python ({e}); run: pip install -r {os.path.dirname(os.path.abspath(__file__))}/requirements.txt") from None
    import logging

    logging.disable(logging.WARNING)  # sigstore-python logs warnings of its own; the reason is printed below
    try:
        cfg = ClientTrustConfig.from_json(read_file(a.trust_config, "trust config").decode("utf-8"))
        trusted_root = cfg.trusted_root
    except (ValueError, sigstore.errors.Error) as e:
        raise GenError(f"trust config {a.trust_config!r} is not accepted by sigstore-python: {e}") from None
    try:
        bundle = Bundle.from_json(read_file(a.bundle, "bundle"))
        verifier = Verifier(trusted_root=trusted_root)
        pol = policy.Identity(identity=a.cert_identity, issuer=a.cert_oidc_issuer)
        if a.artifact:
            target = read_file(a.artifact, "artifact")
            want_hex = hashlib.sha256(target).hexdigest()
        else:
            want_hex = a.digest.split(":", 1)[1]
            target = Hashed(digest=bytes.fromhex(want_hex), algorithm=HashAlgorithm.SHA2_256)
        if bundle._inner.dsse_envelope is not None:
            ptype, payload = verifier.verify_dsse(bundle, pol)
            # What the sigstore CLI then does (sigstore/_cli.py _verify_common): an in-toto payload with a
            # subject whose sha256 is the input's digest.
            if ptype != INTOTO_PAYLOAD_TYPE:
                raise VerifyFailed(f"expected JSON payload for DSSE, got {ptype}")
            try:
                st = json.loads(payload)
                subjects = st["subject"]
                ok = any(isinstance(s, dict) and isinstance(s.get("digest"), dict) and s["digest"].get("sha256") == want_hex for s in subjects)
            except (ValueError, KeyError, TypeError):
                raise VerifyFailed("the DSSE payload is not an in-toto statement with a subject list") from None
            if not ok:
                raise VerifyFailed(f"in-toto statement has no subject for digest {want_hex}")
            if any(isinstance(s, dict) and "name" not in s for s in subjects):
                sys.stderr.write("note: a subject has no name; the sigstore CLI (verify identity) rejects such a statement "
                                 "(its in-toto model requires subject[].name), the API used here does not look\n")
            print(f"OK dsse payloadType={ptype} predicateType={st.get('predicateType')}")
        else:
            verifier.verify_artifact(target, bundle, pol)
            print("OK message-signature")
    except sigstore.errors.Error as e:
        raise VerifyFailed(f"sigstore-python: {type(e).__name__}: {e}") from None
    return 0


def _verify_bundle_cli(a) -> int:
    import subprocess

    target = a.artifact or a.digest
    cmd = [sys.executable, "-m", "sigstore", "--trust-config", a.trust_config, "verify", "identity", "--offline",
           "--bundle", a.bundle, "--cert-identity", a.cert_identity, "--cert-oidc-issuer", a.cert_oidc_issuer, target]
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["COLUMNS"] = "1000"  # the CLI logs through rich, which wraps at the terminal width
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    out = "\n".join(line.rstrip() for line in (r.stdout + r.stderr).strip().splitlines())
    if r.returncode == 0:
        print(out)
        return 0
    if "No module named sigstore" in out:
        raise GenError("verify-bundle --cli needs sigstore-python (pip install sigstore)")
    if r.returncode == 2 and "usage:" in out:
        raise GenError(f"the sigstore CLI refused its arguments: {out}")
    raise VerifyFailed(f"sigstore CLI exit {r.returncode}: {out}")


# --- OCI 1.1 referrers (cosign v3 bundles) ----------------------------------------------------------

BUNDLE_PREDICATE_TYPE_ANNOTATION = "dev.sigstore.bundle.predicateType"
BUNDLE_CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
CREATED_ANNOTATION = "org.opencontainers.image.created"


def _referrers_via_api(reg: Registry, subject: str):
    """GET /v2/NAME/referrers/DIGEST: the index bytes if the registry implements the Referrers API, else None
    (go-containerregistry treats 404 and 400, and a 200 that is not an OCI index, as 'not supported')."""
    st, hdrs, body = reg.request("GET", f"/v2/{reg.repo}/referrers/{subject}", None, {"Accept": OCI_INDEX_MEDIA_TYPE})
    if st == 200 and (hdrs.get("Content-Type") or "").split(";")[0].strip() == OCI_INDEX_MEDIA_TYPE:
        return body
    if st in (200, 404, 400, 406):
        return None
    reg._fail(f"GET referrers of {subject}", st, body)


def fallback_tag(digest: str) -> str:
    check_digest(digest)
    return digest.replace(":", "-", 1)


def cmd_push_referrer(a) -> int:
    reg = Registry(a.registry, a.repo)
    check_digest(a.subject_digest)
    data = read_file(a.file, "artifact file")
    annotations = {}
    if not a.no_created:
        created = _rfc3339(parse_time(a.created, "--created")) if a.created else _rfc3339(_now())
        annotations[CREATED_ANNOTATION] = created
    if a.predicate_type:
        # cosign's WriteAttestationNewBundleFormat (pkg/oci/remote/write.go)
        annotations[BUNDLE_CONTENT_ANNOTATION] = "dsse-envelope"
        annotations[BUNDLE_PREDICATE_TYPE_ANNOTATION] = a.predicate_type
    annotations.update(parse_kv(a.annotation, "--annotation"))
    layer_ann = parse_kv(a.layer_annotation, "--layer-annotation")

    # cosign's WriteReferrer: HEAD the subject for its descriptor (fails if it does not exist).
    head = reg.head_manifest(a.subject_digest)
    if head is None:
        raise GenError(f"subject {a.repo}@{a.subject_digest} does not exist (cosign fails here too)")
    smt, ssize, sdigest = head
    if sdigest != a.subject_digest:
        raise GenError(f"the registry answered digest {sdigest} for {a.subject_digest}")

    config = b"{}"  # the OCI empty descriptor's content; cosign uploads it as a blob
    cdigest = reg.put_blob(config)
    ldigest = reg.put_blob(data)
    layer = _oci_descriptor(a.layer_media_type or a.artifact_type, data, ldigest, layer_ann)
    config_desc = {"mediaType": OCI_EMPTY_MEDIA_TYPE, "size": len(config), "digest": cdigest}
    if not a.no_config_artifact_type:
        config_desc["artifactType"] = a.artifact_type  # cosign sets it on the config descriptor too
    # go-containerregistry v1.Manifest field order, then cosign's referrerManifest.ArtifactType
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST_MEDIA_TYPE, "config": config_desc, "layers": [layer]}
    if annotations:
        manifest["annotations"] = gomap(annotations)
    manifest["subject"] = {"mediaType": smt, "size": ssize, "digest": sdigest}
    manifest["artifactType"] = a.artifact_type
    mbytes = go_json(manifest)
    mdigest = sha256_digest(mbytes)
    got = reg.put_manifest(mdigest, mbytes, OCI_MANIFEST_MEDIA_TYPE)
    if got != mdigest:
        raise GenError(f"the registry stored the referrer manifest as {got}, not {mdigest}")
    if a.out:
        write_file(a.out, mbytes, "referrer manifest")

    if a.fallback_tag:
        # go-containerregistry's commitSubjectReferrers: only when the registry has no Referrers API.
        if _referrers_via_api(reg, a.subject_digest) is not None and not a.force_fallback_tag:
            sys.stderr.write("the registry implements the Referrers API; fallback tag not touched\n")
        else:
            tag = fallback_tag(a.subject_digest)
            desc = {"mediaType": OCI_MANIFEST_MEDIA_TYPE, "size": len(mbytes), "digest": mdigest}
            if a.fallback_annotations and annotations:
                desc["annotations"] = gomap(annotations)
            desc["artifactType"] = a.artifact_type
            existing = reg.get_manifest(tag)
            if existing is None:
                index = {"schemaVersion": 2, "mediaType": OCI_INDEX_MEDIA_TYPE, "manifests": [desc]}
                changed = True
            else:
                body, mt = existing
                index = parse_json(body, f"fallback tag {a.repo}:{tag}")
                if not isinstance(index, dict) or index.get("schemaVersion") != 2 or index.get("mediaType") != OCI_INDEX_MEDIA_TYPE \
                        or not isinstance(index.get("manifests"), list):
                    raise GenError(f"fallback tag {a.repo}:{tag} is not an OCI image index (schema 2)")
                changed = not any(isinstance(d, dict) and d.get("digest") == mdigest for d in index["manifests"])
                if changed:
                    index["manifests"].append(desc)
            if changed:
                index["manifests"].sort(key=lambda d: d.get("digest", "") if isinstance(d, dict) else "")
                ibytes = go_json(index)
                idigest = reg.put_manifest(tag, ibytes, OCI_INDEX_MEDIA_TYPE)
                sys.stderr.write(f"fallback tag {a.repo}:{tag} -> {idigest} ({len(index['manifests'])} referrers)\n")
            else:
                sys.stderr.write(f"fallback tag {a.repo}:{tag} already lists {mdigest}\n")
    print(mdigest)
    return 0


def cmd_list_referrers(a) -> int:
    reg = Registry(a.registry, a.repo)
    check_digest(a.subject_digest)
    body = _referrers_via_api(reg, a.subject_digest)
    if body is not None:
        source = "referrers API"
    else:
        tag = fallback_tag(a.subject_digest)
        got = reg.get_manifest(tag)
        if got is None:
            source = f"fallback tag {tag} (absent: no referrers)"
            body = go_json({"schemaVersion": 2, "mediaType": OCI_INDEX_MEDIA_TYPE, "manifests": []})
        else:
            body, mt = got
            source = f"fallback tag {tag}"
            if mt != OCI_INDEX_MEDIA_TYPE:
                raise VerifyFailed(f"fallback tag {a.repo}:{tag} has media type {mt!r}, not an OCI image index")
    index = parse_json(body, "referrers index")
    if a.artifact_type and isinstance(index, dict) and isinstance(index.get("manifests"), list):
        index["manifests"] = [d for d in index["manifests"] if isinstance(d, dict) and d.get("artifactType") == a.artifact_type]
    sys.stderr.write(f"source: {source}\n")
    print(json.dumps(index, indent=2))
    return 0


# --- CLI ------------------------------------------------------------------------------------------


def _add_payload_checks(p):
    p.add_argument("--check-payload", action="store_true", help="also parse the payload as strictly as containers/image")
    p.add_argument("--expect-digest", help="require this docker-manifest-digest (implies --check-payload)")
    p.add_argument("--expect-reference", help="require this docker-reference (implies --check-payload)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description="Independent sigstore/cosign test-material generator (see README.md).")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("keygen", help="key pair: PREFIX.pub, PREFIX.key (cosign-encrypted), PREFIX.pem (plain PKCS#8)")
    p.add_argument("--type", choices=KEY_TYPES, default="ecdsa-p256")
    p.add_argument("--out", required=True, metavar="PREFIX")
    p.add_argument("--password", default="", help="encryption password (default: empty, as cosign allows)")
    p.add_argument("--legacy-pem", action="store_true", help=f"PEM type {PEM_TYPE_COSIGN!r} instead of {PEM_TYPE_SIGSTORE!r}")
    p.add_argument("--scrypt-n", type=int, choices=SCRYPT_N_ALLOWED, default=32768, help="scrypt N (r=8, p=1); default 32768")
    p.set_defaults(fn=cmd_keygen)

    p = sub.add_parser("decrypt-key", help="decrypt a cosign encrypted private key to PKCS#8 PEM")
    p.add_argument("--key", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--out", required=True, metavar="PEM")
    p.add_argument("--pub-out", metavar="PUB", help="also write the public key")
    p.add_argument("--expect-pub", metavar="PUB", help="exit 1 unless the key matches this public key")
    p.set_defaults(fn=cmd_decrypt_key)

    p = sub.add_parser("payload", help="the cosign simple-signing payload")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--digest", help="sha256:HEX")
    g.add_argument("--manifest", metavar="FILE", help="use sha256 of this manifest file as the digest")
    p.add_argument("--reference", required=True, help="HOST/REPO:TAG (docker-reference)")
    o = p.add_mutually_exclusive_group()
    o.add_argument("--optional-null", action="store_true", help='"optional":null (cosign; the default)')
    o.add_argument("--optional-json", metavar="JSON", help="an object, re-encoded with sorted keys")
    o.add_argument("--optional-raw", metavar="TEXT", help="inserted verbatim (for malformed payloads)")
    o.add_argument("--creator", help="containers/image style optional.creator")
    p.add_argument("--timestamp", type=int, help="containers/image style optional.timestamp (with or without --creator)")
    p.add_argument("--type", default=PAYLOAD_TYPE, help="critical.type (default: %(default)r)")
    p.add_argument("--no-validate", action="store_true", help="accept any digest and reference text")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_payload)

    p = sub.add_parser("sign", help="base64 signature of a payload")
    p.add_argument("--key", required=True, help="PKCS#8 PEM, or a cosign encrypted key with --password")
    p.add_argument("--password")
    p.add_argument("--payload", required=True)
    p.add_argument("--hash", choices=sorted(_HASHES), default="sha256", help="ECDSA/RSA digest (containers/image requires sha256)")
    p.add_argument("--out", required=True, metavar="SIGFILE")
    p.set_defaults(fn=cmd_sign)

    p = sub.add_parser("verify", help="verify a base64 signature of a payload (exit 0 valid, 1 not)")
    p.add_argument("--pub", required=True, help="PEM PUBLIC KEY or CERTIFICATE")
    p.add_argument("--payload", required=True)
    p.add_argument("--signature", required=True, metavar="SIGFILE")
    _add_payload_checks(p)
    p.set_defaults(fn=cmd_verify)

    p = sub.add_parser("sigfile", help="containers/image signature file (0x00 'sigstore-json' \\n JSON)")
    p.add_argument("--payload", required=True)
    p.add_argument("--signature", metavar="SIGFILE")
    p.add_argument("--omit-signature-annotation", action="store_true")
    p.add_argument("--annotation", action="append", metavar="K=V")
    p.add_argument("--annotation-file", action="append", metavar="K=PATH", help="annotation value read from a file (bundle, certificate, chain)")
    p.add_argument("--mime-type", default=SIMPLESIGNING_MEDIA_TYPE)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_sigfile)

    p = sub.add_parser("read-sigfile", help="print a signature file with its payload decoded; verify with --pub")
    p.add_argument("--in", dest="input", required=True)
    p.add_argument("--pub")
    p.add_argument("--payload-out")
    p.add_argument("--signature-out")
    _add_payload_checks(p)
    p.set_defaults(fn=cmd_read_sigfile)

    p = sub.add_parser("attach", help="push a cosign attachment (sha256-HEX.sig) to a registry on 127.0.0.1")
    p.add_argument("--registry", required=True, metavar="http://127.0.0.1:PORT")
    p.add_argument("--repo", required=True)
    p.add_argument("--digest", required=True, help="the signed image's manifest digest")
    p.add_argument("--tag", help="override the sha256-HEX.KIND tag")
    p.add_argument("--kind", choices=("sig", "att", "sbom"), help="the tag suffix (default: att with --attestation, sbom with --sbom, else sig)")
    p.add_argument("--attestation", action="append", metavar="ENVELOPE", help="a DSSE envelope JSON file (cosign v2 .att layer)")
    p.add_argument("--predicate-type", help="the .att layer's predicateType annotation (default: read from the envelope's statement)")
    p.add_argument("--sbom", action="append", metavar="FILE", help="an SBOM file (cosign .sbom layer)")
    p.add_argument("--sbom-media-type", default="text/spdx+json", help="text/spdx+json (default), text/spdx, application/vnd.cyclonedx+json, ...")
    p.add_argument("--sig", action="append", metavar="PAYLOADFILE:SIGFILE")
    p.add_argument("--sigfile", action="append", metavar="FILE", help="a containers/image signature file: its payload, MIME type and all its annotations")
    p.add_argument("--raw-layer", action="append", metavar="FILE:MEDIATYPE")
    p.add_argument("--annotation", action="append", metavar="K=V")
    p.add_argument("--annotation-file", action="append", metavar="K=PATH")
    p.add_argument("--layer-media-type", default=SIMPLESIGNING_MEDIA_TYPE)
    p.add_argument("--omit-signature-annotation", action="store_true")
    p.add_argument("--bad-base64", action="store_true", help="corrupt the signature annotation's base64")
    p.add_argument("--replace", action="store_true", help="ignore an existing attachment instead of appending")
    p.add_argument("--no-dedup", action="store_true", help="append even an identical layer")
    p.add_argument("--config-style", choices=("cosign", "containers-image"), default="cosign")
    p.add_argument("--config-created", metavar="RFC3339", help="the new cosign-style config's created time (default 0001-01-01T00:00:00Z)")
    p.add_argument("--manifest-media-type", help="override the manifest's mediaType and Content-Type")
    p.add_argument("--out", help="also write the pushed manifest here")
    p.set_defaults(fn=cmd_attach)

    p = sub.add_parser("fetch-attachment", help="download an attachment's layers as payload/signature files")
    p.add_argument("--registry", required=True, metavar="http://127.0.0.1:PORT")
    p.add_argument("--repo", required=True)
    p.add_argument("--digest", required=True)
    p.add_argument("--tag")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--pub", help="verify every simple-signing layer (exit 1 on any failure)")
    p.add_argument("--kind", choices=("sig", "att", "sbom"), default="sig", help="the tag suffix (default sig)")
    p.set_defaults(fn=cmd_fetch_attachment)

    p = sub.add_parser("ca", help="Fulcio-like root and intermediate CA (ECDSA P-256)")
    p.add_argument("--out", required=True, metavar="PREFIX")
    p.add_argument("--org", default="ferry-test-fulcio")
    p.add_argument("--not-before")
    p.add_argument("--not-after")
    p.set_defaults(fn=cmd_ca)

    p = sub.add_parser("cert", help="Fulcio-like leaf code-signing certificate and its key")
    p.add_argument("--ca", required=True, metavar="PREFIX")
    p.add_argument("--email", action="append", help="SAN email (repeatable; omit for none)")
    p.add_argument("--issuer", help="OIDC issuer URL (omit for no issuer extension)")
    p.add_argument("--issuer-ext", choices=("v1", "v2", "both"), default="both")
    p.add_argument("--issuer-v2", help="a different value for the v2 extension (inconsistent-issuer tests)")
    p.add_argument("--eku", choices=("code-signing", "server-auth", "none"), default="code-signing")
    p.add_argument("--key-type", choices=KEY_TYPES, default="ecdsa-p256")
    p.add_argument("--not-before")
    p.add_argument("--not-after")
    p.add_argument("--ct-key", metavar="PEM", help="embed an SCT list signed with this CT log private key (ct-key's PREFIX.pem)")
    p.add_argument("--sct-time", help="the SCT's timestamp (default: --not-before)")
    p.add_argument("--out", required=True, metavar="PREFIX")
    p.set_defaults(fn=cmd_cert)

    p = sub.add_parser("ct-key", help="CT-log-like ECDSA P-256 key: PREFIX.pub, PREFIX.pem; prints the log ID")
    p.add_argument("--out", required=True, metavar="PREFIX")
    p.set_defaults(fn=cmd_ct_key)

    p = sub.add_parser("rekor-key", help="Rekor-like ECDSA P-256 key: PREFIX.pub, PREFIX.pem; prints the log ID")
    p.add_argument("--out", required=True, metavar="PREFIX")
    p.set_defaults(fn=cmd_rekor_key)

    p = sub.add_parser("set", help="dev.sigstore.cosign/bundle annotation value (Rekor SET)")
    p.add_argument("--rekor-key", required=True, metavar="PREFIX")
    p.add_argument("--payload", required=True)
    p.add_argument("--signature", required=True, metavar="SIGFILE")
    k = p.add_mutually_exclusive_group(required=True)
    k.add_argument("--cert", metavar="CERTPEM")
    k.add_argument("--pub", metavar="PUB", help="for key+Rekor signatures")
    p.add_argument("--integrated-time", type=int, required=True, metavar="UNIX")
    p.add_argument("--log-index", type=int, required=True)
    p.add_argument("--log-id", help="default: hex sha256 of the Rekor public key")
    p.add_argument("--hash-algorithm", default="sha256")
    p.add_argument("--api-version", default=REKOR_API_VERSION)
    p.add_argument("--body-file", help="use this exact entry body")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_set)

    p = sub.add_parser("bundle", help="Sigstore bundle v0.3 JSON (DSSE in-toto statement or message signature)")
    p.add_argument("--digest", required=True, help="sha256:HEX, the image manifest digest")
    c = p.add_mutually_exclusive_group(required=True)
    c.add_argument("--dsse", action="store_true", help="a DSSE envelope around an in-toto Statement v1 about the digest")
    c.add_argument("--message-signature", action="store_true", help="a signature over the message whose SHA-256 is the digest")
    p.add_argument("--subject-name", help="the statement subject's name (omitted by default, as cosign does)")
    p.add_argument("--predicate-type", default=COSIGN_SIGN_PREDICATE_TYPE)
    p.add_argument("--predicate-json", metavar="FILE", help="the predicate (default {})")
    k = p.add_mutually_exclusive_group()
    k.add_argument("--key", metavar="PEM", help="sign with this key: verificationMaterial.publicKey with a hint")
    k.add_argument("--cert", metavar="PEM", help="the leaf certificate (verificationMaterial.certificate); needs --cert-key")
    p.add_argument("--cert-key", metavar="PEM")
    p.add_argument("--password", help="for a cosign-encrypted --key/--cert-key")
    p.add_argument("--key-hint", help="publicKey.hint (default: base64 of the SHA-256 of the key's SubjectPublicKeyInfo)")
    p.add_argument("--rekor-key", metavar="PEM", help="add a Rekor v1 tlog entry signed with this key (rekor-key's PREFIX.pem or PREFIX)")
    p.add_argument("--log-index", type=int, default=7)
    p.add_argument("--tree-size", type=int, help="default: --log-index + 3")
    p.add_argument("--integrated-time", type=int, metavar="UNIX", help="default: now")
    p.add_argument("--checkpoint-origin", default="rekor.ferry.test", help="the checkpoint's origin name (and signer name)")
    p.add_argument("--tree-id", default="1193050959916656506", help="appended to the origin as ' - ID', as Rekor v1 does")
    p.add_argument("--no-set", action="store_true", help="defect: no inclusionPromise")
    p.add_argument("--set-for-other-body", action="store_true", help="defect: the SET signs a different body")
    p.add_argument("--no-inclusion-proof", action="store_true", help="defect: no inclusionProof")
    p.add_argument("--bad-inclusion-proof", action="store_true", help="defect: one proof hash altered")
    p.add_argument("--tamper-payload", action="store_true", help="defect: the DSSE payload changed after signing")
    p.add_argument("--tamper-signature", action="store_true", help="defect: the signature altered after logging")
    p.add_argument("--envelope-out", metavar="FILE", help="also write the DSSE envelope alone (the .att layer format)")
    p.add_argument("--payload-out", metavar="FILE", help="also write the in-toto statement")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_bundle)

    p = sub.add_parser("trust-config", help="sigstore ClientTrustConfig JSON (trusted root + minimal signing config)")
    p.add_argument("--ca", required=True, metavar="PEM", help="the CA chain, intermediate(s) first, root last (ca's PREFIX.chain.pem)")
    p.add_argument("--rekor-pub", action="append", required=True, metavar="PEM")
    p.add_argument("--ct-pub", action="append", required=True, metavar="PEM")
    p.add_argument("--not-before", help="start of every validity window (default: the root's notBefore)")
    p.add_argument("--not-after", help="end of the validity windows (default: open)")
    p.add_argument("--rekor-url", default="http://127.0.0.1:1/rekor", help="recorded only; nothing is contacted")
    p.add_argument("--ct-url", default="http://127.0.0.1:1/ct")
    p.add_argument("--fulcio-url", default="http://127.0.0.1:1/fulcio")
    p.add_argument("--oidc-url", default="http://127.0.0.1:1/oidc")
    p.add_argument("--trusted-root-out", metavar="FILE", help="also write the trustedRoot alone")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_trust_config)

    p = sub.add_parser("verify-bundle", help="verify a bundle with sigstore-python, offline (exit 0 accepted, 1 rejected)")
    p.add_argument("--bundle", required=True)
    p.add_argument("--trust-config", required=True)
    t = p.add_mutually_exclusive_group(required=True)
    t.add_argument("--digest", help="sha256:HEX: the signed digest")
    t.add_argument("--artifact", metavar="FILE", help="the signed file")
    p.add_argument("--cert-identity", required=True, metavar="EMAIL")
    p.add_argument("--cert-oidc-issuer", required=True, metavar="URL")
    p.add_argument("--cli", action="store_true", help="run `python3 -m sigstore verify identity --offline` instead of the API")
    p.set_defaults(fn=cmd_verify_bundle)

    p = sub.add_parser("push-referrer", help="push an OCI 1.1 referrer artifact as cosign does for bundles; prints its digest")
    p.add_argument("--registry", required=True, metavar="127.0.0.1:PORT")
    p.add_argument("--repo", required=True)
    p.add_argument("--subject-digest", required=True, metavar="sha256:HEX")
    p.add_argument("--file", required=True, metavar="BLOB", help="the single layer's content (e.g. a bundle)")
    p.add_argument("--artifact-type", required=True, help="e.g. application/vnd.dev.sigstore.bundle.v0.3+json")
    p.add_argument("--layer-media-type", help="default: the artifact type (as cosign does)")
    p.add_argument("--predicate-type", help="adds dev.sigstore.bundle.predicateType=T and dev.sigstore.bundle.content=dsse-envelope")
    p.add_argument("--created", metavar="TIME", help="org.opencontainers.image.created (default: now, RFC 3339 UTC seconds)")
    p.add_argument("--no-created", action="store_true", help="omit org.opencontainers.image.created")
    p.add_argument("--annotation", action="append", metavar="K=V", help="manifest annotation (repeatable)")
    p.add_argument("--layer-annotation", action="append", metavar="K=V", help="layer descriptor annotation (cosign sets none for bundles)")
    p.add_argument("--no-config-artifact-type", action="store_true", help="leave artifactType off the config descriptor")
    f = p.add_mutually_exclusive_group()
    f.add_argument("--fallback-tag", dest="fallback_tag", action="store_true", default=True,
                   help="create/update the sha256-HEX index tag when the registry lacks the Referrers API (default)")
    f.add_argument("--no-fallback-tag", dest="fallback_tag", action="store_false")
    p.add_argument("--force-fallback-tag", action="store_true", help="update the fallback tag even if the Referrers API answers")
    p.add_argument("--fallback-annotations", action="store_true",
                   help="also copy the manifest annotations into the fallback index descriptor (distribution-spec; "
                        "go-containerregistry, hence cosign, does not)")
    p.add_argument("--out", help="also write the referrer manifest here")
    p.set_defaults(fn=cmd_push_referrer)

    p = sub.add_parser("list-referrers", help="print the referrers index of a digest (Referrers API, else the fallback tag)")
    p.add_argument("--registry", required=True, metavar="127.0.0.1:PORT")
    p.add_argument("--repo", required=True)
    p.add_argument("--subject-digest", required=True, metavar="sha256:HEX")
    p.add_argument("--artifact-type", help="keep only descriptors with this artifactType")
    p.set_defaults(fn=cmd_list_referrers)

    for name, fn in (("verify-set", cmd_verify_set), ("verify-keyless", cmd_verify_keyless)):
        p = sub.add_parser(name, help="check a Rekor SET" if name == "verify-set" else "check a Fulcio+Rekor signature end to end")
        p.add_argument("--sigfile", help="a containers/image signature file (annotations supply what is not given)")
        p.add_argument("--payload")
        p.add_argument("--signature", metavar="SIGFILE")
        p.add_argument("--set", help="the bundle JSON")
        p.add_argument("--rekor-pub", action="append", required=True)
        p.add_argument("--cert")
        if name == "verify-set":
            p.add_argument("--pub")
        else:
            p.add_argument("--chain")
            p.add_argument("--ca-root", action="append", required=True)
            p.add_argument("--email", required=True)
            p.add_argument("--issuer", required=True)
            _add_payload_checks(p)
        p.set_defaults(fn=fn)
    return ap


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return a.fn(a)
    except VerifyFailed as e:
        sys.stderr.write(f"{PROG} {a.cmd}: verification failed: {e}\n")
        return 1
    except GenError as e:
        sys.stderr.write(f"{PROG} {a.cmd}: error: {e}\n")
        return 2
    except Exception:  # a bug, or input this program did not foresee: never exit 1 ("did not verify")
        import traceback

        traceback.print_exc()
        sys.stderr.write(f"{PROG} {a.cmd}: error: unexpected failure (see the traceback above)\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
