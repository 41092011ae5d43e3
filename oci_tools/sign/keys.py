"""Key pairs for signing: ECDSA P-256, the private key in cosign's encrypted PEM.

The encrypted form (cosign ``marshalKeyPair`` / go-tuf ``encrypted``): the
PKCS#8 DER of the key sealed with NaCl secretbox (XSalsa20-Poly1305) under a
key derived by scrypt from the passphrase; the PEM body is base64 of a JSON
document naming the KDF (with salt and parameters), the cipher (with nonce)
and the ciphertext.  We write the PEM type ``ENCRYPTED COSIGN PRIVATE KEY``
with scrypt N=2^15, r=8, p=1: the only form skopeo 1.9 (go-tuf v0.3) reads.
We read that type and ``ENCRYPTED SIGSTORE PRIVATE KEY`` (cosign >= 2) with
the three parameter sets securesystemslib accepts, and plain PKCS#8 PEM.

``cryptography`` has no XSalsa20, so secretbox comes from PyNaCl.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15

from oci_tools.errors import ClobberError, SignatureError, UsageError
from oci_tools.fsutil import atomic_writer

#: The PEM type cosign 1.x writes and skopeo 1.9 requires.
COSIGN_PEM = "ENCRYPTED COSIGN PRIVATE KEY"
#: The PEM type cosign >= 2 writes.
SIGSTORE_PEM = "ENCRYPTED SIGSTORE PRIVATE KEY"
#: The passphrase variable cosign reads.
PASSWORD_ENV = "COSIGN_PASSWORD"

#: scrypt parameters written (go-tuf's only set, so skopeo 1.9 can read the key).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 15, 8, 1
#: (N, r, p) accepted when reading (go-tuf's and securesystemslib's sets).
_SCRYPT_ACCEPTED = {(1 << 15, 8, 1), (1 << 16, 8, 1), (1 << 17, 8, 1)}
_SALT, _NONCE, _KEY = 32, 24, 32
#: A private key file larger than this is not a key.
_MAX_KEY_FILE = 64 << 10

PrivateKey = ec.EllipticCurvePrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


def _scrypt(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    # hashlib's default maxmem (32 MiB) is below what N=2^17, r=8 needs (128 MiB).
    return hashlib.scrypt(passphrase, salt=salt, n=n, r=r, p=p, dklen=_KEY, maxmem=256 << 20)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encrypt_private_key(der: bytes, passphrase: bytes) -> bytes:
    """Seal PKCS#8 ``der`` the way cosign does; returns the JSON document
    that becomes the PEM body."""
    from nacl.secret import SecretBox

    salt, nonce = os.urandom(_SALT), os.urandom(_NONCE)
    key = _scrypt(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    # SecretBox output is nonce || tag || data; the document keeps the
    # nonce apart and the ciphertext as tag || data (Go's secretbox.Seal).
    sealed = SecretBox(key).encrypt(der, nonce).ciphertext
    doc = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
            "salt": _b64(salt),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": _b64(nonce)},
        "ciphertext": _b64(sealed),
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _field_bytes(doc: Any, *path: str) -> bytes:
    cur = doc
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            raise SignatureError(f"encrypted key: missing {'.'.join(path)}")
        cur = cur[p]
    if not isinstance(cur, str):
        raise SignatureError(f"encrypted key: {'.'.join(path)} is not a string")
    try:
        return base64.b64decode(cur, validate=True)
    except ValueError:
        raise SignatureError(f"encrypted key: {'.'.join(path)} is not base64") from None


def decrypt_private_key(body: bytes, passphrase: bytes) -> bytes:
    """Open a cosign-encrypted key document; returns the sealed DER.
    SignatureError for an unknown KDF or cipher, parameters outside the
    accepted sets, or a wrong passphrase."""
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    try:
        doc = json.loads(body)
    except ValueError:
        raise SignatureError("encrypted key: not a JSON document") from None
    kdf = doc.get("kdf") if isinstance(doc, dict) else None
    cipher = doc.get("cipher") if isinstance(doc, dict) else None
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise SignatureError("encrypted key: the key derivation is not scrypt")
    if not isinstance(cipher, dict) or cipher.get("name") != "nacl/secretbox":
        raise SignatureError("encrypted key: the cipher is not nacl/secretbox")
    params = kdf.get("params")
    nrp = tuple(params.get(k) for k in ("N", "r", "p")) if isinstance(params, dict) else (None,) * 3
    if nrp not in _SCRYPT_ACCEPTED:
        raise SignatureError(f"encrypted key: unexpected scrypt parameters {nrp}")
    salt = _field_bytes(doc, "kdf", "salt")
    nonce = _field_bytes(doc, "cipher", "nonce")
    sealed = _field_bytes(doc, "ciphertext")
    if len(nonce) != _NONCE:
        raise SignatureError("encrypted key: the nonce is not 24 bytes")
    n, r, p = (int(x) for x in nrp)
    key = _scrypt(passphrase, salt, n, r, p)
    try:
        return bytes(SecretBox(key).decrypt(sealed, nonce))
    except CryptoError:
        raise SignatureError(
            "cannot decrypt the private key: wrong passphrase (or a damaged key file)",
            hint=f"the passphrase comes from ${PASSWORD_ENV} or the prompt",
        ) from None


# ------------------------------------------------------------------ PEM


def _pem(kind: str, body: bytes) -> bytes:
    b = base64.b64encode(body).decode("ascii")
    lines = [b[i : i + 64] for i in range(0, len(b), 64)]
    return ("\n".join([f"-----BEGIN {kind}-----", *lines, f"-----END {kind}-----"]) + "\n").encode()


def _unpem(data: bytes) -> tuple[str, bytes]:
    """The type and body of the first PEM block in ``data``."""
    text = data.decode("ascii", "replace")
    start = text.find("-----BEGIN ")
    if start < 0:
        raise SignatureError("not a PEM file")
    head_end = text.find("-----", start + 11)
    kind = text[start + 11 : head_end]
    end_marker = f"-----END {kind}-----"
    end = text.find(end_marker, head_end)
    if head_end < 0 or end < 0:
        raise SignatureError("not a PEM file (no END line)")
    body = "".join(
        line.strip()
        for line in text[head_end + 5 : end].splitlines()
        if line.strip() and ":" not in line  # skip RFC 1421 headers
    )
    try:
        return kind, base64.b64decode(body, validate=True)
    except ValueError:
        raise SignatureError(f"PEM block {kind!r} is not base64") from None


# ------------------------------------------------------------ passphrases


def read_passphrase(*, confirm: bool = False) -> bytes:
    """``$COSIGN_PASSWORD`` (may be empty, as with cosign), else a prompt on
    a terminal (asked twice with ``confirm``); UsageError without either."""
    env = os.environ.get(PASSWORD_ENV)
    if env is not None:
        return env.encode()
    if not sys.stdin.isatty():
        raise UsageError(
            "no passphrase for the private key",
            hint=f"set {PASSWORD_ENV} (it may be empty), or run on a terminal to be asked",
        )
    first = getpass.getpass("Enter password for private key: ")
    if confirm and getpass.getpass("Enter password for private key again: ") != first:
        raise UsageError("the passphrases do not match")
    return first.encode()


# ------------------------------------------------------------ key pairs


@dataclass(frozen=True, slots=True)
class KeyFiles:
    """Where ``generate_key_pair`` wrote the pair."""

    private: str
    public: str


def public_pem(key: PrivateKey) -> bytes:
    """The PKIX ``PUBLIC KEY`` PEM of ``key``'s public half."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_pem(key: PrivateKey, passphrase: bytes | None) -> bytes:
    """The private key as cosign's encrypted PEM, or plain PKCS#8 PEM when
    ``passphrase`` is None."""
    if passphrase is None:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return _pem(COSIGN_PEM, encrypt_private_key(der, passphrase))


