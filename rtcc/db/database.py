"""The department's database: which engine, where, and each store's connection to it."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtcc.config import DatabaseConfig, Settings
from rtcc.db.connection import Dialect, SqlConnection, SqliteConnection
from rtcc.db.errors import redact_url
from rtcc.db.migrations import StoreSchema, prepare
from rtcc.sqlite import connect as connect_sqlite

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

DatabaseSettings = DatabaseConfig

_STORE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON")


class Database:
    """Opens each store's connection on the configured engine.

    SQLite: the store's own file in the data directory (``security.sqlite3``...), WAL, foreign
    keys on. PostgreSQL: a pool of connections per store whose ``search_path`` is the store's own
    schema (then ``public``, where PostGIS lives), created on first use."""

    def __init__(self, settings: DatabaseConfig, data_dir: Path) -> None:
        self.settings = settings
        url = settings.url.get_secret_value()
        self.url = url
        if url.startswith(("postgresql://", "postgres://")):
            self.dialect: Dialect = "postgresql"
            self.sqlite_dir = data_dir
        else:
            self.dialect = "sqlite"
            self.sqlite_dir = Path(url.removeprefix("sqlite:///")) if url else data_dir
        self._pools: dict[str, ConnectionPool[Any]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(settings.database, settings.data_dir)

    @classmethod
    def embedded(cls, data_dir: Path) -> Database:
        """The embedded default: SQLite files in ``data_dir``."""
        return cls(DatabaseConfig(), data_dir)

    @property
    def migrate_on_start(self) -> bool:
        if self.settings.migrate_on_start is not None:
            return self.settings.migrate_on_start
        return self.dialect == "sqlite"

    def describe(self) -> str:
        """Where the tables are, without secrets."""
        if self.dialect == "sqlite":
            return f"SQLite files in {self.sqlite_dir}"
        return f"PostgreSQL at {redact_url(self.url)}"

    def sqlite_path(self, store: str, filename: str | None = None) -> Path:
        return self.sqlite_dir / (filename or f"{store}.sqlite3")

    def connect(self, store: str, *, sqlite_file: str | None = None,
                sqlite_pragmas: tuple[str, ...] = SQLITE_PRAGMAS) -> SqlConnection:
        """``store``'s connection (blocking: call it on the store's thread). ``sqlite_file``
        keeps the file name an installation already has."""
        if not _STORE_NAME.match(store):
            raise ValueError(f"store name {store!r} must be lower-case letters, digits and _")
        if self.dialect == "sqlite":
            conn = connect_sqlite(self.sqlite_path(store, sqlite_file), *sqlite_pragmas)
            return SqliteConnection(conn, store)
        from rtcc.db.postgres import PostgresConnection, open_pool

        with self._lock:
            pool = self._pools.get(store)
            if pool is None:
                pool = open_pool(self.url, store, self.settings)
                self._pools[store] = pool
        return PostgresConnection(pool, store, redact_url(self.url))

    def open_store(self, schema: StoreSchema, *, migrate: bool | None = None,
                   sqlite_pragmas: tuple[str, ...] = SQLITE_PRAGMAS) -> SqlConnection:
        """``schema``'s connection with its tables ready (blocking: call it on the store's
        thread). Upgrades the schema when ``migrate`` (default: ``migrate_on_start``),
        otherwise raises ``SchemaNotCurrent`` when a migration is pending."""
        conn = self.connect(schema.name, sqlite_file=schema.sqlite_file,
                            sqlite_pragmas=sqlite_pragmas)
        try:
            prepare(conn, schema.migrations,
                    self.migrate_on_start if migrate is None else migrate)
        except BaseException:
            conn.close()
            raise
        return conn

    def ping(self) -> None:
        """Raises ``DatabaseUnavailable`` when the database does not answer (blocking)."""
        if self.dialect == "sqlite":
            return
        from rtcc.db.postgres import ping

        ping(self.url, self.settings)

    def pool_stats(self) -> dict[str, dict[str, int]]:
        """Each open PostgreSQL pool's counters (``psycopg_pool`` ``get_stats()``: pool_size,
        pool_available, requests_waiting...), by store; empty on SQLite."""
        with self._lock:
            pools = dict(self._pools)
        return {store: dict(pool.get_stats()) for store, pool in sorted(pools.items())}

    def close(self) -> None:
        """Close every PostgreSQL pool (blocking)."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        from rtcc.db.postgres import close_pool

        for pool in pools:
            close_pool(pool)
