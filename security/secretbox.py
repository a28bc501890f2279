"""Secrets at rest (camera passwords, agent credentials, TOTP seeds): AES-256-GCM; and the
loading of the server's 256-bit keys.

The secret key comes from the environment variable ``RTCC_SECRET_KEY`` (base64) or, when that
is not set, from ``<data_dir>/secret.key``, created on first start with mode 0600. Losing the key
makes stored secrets unreadable; keep a copy with the backups, never next to them. The audit
chain's HMAC key follows the same rule with ``RTCC_AUDIT_KEY`` and ``<data_dir>/audit.key``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rtcc.errors import ConfigError, RtccError
from rtcc.files import open_private, private_dir

log = logging.getLogger(__name__)

KEY_ENV = "RTCC_SECRET_KEY"
KEY_FILE = "secret.key"
AUDIT_KEY_ENV = "RTCC_AUDIT_KEY"
AUDIT_KEY_FILE = "audit.key"
_PREFIX = "v1."
_AAD = b"rtcc secret v1"


class SecretDecryptError(RtccError):
    """A stored secret could not be decrypted (wrong key or damaged value)."""


class AesGcmBox:
    """Implements ``rtcc.access.SecretBox``."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("the secret key must be 32 bytes (256 bits)")
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), _AAD)
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, token: str) -> str:
        if not token.startswith(_PREFIX):
            raise SecretDecryptError("stored secret has an unknown format")
        try:
            body = token[len(_PREFIX):].encode("ascii")
            raw = base64.urlsafe_b64decode(body)
            if base64.urlsafe_b64encode(raw) != body:
                # Unused low bits of the last character or stray characters: the value was
                # changed. Only the one canonical spelling of a sealed secret is accepted.
                raise ValueError("non-canonical encoding")
            plain = self._aead.decrypt(raw[:12], raw[12:], _AAD)
        except (InvalidTag, ValueError, binascii.Error):
            raise SecretDecryptError(
                "stored secret cannot be decrypted: the secret key changed or the value is damaged"
            ) from None
        return plain.decode("utf-8")


def _decode_key(text: str, where: str, label: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: the {label} is not valid base64") from None
    if len(key) != 32:
        raise ConfigError(
            f"{where}: the {label} must decode to 32 bytes; make one with "
            "`python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'`"
        )
    return key


def load_named_key(data_dir: Path, env: Mapping[str, str] | None, *, variable: str,
                   file_name: str, label: str, create: bool = True) -> bytes | None:
    """A 256-bit key from the environment variable ``variable`` (base64) or else from
    ``data_dir/file_name``, created (mode 0600) when missing and ``create`` is set; None when
    missing and not ``create``. A key file other users can read is refused."""
    environ = os.environ if env is None else env
    if environ.get(variable):
        return _decode_key(environ[variable], variable, label)
    path = data_dir / file_name
    if not path.exists():
        if not create:
            return None
        private_dir(data_dir)
        key = secrets.token_bytes(32)
        try:
            handle = open_private(path, exclusive=True)
        except FileExistsError:
            pass  # created at the same moment by another process: read theirs
        else:
            with handle:
                handle.write(base64.b64encode(key) + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            log.info("created a new %s file %s (mode 0600); back it up separately", label, path)
            return key
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path}: the {label} file is readable by other users (mode {mode:o}); "
            f"run `chmod 600 {path}`"
        )
    return _decode_key(path.read_text(encoding="ascii"), str(path), label)


def load_key(data_dir: Path, env: Mapping[str, str] | None = None) -> bytes:
    key = load_named_key(data_dir, env, variable=KEY_ENV, file_name=KEY_FILE, label="secret key")
    assert key is not None  # created when missing
    return key


def load_audit_key(data_dir: Path, env: Mapping[str, str] | None = None, *,
                   create: bool = True) -> bytes | None:
    """The audit chain's HMAC key: ``RTCC_AUDIT_KEY`` or ``<data_dir>/audit.key``."""
    return load_named_key(data_dir, env, variable=AUDIT_KEY_ENV, file_name=AUDIT_KEY_FILE,
                          label="audit key", create=create)


def load_secret_box(data_dir: Path, env: Mapping[str, str] | None = None) -> AesGcmBox:
    return AesGcmBox(load_key(data_dir, env))
