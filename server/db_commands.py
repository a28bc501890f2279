"""``rtcc db status | upgrade | copy``: every store's schema, and moving an installation.

The commands are generic over the stores' ``StoreSchema`` list (``server.schemas``): ``status``
lists each store's applied and pending migrations, ``upgrade`` applies the pending ones, and
``copy`` fills an empty database (PostgreSQL, usually) from another one (a demo or pilot
installation's SQLite files) table by table in each schema's copy order, then checks the row
counts and each store's own integrity check (the audit chain) on the target.

Everything here is blocking: these are command-line programs, never called from the server.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from pydantic import SecretStr

from catalog.model import Camera
from catalog.postgis_store import PostgisCatalog
from catalog.sqlite_store import SqliteCatalog
from rtcc.config import DatabaseConfig, Settings
from rtcc.db import Database, DatabaseUnavailable, SqlConnection, StoreSchema
from rtcc.db.migrations import SchemaNotCurrent, SchemaTooNew, status, upgrade
from rtcc.errors import RtccError

CATALOG_FILE = "rtcc.sqlite3"
"""The SQLite catalog's file in the data folder (``store`` left at its default)."""

BATCH_ROWS = 2000
"""Rows read and written per step of a copy (one transaction on the target each)."""


class CopyRefused(RtccError):
    """``rtcc db copy`` will not run against these databases (nothing was changed)."""


class CopyFailed(RtccError):
    """``rtcc db copy`` stopped part-way or its verification failed."""


def add_parser(sub: Any) -> None:
    """The ``db`` command and its subcommands, on the ``rtcc`` parser."""
    db = sub.add_parser("db", help="the database: schema migrations, moving to PostgreSQL")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    show = db_sub.add_parser("status", help="each store's applied and pending schema migrations "
                                            "(exit status 1 when one is pending)")
    show.add_argument("--config", type=Path, default=Path("configs/demo.yaml"))
    up = db_sub.add_parser("upgrade", help="apply every pending schema migration")
    up.add_argument("--config", type=Path, default=Path("configs/demo.yaml"))
    copy = db_sub.add_parser(
        "copy", help="copy every store's rows into an empty database (stop the server first)")
    copy.add_argument("--from", dest="source", required=True,
                      help="sqlite:///DATA_DIR (the folder holding the store files; "
                           "sqlite:////ABSOLUTE/PATH) or postgresql://USER@HOST:PORT/DB")
    copy.add_argument("--to", dest="target", required=True,
                      help="postgresql://USER@HOST:PORT/DB (the password from PGPASSWORD or "
                           "~/.pgpass keeps it out of the process list) or sqlite:///DATA_DIR")


def db_main(args: argparse.Namespace, settings: Settings | None,
            schemas: Sequence[StoreSchema], out: TextIO = sys.stdout) -> int:
    """Runs ``rtcc db SUBCOMMAND``; errors are printed, and the exit status says how it went."""
    # The pool logs each failed connection attempt; the one error printed below says it all.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    try:
        if args.db_command == "copy":
            return db_copy(args.source, args.target, schemas, out)
        assert settings is not None
        database = Database.from_settings(settings)
        schemas = [s for s in schemas if database.dialect in s.engines]
        try:
            if args.db_command == "status":
                return db_status(database, schemas, out)
            return db_upgrade(database, schemas, out)
        finally:
            database.close()
    except (DatabaseUnavailable, SchemaTooNew, SchemaNotCurrent, CopyRefused, CopyFailed) as exc:
        print(f"rtcc db {args.db_command}: {exc}", file=sys.stderr)
        return 1


def _applied_at(when: float) -> str:
    stamp = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC")


def _exists(database: Database, schema: StoreSchema) -> bool:
    """False for a store whose SQLite file was never created (opening it would create it)."""
    return (database.dialect != "sqlite"
            or database.sqlite_path(schema.name, schema.sqlite_file).exists())


def db_status(database: Database, schemas: Sequence[StoreSchema], out: TextIO) -> int:
    """Prints the engine and, per store, each migration applied (when) or pending."""
    print(f"database: {database.describe()}", file=out)
    if not schemas:
        print("no stores keep tables in the database", file=out)
    pending_total = 0
    for schema in schemas:
        if _exists(database, schema):
            conn = database.connect(schema.name, sqlite_file=schema.sqlite_file)
            try:
                listed = status(conn, schema.migrations)
            finally:
                conn.close()
            applied = {s.version: s.applied_at for s in listed}
        else:
            applied = {}
        pending = [m for m in schema.migrations if applied.get(m.version) is None]
        pending_total += len(pending)
        current = max((v for v, at in applied.items() if at is not None), default=0)
        state = f"{len(pending)} pending" if pending else "up to date"
        print(f"{schema.name}: schema version {current} of {len(schema.migrations)} ({state})",
              file=out)
        for migration in schema.migrations:
            at = applied.get(migration.version)
            when = "pending" if at is None else f"applied {_applied_at(at)}"
            print(f"  {migration.version:>3}  {migration.name:<40} {when}", file=out)
    if pending_total:
        print(f"{pending_total} migrations pending: run `rtcc db upgrade --config FILE`",
              file=out)
        return 1
    return 0


