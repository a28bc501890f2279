"""Originals encrypted at rest: a tipster's file exactly as sent, readable by investigators only.

Each file has its own random AES-256-GCM key, stored wrapped by the server's secret box
(``rtcc.access.SecretBox``), so the database alone opens nothing. The file is written as it
arrives, one sealed record per uploaded chunk: a 4-byte big-endian length, a 12-byte nonce and
the ciphertext with its tag. A record's associated data is the file id and the record's index,
so records cannot be swapped, dropped from the middle or moved to another file unnoticed. A
record cut short by a crash lies past the length the database recorded and is cut off before
the next write.
"""

from __future__ import annotations

import base64
import os
import secrets
import struct
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rtcc.access import SecretBox
from rtcc.errors import RtccError
from rtcc.files import FILE_MODE

_HEADER = struct.Struct(">I")
_NONCE = 12


class OriginalDamaged(RtccError):
    """An encrypted original cannot be read back (changed on disk or the key changed)."""


def new_key(box: SecretBox) -> tuple[bytes, str]:
    """A fresh file key and the same key wrapped for storage."""
    key = AESGCM.generate_key(bit_length=256)
    return key, box.encrypt(base64.b64encode(key).decode("ascii"))


def unwrap_key(box: SecretBox, wrapped: str) -> bytes:
    return base64.b64decode(box.decrypt(wrapped))


def _aad(file_id: str, index: int) -> bytes:
    return file_id.encode("ascii") + struct.pack(">Q", index)


def append_record(path: Path, file_id: str, key: bytes, index: int, keep_bytes: int,
                  data: bytes) -> int:
    """Seal ``data`` as record ``index`` after the first ``keep_bytes`` bytes of ``path``
    (anything after them is a torn write), flushed to disk; returns the file's new length."""
    nonce = secrets.token_bytes(_NONCE)
    sealed = AESGCM(key).encrypt(nonce, data, _aad(file_id, index))
    record = _HEADER.pack(len(sealed)) + nonce + sealed
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.ftruncate(fd, keep_bytes)
        os.lseek(fd, keep_bytes, os.SEEK_SET)
        view = memoryview(record)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    return keep_bytes + len(record)


def read_records(path: Path, file_id: str, key: bytes, length: int) -> Iterator[bytes]:
    """The plaintext chunks of the first ``length`` bytes of ``path``, in order."""
    aead = AESGCM(key)
    index = 0
    with path.open("rb") as file:
        while file.tell() < length:
            header = file.read(_HEADER.size)
            if len(header) != _HEADER.size:
                raise OriginalDamaged(f"{path.name}: the encrypted original is cut short")
            (size,) = _HEADER.unpack(header)
            nonce = file.read(_NONCE)
            sealed = file.read(size)
            if len(nonce) != _NONCE or len(sealed) != size:
                raise OriginalDamaged(f"{path.name}: the encrypted original is cut short")
            try:
                yield aead.decrypt(nonce, sealed, _aad(file_id, index))
            except InvalidTag:
                raise OriginalDamaged(
                    f"{path.name}: record {index} of the encrypted original does not decrypt; "
                    "the file was changed or the secret key is not the one it was written with"
                ) from None
            index += 1
