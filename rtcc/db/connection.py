"""A store's connection to its tables: the same calls on SQLite and on PostgreSQL.

``SqlConnection`` is deliberately the shape of Python's DB-API as the stores already used it
(``execute(sql, params).fetchone()``, rows readable by name and by position), with ``?``
placeholders on both engines and ``transaction()`` for changes that span several statements.
Statements are blocking: a store calls them on its own thread (``rtcc.offload.StoreThread``).
"""

from __future__ import annotations

import abc
import contextlib
import functools
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, Literal, Protocol

Dialect = Literal["sqlite", "postgresql"]
Params = Sequence[Any]


class Row(Protocol):
    """A result row: ``row["column"]`` or ``row[0]``; ``keys()`` lists the columns."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class SqlConnection(abc.ABC):
    """One store's open connection. Use it from one thread at a time."""

    dialect: Dialect
    store: str

    @abc.abstractmethod
    def execute(self, sql: str, params: Params = ()) -> Cursor:
        """Run one statement (``?`` placeholders) and return its cursor."""

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        """Run one statement once per parameter row."""

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[SqlConnection]:
        """Statements inside run atomically: committed at the end, rolled back on any error
        (raised again). On SQLite the write lock is taken up front (``BEGIN IMMEDIATE``)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def fetchone(self, sql: str, params: Params = ()) -> Any:
        return self.execute(sql, params).fetchone()

    def fetchall(self, sql: str, params: Params = ()) -> list[Any]:
        return self.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row, or None when there is no row."""
        row = self.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def run_script(self, script: str) -> None:
        """Several statements separated by ``;`` (schema changes), in order."""
        for statement in split_statements(script, self.dialect):
            self.execute(statement)


class SqliteConnection(SqlConnection):
    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, store: str) -> None:
        self.raw = conn
        self.store = store
        self._depth = 0

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        return self.raw.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self.raw.executemany(sql, rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[SqlConnection]:
        if self._depth:  # nested: part of the outer transaction
            yield self
            return
        self.raw.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self.raw.execute("ROLLBACK")
            raise
        else:
            self.raw.execute("COMMIT")
        finally:
            self._depth = 0

    def transaction(self) -> contextlib.AbstractContextManager[SqlConnection]:
        return self._transaction()

    def close(self) -> None:
        self.raw.close()


@functools.lru_cache(maxsize=2048)
def to_format_style(sql: str) -> str:
    """``?`` placeholders to psycopg's ``%s`` (a literal ``%`` becomes ``%%``); question marks
    and percent signs inside quoted strings and identifiers are left alone."""
    out: list[str] = []
    quote: str | None = None
    for char in sql:
        if quote is not None:
            out.append("%%" if char == "%" else char)
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
        elif char == "%":
            out.append("%%")
        else:
            out.append(char)
    return "".join(out)


def split_statements(script: str, dialect: Dialect = "postgresql") -> list[str]:
    """A script's statements: for SQLite as SQLite itself reads them (trigger bodies whole), for
    PostgreSQL split at ``;`` outside quotes and outside ``$$`` bodies."""
    if dialect == "sqlite":
        return _split_sqlite(script)
    statements: list[str] = []
    current: list[str] = []
    quote: str | None = None
    dollar = False
    i = 0
    while i < len(script):
        char = script[i]
        if script.startswith("$$", i) and quote is None:
            dollar = not dollar
            current.append("$$")
            i += 2
            continue
        if quote is not None:
            if char == quote:
                quote = None
        elif char in ("'", '"') and not dollar:
            quote = char
        elif char == ";" and not dollar:
            text = "".join(current).strip()
            if text:
                statements.append(text)
            current = []
            i += 1
            continue
        current.append(char)
        i += 1
    text = "".join(current).strip()
    if text:
        statements.append(text)
    return statements


def _split_sqlite(script: str) -> list[str]:
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            text = pending.strip().removesuffix(";").strip()
            if text:
                statements.append(text)
            pending = ""
    if pending.strip(" \n\t;"):
        statements.append(pending.strip().removesuffix(";").strip())
    return statements