def db_upgrade(database: Database, schemas: Sequence[StoreSchema], out: TextIO) -> int:
    """Applies each store's pending migrations, each in its own transaction."""
    print(f"database: {database.describe()}", file=out)
    for schema in schemas:
        conn = database.connect(schema.name, sqlite_file=schema.sqlite_file)
        try:
            done = upgrade(conn, schema.migrations)
        finally:
            conn.close()
        if done:
            names = ", ".join(f"{m.version} ({m.name})" for m in done)
            print(f"{schema.name}: applied {names}", file=out)
        else:
            print(f"{schema.name}: up to date (version {len(schema.migrations)})", file=out)
    return 0


# -- copy ------------------------------------------------------------------------------------


def _database_at(url: str) -> Database:
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///"))
        if not folder.is_dir():
            raise CopyRefused(
                f"{url}: there is no folder {folder} (a relative path is read from the current "
                "folder; write sqlite:////var/lib/rtcc for an absolute one)")
        return Database(DatabaseConfig(url=SecretStr(url)), folder)
    if url.startswith(("postgresql://", "postgres://")):
        return Database(DatabaseConfig(url=SecretStr(url)), Path("."))
    raise CopyRefused(f"{url.split('://', 1)[0]}: a database URL is sqlite:///DATA_DIR or "
                      "postgresql://USER@HOST:PORT/DB")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Table:
    columns: tuple[str, ...]
    """Columns a copy writes (generated columns are left out)."""
    key: tuple[str, ...]
    """Primary key columns (SQLite's ``rowid`` when none is declared), for reading in order."""
    identity: tuple[str, ...]
    """PostgreSQL columns numbered by a sequence, to move on past the copied values."""
    always_identity: bool


def _describe(conn: SqlConnection, table: str) -> _Table | None:
    """The table's columns and key, or None when it does not exist."""
    if conn.dialect == "sqlite":
        rows = conn.fetchall(f"PRAGMA table_xinfo({_quote(table)})")
        if not rows:
            return None
        columns = tuple(str(r["name"]) for r in rows if int(r["hidden"]) == 0)
        keyed = sorted((r for r in rows if int(r["pk"])), key=lambda r: int(r["pk"]))
        return _Table(columns, tuple(str(r["name"]) for r in keyed) or ("rowid",), (), False)
    rows = conn.fetchall(
        "SELECT column_name, is_generated, is_identity, identity_generation, column_default "
        "FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = ? ORDER BY ordinal_position", (table,))
    if not rows:
        return None
    columns = tuple(str(r[0]) for r in rows if r[1] != "ALWAYS")
    identity = tuple(str(r[0]) for r in rows
                     if r[2] == "YES" or str(r[4] or "").startswith("nextval("))
    key = conn.fetchall(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(?) AND i.indisprimary "
        "ORDER BY array_position(i.indkey::int2[], a.attnum)", (_quote(table),))
    return _Table(columns, tuple(str(r[0]) for r in key), identity,
                  any(r[3] == "ALWAYS" for r in rows))


def _count(conn: SqlConnection, table: str) -> int:
    return int(conn.scalar(f"SELECT COUNT(*) FROM {_quote(table)}"))  # noqa: S608 (quoted identifiers from the store schemas)


class Progress:
    """A bar on a terminal; plain ``store.table done/total`` lines otherwise (logs, CI)."""

    WIDTH = 30

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()

    def show(self, label: str, done: int, total: int) -> None:
        if not self.tty:
            print(f"{label} {done}/{total}", file=self.out, flush=True)
            return
        filled = self.WIDTH if total == 0 else self.WIDTH * done // total
        bar = "#" * filled + "." * (self.WIDTH - filled)
        end = "\n" if done >= total else ""
        self.out.write(f"\r{label:<32} [{bar}] {done}/{total}{end}")
        self.out.flush()


@dataclass
class _Store:
    schema: StoreSchema
    source: SqlConnection | None
    """None when the source has no file for this store (nothing to copy)."""
    target: SqlConnection


