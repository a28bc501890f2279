"""The server's Ed25519 evidence-signing key.

Kept in ``<data_dir>/evidence/signing-key.pem`` (PKCS#8, created on first use with mode 0600).
The public key is exportable (``GET /api/evidence/public-key``, and inside every export package)
and is named by its fingerprint: the SHA-256 of the raw 32-byte public key, in hex. A court or a
defence expert compares that fingerprint with the one the department publishes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rtcc.errors import RtccError
from rtcc.files import private_dir

log = logging.getLogger(__name__)

KEY_FILE = "signing-key.pem"
ALGORITHM = "Ed25519"


class SigningKeyError(RtccError):
    """The signing key is missing, unreadable or not an Ed25519 key."""


def fingerprint(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_pem(data: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise SigningKeyError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError("the public key is not an Ed25519 key")
    return key


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def verify_b64(public_key: Ed25519PublicKey, signature: str, message: bytes) -> bool:
    try:
        public_key.verify(base64.b64decode(signature.encode("ascii"), validate=True), message)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    path: Path

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def public_pem(self) -> bytes:
        return public_pem(self.public)

    def sign(self, message: bytes) -> str:
        return b64(self.private.sign(message))


def load_or_create(folder: Path) -> SigningKey:
    """The key in ``folder/signing-key.pem``, created (mode 0600) if there is none."""
    path = folder / KEY_FILE
    private_dir(folder)
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            pass  # created at the same moment by another process: read theirs
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            log.info("created the evidence signing key %s (fingerprint %s)", path,
                     fingerprint(key.public_key()))
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s is readable by other users (mode %o); setting it to 0600", path, mode)
        os.chmod(path, 0o600)
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path}: cannot read the signing key: {exc}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: the signing key is not an Ed25519 key")
    return SigningKey(private, path)
