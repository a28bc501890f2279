"""Secrets at rest (camera passwords, agent credentials, TOTP seeds): AES-256-GCM.

The 256-bit key comes from the environment variable ``RTCC_SECRET_KEY`` (base64) or, when that
is not set, from ``<data_dir>/secret.key``, created on first start with mode 0600. Losing the key
makes stored secrets unreadable; keep a copy with the backups, never next to them.
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

log = logging.getLogger(__name__)

KEY_ENV = "RTCC_SECRET_KEY"
KEY_FILE = "secret.key"
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


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: the secret key is not valid base64") from None
    if len(key) != 32:
        raise ConfigError(
            f"{where}: the secret key must decode to 32 bytes; make one with "
            "`python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'`"
        )
    return key


def load_key(data_dir: Path, env: Mapping[str, str] | None = None) -> bytes:
    environ = os.environ if env is None else env
    if environ.get(KEY_ENV):
        return _decode_key(environ[KEY_ENV], KEY_ENV)
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(base64.b64encode(key).decode("ascii") + "\n")
        log.info("created a new secret key file %s (mode 0600); back it up separately", path)
        return key
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path}: the secret key file is readable by other users (mode {mode:o}); "
            f"run `chmod 600 {path}`"
        )
    return _decode_key(path.read_text(encoding="ascii"), str(path))


def load_secret_box(data_dir: Path, env: Mapping[str, str] | None = None) -> AesGcmBox:
    return AesGcmBox(load_key(data_dir, env))