def db_copy(source_url: str, target_url: str, schemas: Sequence[StoreSchema],
            out: TextIO) -> int:
    """Copies every store's tables from ``source_url`` into the empty ``target_url``."""
    if source_url == target_url:
        raise CopyRefused("--from and --to name the same database")
    source, target = _database_at(source_url), _database_at(target_url)
    stores: list[_Store] = []
    try:
        print(f"from: {source.describe()}\nto:   {target.describe()}", file=out)
        for schema in schemas:
            if target.dialect not in schema.engines:
                continue
            src: SqlConnection | None = None
            if source.dialect in schema.engines and _exists(source, schema):
                src = source.connect(schema.name, sqlite_file=schema.sqlite_file)
                stores.append(_Store(schema, src, target.connect(
                    schema.name, sqlite_file=schema.sqlite_file)))
                _require_current_source(src, schema)
            else:
                stores.append(_Store(schema, None, target.connect(
                    schema.name, sqlite_file=schema.sqlite_file)))
        _refuse_rows_in_target(stores)
        for store in stores:
            done = upgrade(store.target, store.schema.migrations)
            if done:
                print(f"{store.schema.name}: target schema upgraded to version "
                      f"{done[-1].version}", file=out)
        copied = _copy_rows(stores, Progress(out))
        _verify(stores, out)
        if source.dialect == "sqlite" and target.dialect == "postgresql":
            copied.update(copy_sqlite_catalog_to_postgis(source.sqlite_dir, target, out))
        total = sum(copied.values())
        print(f"copied {total} rows in {len(copied)} tables of {len(stores)} stores; "
              "counts and integrity checks match", file=out)
        return 0
    finally:
        for store in stores:
            for conn in (store.source, store.target):
                if conn is not None:
                    conn.close()
        source.close()
        target.close()


def copy_sqlite_catalog_to_postgis(data_dir: Path, target: Database,
                                   out: TextIO) -> dict[str, int]:
    """The catalog moves through its stores' own API (the SQLite catalog is an R*Tree file,
    ``rtcc.sqlite3``; PostGIS keeps geography columns): cameras, owners, sites and agents."""
    path = data_dir / CATALOG_FILE
    if not path.exists():
        return {}
    return asyncio.run(_copy_catalog(path, target, out))


async def _copy_catalog(path: Path, target: Database, out: TextIO) -> dict[str, int]:
    source = await SqliteCatalog.open(path)
    try:
        destination = await PostgisCatalog.open(target, migrate=True)
        try:
            if await destination.count():
                raise CopyRefused("the target database's catalog already holds cameras; a copy "
                                  "only fills an empty database, so the catalog was not copied")
            total, copied = await source.count(), 0
            batch: list[Camera] = []
            async for camera in source.iter_cameras():
                batch.append(camera)
                if len(batch) >= 2000:
                    copied += await destination.import_cameras(batch)
                    batch = []
                    print(f"catalog.cameras {copied}/{total}", file=out)
            if batch:
                copied += await destination.import_cameras(batch)
            for owner in await source.list_owners():
                await destination.put_owner(owner)
            for site in await source.list_sites():
                await destination.put_site(site)
            for agent in await source.list_agents():
                await destination.put_agent(agent)
            if await destination.count() != total:
                raise CopyFailed(f"catalog.cameras: {await destination.count()} rows in the "
                                 f"target, {total} in the source")
            print(f"catalog.cameras: {copied} rows (source {total})", file=out)
            return {"catalog.cameras": copied}
        finally:
            await destination.aclose()
    finally:
        await source.aclose()


def _require_current_source(conn: SqlConnection, schema: StoreSchema) -> None:
    pending = [s for s in status(conn, schema.migrations) if s.applied_at is None]
    if pending:
        raise CopyRefused(
            f"the source's {schema.name} tables are at an older schema (pending: "
            + ", ".join(f"{s.version} ({s.name})" for s in pending)
            + "); run `rtcc db upgrade --config FILE` on the source installation first")


def _refuse_rows_in_target(stores: Sequence[_Store]) -> None:
    holding: list[str] = []
    for store in stores:
        for table in store.schema.tables:
            if _describe(store.target, table) is None:
                continue
            rows = _count(store.target, table)
            if rows:
                holding.append(f"{store.schema.name}.{table} ({rows} rows)")
    if holding:
        raise CopyRefused(
            "the target database already holds rows in " + ", ".join(holding)
            + "; a copy only fills an empty database, so nothing was copied (create a new "
            "database, or drop and recreate this one, and run the copy again)")


