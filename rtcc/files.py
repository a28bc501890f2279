"""Private files and folders: the server's data is readable by the server's user only.

Folders are created with mode 0700 and files with mode 0600, by explicit modes (never by changing
the process umask, which other threads share). A umask only removes bits, so these modes hold
whatever the umask is. SQLite gives a database's ``-wal``, ``-shm`` and ``-journal`` files the
mode of the database file itself, so creating that file 0600 first keeps all of them private.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path, *, tighten: bool = True) -> Path:
    """``path`` as a folder, each missing component created 0700. With ``tighten``, an existing
    folder other users can read or enter is set to 0700, with a warning."""
    missing: list[Path] = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass  # made at the same moment by another process or thread
        else:
            os.chmod(folder, DIR_MODE)  # mkdir's mode is masked by a restrictive umask too
    if tighten:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s was open to other users (mode %o); set it to %o", path, mode,
                        DIR_MODE)
            os.chmod(path, DIR_MODE)
    return path


def _tighten_fd(fd: int) -> None:
    if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
        os.fchmod(fd, FILE_MODE)


def private_file(path: Path) -> Path:
    """``path`` as an existing regular file of mode 0600: created empty if missing, tightened if
    other users could read it. Its folder is created 0700 if missing."""
    private_dir(path.parent, tighten=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    try:
        _tighten_fd(fd)
    finally:
        os.close(fd)
    return path


def private_database(path: Path) -> Path:
    """An SQLite file made private before SQLite opens it, with any companion files it left."""
    if str(path) == ":memory:":  # no file at all
        return path
    private_file(path)
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            private_file(companion)
    return path


def open_private(path: Path, *, exclusive: bool = False) -> BinaryIO:
    """A new (or truncated) file of mode 0600 opened for binary writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    try:
        _tighten_fd(fd)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb")


def append_private(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` (created 0600, opened ``O_APPEND``) and flush it to disk.

    ``O_APPEND`` makes each write land at the end even when the file was truncated or written by
    another process since; one ``write`` of a short line is not interleaved with others."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    try:
        _tighten_fd(fd)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
