"""PostgreSQL for the stores: psycopg 3 connection pools, one schema per store.

Every transaction of a store takes that store's advisory lock first: the same rule as SQLite's
``BEGIN IMMEDIATE`` (one writer per store at a time, here across every node), so a store's
read-then-write sequences (the audit chain's head, a grant's expiry) stay correct on either engine.
Reads outside transactions do not wait for it.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import psycopg.rows
from psycopg import sql as pgsql
from psycopg_pool import ConnectionPool, PoolTimeout

from rtcc.config import DatabaseConfig
from rtcc.db.connection import Cursor, Dialect, Params, SqlConnection, to_format_style
from rtcc.db.errors import DatabaseUnavailable, redact_url


class PgRow(tuple[Any, ...]):
    """A row readable by position and by column name, like ``sqlite3.Row``."""

    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> PgRow:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: psycopg.Cursor[Any]) -> Any:
    names = [column.name for column in cursor.description or ()]
    index = {name: i for i, name in enumerate(names)}

    def make(values: Sequence[Any]) -> PgRow:
        return PgRow(values, index)

    return make


class _Fetched:
    """A finished statement's rows, read before its connection went back to the pool."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[Any]:
        rows, self._next = self._rows[self._next:], len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


def _store_lock_key(store: str) -> int:
    return zlib.crc32(f"rtcc-store:{store}".encode()) - 2**31


def open_pool(url: str, store: str, settings: DatabaseConfig) -> ConnectionPool[Any]:
    schema = pgsql.Identifier(store)

    def configure(conn: psycopg.Connection[Any]) -> None:
        conn.execute(pgsql.SQL("SET search_path TO {}, public").format(schema))

    conninfo = psycopg.conninfo.make_conninfo(
        url.replace("postgres://", "postgresql://", 1),
        connect_timeout=max(1, round(settings.connect_timeout)),
        options=f"-c statement_timeout={round(settings.statement_timeout * 1000)}",
        application_name=f"rtcc-{store}",
    )
    pool: ConnectionPool[Any] = ConnectionPool(
        conninfo, min_size=1, max_size=settings.pool_size, open=False,
        kwargs={"autocommit": True, "row_factory": _row_factory},
        configure=configure, check=ConnectionPool.check_connection,
        timeout=settings.connect_timeout, name=f"rtcc-{store}",
    )
    try:
        pool.open(wait=True, timeout=settings.connect_timeout)
        with pool.connection() as conn:
            conn.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
    except (psycopg.Error, PoolTimeout) as exc:
        pool.close()
        raise _unavailable(store, redact_url(url), exc) from exc
    return pool


def close_pool(pool: ConnectionPool[Any]) -> None:
    pool.close()


def ping(url: str, settings: DatabaseConfig) -> None:
    try:
        with psycopg.connect(url, connect_timeout=max(1, round(settings.connect_timeout)),
                             autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise _unavailable("every", redact_url(url), exc) from exc


def _unavailable(store: str, where: str, exc: BaseException) -> DatabaseUnavailable:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DatabaseUnavailable(
        f"the {store} store's tables in PostgreSQL at {where} did not answer ({reason}); "
        "requests that need them are refused until the database is back, which the server "
        "notices by itself")


class PostgresConnection(SqlConnection):
    dialect: Dialect = "postgresql"

    def __init__(self, pool: ConnectionPool[Any], store: str, where: str) -> None:
        self.pool = pool
        self.store = store
        self._where = where
        self._held: psycopg.Connection[Any] | None = None

    def _run(self, conn: psycopg.Connection[Any], sql: str, params: Params) -> _Fetched:
        cursor = conn.execute(to_format_style(sql), tuple(params) if params else None)
        rows = cursor.fetchall() if cursor.description is not None else []
        return _Fetched(rows, cursor.rowcount)

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        if self._held is not None:
            return self._run(self._held, sql, params)
        try:
            with self.pool.connection() as conn:
                return self._run(conn, sql, params)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise _unavailable(self.store, self._where, exc) from exc

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        statement = to_format_style(sql)
        if self._held is not None:
            with self._held.cursor() as cursor:
                cursor.executemany(statement, [tuple(row) for row in rows])
            return
        with self.transaction() as tx:
            tx.executemany(sql, rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[SqlConnection]:
        if self._held is not None:  # nested: part of the outer transaction
            yield self
            return
        try:
            with self.pool.connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_store_lock_key(self.store),))
                self._held = conn
                try:
                    yield self
                finally:
                    self._held = None
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise _unavailable(self.store, self._where, exc) from exc

    def transaction(self) -> contextlib.AbstractContextManager[SqlConnection]:
        return self._transaction()

    def transaction_connection(self) -> psycopg.Connection[Any]:
        """The psycopg connection of the open ``transaction()``, for what ``?`` statements
        cannot do (``COPY``); it stays part of that transaction and its store lock."""
        if self._held is None:
            raise RuntimeError(f"the {self.store} store has no open transaction; call this "
                               "inside `with conn.transaction():`")
        return self._held

    def close(self) -> None:
        """The pool belongs to the ``Database``; it closes it."""