def _copy_rows(stores: Sequence[_Store], progress: Progress) -> dict[str, int]:
    copied: dict[str, int] = {}
    for store in stores:
        if store.source is None:
            continue
        for table in store.schema.tables:
            label = f"{store.schema.name}.{table}"
            try:
                copied[label] = _copy_table(store.source, store.target, table, label, progress)
            except (CopyRefused, CopyFailed):
                raise
            except Exception as exc:  # any engine's error: say where the copy stopped
                raise CopyFailed(
                    f"copying {label} failed ({type(exc).__name__}: {exc}); the target now "
                    "holds a partial copy: drop and recreate it, then run the copy again") from exc
    return copied


def _copy_table(src: SqlConnection, dst: SqlConnection, table: str, label: str,
                progress: Progress) -> int:
    source_table, target_table = _describe(src, table), _describe(dst, table)
    if source_table is None:
        raise CopyFailed(f"the source has no table {label}; is it the same release?")
    if target_table is None:
        raise CopyFailed(f"the target has no table {label} after its upgrade")
    missing = [c for c in source_table.columns if c not in target_table.columns]
    if missing:
        raise CopyFailed(f"the target's {label} has no column {', '.join(missing)}: the copy "
                         "would lose them")
    columns = source_table.columns
    key = source_table.key
    extra = [k for k in key if k not in columns]
    select = ", ".join([*(_quote(c) for c in columns), *extra])
    key_sql = ", ".join(k if k == "rowid" else _quote(k) for k in key)
    overriding = " OVERRIDING SYSTEM VALUE" if target_table.always_identity else ""
    names = ", ".join(_quote(c) for c in columns)
    marks = ", ".join("?" for _ in columns)
    insert = f"INSERT INTO {_quote(table)} ({names}){overriding} VALUES ({marks})"  # noqa: S608 (quoted identifiers from the store schemas)
    key_at = [([*columns, *extra]).index(k) for k in key]
    total = _count(src, table)
    done = 0
    last: tuple[Any, ...] | None = None
    progress.show(label, 0, total)
    while True:
        if not key:  # no primary key (PostgreSQL source): read it whole
            if last is not None:
                break
            rows = src.fetchall(f"SELECT {select} FROM {_quote(table)}")  # noqa: S608 (quoted identifiers from the store schemas)
        else:
            where = "" if last is None else \
                f" WHERE ({key_sql}) > ({', '.join('?' for _ in key)})"
            batch = f"SELECT {select} FROM {_quote(table)}{where} ORDER BY {key_sql} LIMIT ?"  # noqa: S608 (quoted identifiers from the store schemas)
            rows = src.fetchall(batch, (*(last or ()), BATCH_ROWS))
        if not rows:
            break
        with dst.transaction() as tx:
            tx.executemany(insert, [tuple(row)[:len(columns)] for row in rows])
        done += len(rows)
        last = tuple(rows[-1][i] for i in key_at) if key else ()
        progress.show(label, done, max(total, done))
        if len(rows) < BATCH_ROWS and key:
            break
    if dst.dialect == "postgresql":
        for column in target_table.identity:
            # The next id a store inserts continues after the copied ones.
            highest = f"SELECT MAX({_quote(column)}) FROM {_quote(table)}"  # noqa: S608 (quoted identifiers from the store schemas)
            dst.execute(f"SELECT setval(pg_get_serial_sequence(?, ?), "
                        f"COALESCE(({highest}), 0) + 1, false)", (_quote(table), column))
    return done


def _verify(stores: Sequence[_Store], out: TextIO) -> None:
    problems: list[str] = []
    for store in stores:
        if store.source is None:
            print(f"{store.schema.name}: no tables in the source; the target's are empty",
                  file=out)
            continue
        for table in store.schema.tables:
            label = f"{store.schema.name}.{table}"
            have, want = _count(store.target, table), _count(store.source, table)
            if have != want:
                problems.append(f"{label} holds {have} rows, the source {want}")
            print(f"{label}: {have} rows (source {want})", file=out)
        if store.schema.verify is not None:
            try:
                store.schema.verify(store.target)
            except Exception as exc:  # noqa: BLE001 (a store's own check: report whatever it raises)
                problems.append(f"{store.schema.name}'s integrity check failed on the target: "
                                f"{exc}")
            else:
                print(f"{store.schema.name}: integrity check passed", file=out)
    if problems:
        raise CopyFailed("the copy does not match its source: " + "; ".join(problems))


__all__ = ["BATCH_ROWS", "CopyFailed", "CopyRefused", "Progress", "add_parser", "db_copy",
           "db_main", "db_status", "db_upgrade"]
