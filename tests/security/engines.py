"""The security store's tables on either engine, for store-level tests (``database_url``)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import psycopg
from pydantic import SecretStr

from rtcc.config import DatabaseConfig, SecurityConfig, Settings
from rtcc.db import Database
from security.store import SCHEMA, SecurityTables

APPEND_ONLY_TRIGGERS = ("audit_no_update", "audit_no_delete")

RAW_ERRORS: tuple[type[Exception], ...] = (sqlite3.DatabaseError, psycopg.Error)
"""What a statement refused by the database raises through a raw connection."""


def engine_settings(data_dir: Any, database_url: str, **security: Any) -> Settings:
    """Settings whose database is ``database_url`` ("" = SQLite files in ``data_dir``); the
    schema is created on open on both engines."""
    return Settings(data_dir=data_dir, security=SecurityConfig(**security),
                    database=DatabaseConfig(url=SecretStr(database_url), migrate_on_start=True))


@contextlib.contextmanager
def open_tables(settings: Settings) -> Iterator[SecurityTables]:
    database = Database.from_settings(settings)
    try:
        tables = SecurityTables.open(database, settings.data_dir)
        try:
            yield tables
        finally:
            tables.close()
    finally:
        database.close()


@contextlib.contextmanager
def raw_connection(settings: Settings) -> Iterator[Any]:
    """A connection outside the data layer, as someone with write access to the database has:
    ``execute(sql)`` then ``commit()``."""
    database = Database.from_settings(settings)
    if database.dialect == "sqlite":
        conn = sqlite3.connect(database.sqlite_path(SCHEMA.name, SCHEMA.sqlite_file))
        try:
            yield conn
        finally:
            conn.close()
        return
    with psycopg.connect(database.url) as pg:
        pg.execute("SET search_path TO security")
        yield pg


def tamper(settings: Settings, *statements: str) -> None:
    """Run ``statements`` against the audit tables with the append-only triggers out of the
    way (dropped on SQLite, disabled on PostgreSQL), as an intruder with the database would."""
    with raw_connection(settings) as conn:
        if isinstance(conn, sqlite3.Connection):
            for trigger in APPEND_ONLY_TRIGGERS:
                conn.execute(f"DROP TRIGGER {trigger}")
        else:
            conn.execute("ALTER TABLE audit DISABLE TRIGGER USER")
        for statement in statements:
            conn.execute(statement)
        conn.commit()