def _write_secret(path: str, data: bytes, mode: int) -> None:
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise UsageError(f"no such directory: {d}")
    with atomic_writer(path, mode=mode) as f:
        f.write(data)


def generate_key_pair(
    prefix: str = "cosign", *, passphrase: bytes | None, force: bool = False
) -> KeyFiles:
    """Write ``PREFIX.key`` (0600; encrypted with ``passphrase``, or plain
    PKCS#8 when it is None) and ``PREFIX.pub`` (0644).  ClobberError when
    either exists and ``force`` is not given."""
    files = KeyFiles(prefix + ".key", prefix + ".pub")
    if not force:
        for p in (files.private, files.public):
            if os.path.lexists(p):
                raise ClobberError(p, hint="remove it, or pick --output-key-prefix")
    key = ec.generate_private_key(ec.SECP256R1())
    _write_secret(files.private, private_pem(key, passphrase), 0o600)
    _write_secret(files.public, public_pem(key), 0o644)
    return files


def _read_small(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_KEY_FILE + 1)
    except FileNotFoundError:
        raise SignatureError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise SignatureError(f"cannot read {what} {path}: {e.strerror}") from None
    if len(data) > _MAX_KEY_FILE:
        raise SignatureError(f"{what} {path} is too large to be a key")
    return data


