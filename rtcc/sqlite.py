"""Opening the server's SQLite files, and their write transactions.

Every store keeps its connection in autocommit mode (``isolation_level=None``) and brackets
multi-statement changes itself with ``BEGIN IMMEDIATE``, so a writer takes the lock up front
instead of failing half-way when another connection holds it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from rtcc.files import private_database

BUSY_TIMEOUT_S = 10.0
"""How long a statement waits for another connection's lock before ``database is locked``. A
store runs its statements on its own thread (``rtcc.offload.StoreThread``), so the wait holds up
that store's callers, not the event loop."""


def connect(path: Path, *pragmas: str, setup: Callable[[sqlite3.Connection], object] | None = None,
            named_rows: bool = True) -> sqlite3.Connection:
    """An autocommit connection to ``path`` (its folder created) that any thread may use, with
    ``pragmas`` (``"journal_mode=WAL"``...) applied and then ``setup`` run (schema, migrations).
    Rows are ``sqlite3.Row`` unless ``named_rows`` is false. When a step fails, the connection
    is closed and the error raised."""
    private_database(path)  # 0600 before SQLite creates it: its -wal and -shm copy the mode
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_S)
    if named_rows:
        conn.row_factory = sqlite3.Row
    try:
        for pragma in pragmas:
            conn.execute(f"PRAGMA {pragma}")
        if setup is not None:
            setup(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def immediate_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error (which is raised again)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
