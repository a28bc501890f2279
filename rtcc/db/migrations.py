"""Versioned schema migrations, per store, on both engines.

Each store declares its migrations in order (``Migration(1, "first schema", sqlite=...,
postgresql=...)``). ``upgrade`` applies the missing ones, each in its own transaction, and
records them in the store's ``schema_migrations`` table; ``status`` lists what is applied and
what is pending. A migration's SQL is a script (statements separated by ``;``) or a function of
the connection, for changes that need to read rows first.

Installations made before migrations existed hold the first schema already, created with
``CREATE ... IF NOT EXISTS``: migration 1 of each store is written the same way, so on those
files it creates nothing and is simply recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rtcc.db.connection import SqlConnection, split_statements
from rtcc.errors import RtccError

Step = str | Callable[[SqlConnection], None]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sqlite: Step
    postgresql: Step


@dataclass(frozen=True)
class StoreSchema:
    """What a store keeps in the database: its name (the SQLite file's stem, the PostgreSQL
    schema), its migrations, and its tables in the order a copy must fill them (a table after
    the tables its foreign keys point to)."""

    name: str
    migrations: tuple[Migration, ...]
    tables: tuple[str, ...]
    sqlite_file: str | None = None
    """The file name an installation already has, when it is not ``NAME.sqlite3``."""
    verify: Callable[[SqlConnection], None] | None = None
    """Checks the tables' integrity after a copy (the audit chain); raises when broken."""
    engines: tuple[str, ...] = ("sqlite", "postgresql")
    """The engines this schema lives on (the PostGIS catalog: PostgreSQL only; on SQLite the
    catalog keeps its own R*Tree file)."""


@dataclass(frozen=True)
class MigrationStatus:
    store: str
    version: int
    name: str
    applied_at: float | None


class SchemaTooNew(RtccError):
    """The database was upgraded by a newer release than this one."""


class SchemaNotCurrent(RtccError):
    """The store's schema needs ``rtcc db upgrade`` before the server can use it."""


_LEDGER = ("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
           "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")


def _check_order(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, 3... in order; got {versions}")


def applied_versions(conn: SqlConnection) -> dict[int, float]:
    conn.execute(_LEDGER)
    rows = conn.fetchall("SELECT version, applied_at FROM schema_migrations")
    return {int(row[0]): float(row[1]) for row in rows}


def status(conn: SqlConnection, migrations: Sequence[Migration]) -> list[MigrationStatus]:
    _check_order(migrations)
    applied = applied_versions(conn)
    return [MigrationStatus(conn.store, m.version, m.name, applied.get(m.version))
            for m in migrations]


def upgrade(conn: SqlConnection, migrations: Sequence[Migration],
            clock: Callable[[], float] = time.time) -> list[Migration]:
    """Apply every migration not yet recorded, in order; returns those applied."""
    _check_order(migrations)
    applied = applied_versions(conn)
    newest_known = len(migrations)
    if applied and max(applied) > newest_known:
        raise SchemaTooNew(
            f"the {conn.store} tables are at schema version {max(applied)}, newer than this "
            f"release knows ({newest_known}); run the release that upgraded them")
    done: list[Migration] = []
    for migration in migrations:
        if migration.version in applied:
            continue
        with conn.transaction() as tx:
            # Another node may have applied it while this one waited for the store's lock.
            if tx.scalar("SELECT 1 FROM schema_migrations WHERE version = ?",
                         (migration.version,)) is not None:
                continue
            step = migration.sqlite if conn.dialect == "sqlite" else migration.postgresql
            if isinstance(step, str):
                _run_script_in_transaction(tx, step)
            else:
                step(tx)
            tx.execute("INSERT INTO schema_migrations (version, name, applied_at) "
                       "VALUES (?, ?, ?)", (migration.version, migration.name, clock()))
        done.append(migration)
    return done


def require_current(conn: SqlConnection, migrations: Sequence[Migration]) -> None:
    """Raise ``SchemaNotCurrent`` when a migration is pending (the server was started without
    upgrading the database)."""
    pending = [s for s in status(conn, migrations) if s.applied_at is None]
    if pending:
        names = ", ".join(f"{s.version} ({s.name})" for s in pending)
        raise SchemaNotCurrent(
            f"the {conn.store} tables need schema migrations {names}; run `rtcc db upgrade "
            "--config FILE` once, then start the server (or set database.migrate_on_start)")


def _run_script_in_transaction(conn: SqlConnection, script: str) -> None:
    # Not SQLite's executescript: it commits the open transaction first.
    for statement in split_statements(script, conn.dialect):
        conn.execute(statement)


def prepare(conn: SqlConnection, migrations: Sequence[Migration], migrate: bool) -> None:
    """At open: upgrade when allowed, otherwise insist the schema is current."""
    if migrate:
        upgrade(conn, migrations)
    else:
        require_current(conn, migrations)