def load_private_key(data: bytes, passphrase: bytes | Any = None) -> PrivateKey:
    """An ECDSA private key from cosign's encrypted PEM (either type) or a
    plain PKCS#8 PEM.  ``passphrase`` is bytes, or a callable returning
    them, asked only when the key is encrypted."""
    kind, body = _unpem(data)
    if kind in (COSIGN_PEM, SIGSTORE_PEM):
        pw = passphrase() if callable(passphrase) else passphrase
        if pw is None:
            raise UsageError("the private key is encrypted and no passphrase was given")
        der = decrypt_private_key(body, pw)
    elif kind == "PRIVATE KEY":
        der = body
    else:
        raise SignatureError(
            f"unsupported private key type {kind!r}",
            hint=f"expected {COSIGN_PEM!r}, {SIGSTORE_PEM!r} or a PKCS#8 'PRIVATE KEY'",
        )
    # cosign accepts PKCS#8 only (a SEC1 'EC PRIVATE KEY' inside is
    # refused), and cryptography would take either: check the shape first.
    if not _is_pkcs8(der):
        raise SignatureError("the private key is not PKCS#8 DER")
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, UnsupportedAlgorithm):
        raise SignatureError("the private key is not PKCS#8 DER") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SignatureError("only ECDSA private keys can sign here")
    return key


def _is_pkcs8(der: bytes) -> bool:
    """``SEQUENCE { INTEGER 0, SEQUENCE { algorithm ... } ... }`` (a SEC1 key
    has version 1 and an OCTET STRING next)."""
    if len(der) < 8 or der[0] != 0x30:
        return False
    i = 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)  # skip the outer length
    return der[i : i + 4] == b"\x02\x01\x00\x30"


def read_private_key(path: str, passphrase: bytes | Any = None) -> PrivateKey:
    """``load_private_key`` on the file at ``path``."""
    return load_private_key(_read_small(path, "private key"), passphrase)


def load_public_key(data: bytes) -> PublicKey:
    """A PKIX ``PUBLIC KEY`` PEM (ECDSA, RSA or Ed25519, as containers/image
    accepts)."""
    kind, _ = _unpem(data)
    if kind != "PUBLIC KEY":
        raise SignatureError(f"expected a 'PUBLIC KEY' PEM, found {kind!r}")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise SignatureError("the public key cannot be parsed") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise SignatureError(f"unsupported public key type {type(key).__name__}")
    return key


def read_public_key(path: str) -> PublicKey:
    """``load_public_key`` on the file at ``path``."""
    return load_public_key(_read_small(path, "public key"))


def sign_bytes(key: PrivateKey, data: bytes) -> bytes:
    """ECDSA over SHA-256 of ``data``, DER ``SEQUENCE{r, s}`` (sigstore's
    ``SignMessage``)."""
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def verify_bytes(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` is ``key``'s over ``data`` (SHA-256)."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


__all__ = [
    "COSIGN_PEM",
    "PASSWORD_ENV",
    "SIGSTORE_PEM",
    "KeyFiles",
    "PrivateKey",
    "PublicKey",
    "decrypt_private_key",
    "encrypt_private_key",
    "generate_key_pair",
    "load_private_key",
    "load_public_key",
    "private_pem",
    "public_pem",
    "read_passphrase",
    "read_private_key",
    "read_public_key",
    "sign_bytes",
    "verify_bytes",
]
