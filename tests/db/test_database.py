"""The data layer on both engines: rows, placeholders, transactions, migrations, outages."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from rtcc.config import DatabaseConfig
from rtcc.db import Database, DatabaseUnavailable, Migration, SqlConnection, redact_url
from rtcc.db.connection import split_statements, to_format_style
from rtcc.db.migrations import SchemaNotCurrent, SchemaTooNew, prepare, status, upgrade
from tests.fixtures.postgres import PostgresServer, start_postgres

MIGRATIONS = [
    Migration(1, "notes", sqlite="""
        CREATE TABLE IF NOT EXISTS notes (id TEXT PRIMARY KEY, body TEXT NOT NULL, n INTEGER);
        CREATE TRIGGER IF NOT EXISTS notes_no_delete BEFORE DELETE ON notes
        BEGIN SELECT RAISE(ABORT, 'notes are kept'); END;
    """, postgresql="""
        CREATE TABLE IF NOT EXISTS notes (id TEXT PRIMARY KEY, body TEXT NOT NULL, n BIGINT);
        CREATE OR REPLACE FUNCTION notes_kept() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'notes are kept'; END; $$;
        CREATE TRIGGER notes_no_delete BEFORE DELETE ON notes
        FOR EACH ROW EXECUTE FUNCTION notes_kept();
    """),
]
SECOND = Migration(2, "note authors", sqlite="ALTER TABLE notes ADD COLUMN author TEXT "
                   "NOT NULL DEFAULT 'unknown'",
                   postgresql="ALTER TABLE notes ADD COLUMN author TEXT NOT NULL "
                   "DEFAULT 'unknown'")


def _database(database_url: str, data_dir: Path) -> Database:
    return Database(DatabaseConfig(url=SecretStr(database_url), connect_timeout=3), data_dir)


@pytest.fixture
def conn(database_url: str, tmp_path: Path) -> Iterator[SqlConnection]:
    db = _database(database_url, tmp_path)
    connection = db.connect("notes")
    upgrade(connection, MIGRATIONS)
    yield connection
    connection.close()
    db.close()


def test_rows_read_by_name_and_position(conn: SqlConnection) -> None:
    conn.execute("INSERT INTO notes (id, body, n) VALUES (?, ?, ?)", ("a", "what? 100%", 7))
    row = conn.fetchone("SELECT id, body, n FROM notes WHERE id = ?", ("a",))
    assert (row["id"], row["body"], row["n"]) == ("a", "what? 100%", 7)
    assert (row[0], row[2]) == ("a", 7)
    assert list(row.keys()) == ["id", "body", "n"]
    assert dict(zip(row.keys(), row, strict=True)) == {"id": "a", "body": "what? 100%", "n": 7}
    # A question mark and a percent sign inside a literal are text, not placeholders.
    assert conn.scalar("SELECT COUNT(*) FROM notes WHERE body LIKE 'what? 100%' AND n = ?",
                       (7,)) == 1
    assert conn.fetchone("SELECT id FROM notes WHERE id = ?", ("none",)) is None


def test_a_failed_transaction_leaves_nothing(conn: SqlConnection) -> None:
    def half_way() -> None:
        with conn.transaction() as tx:
            tx.execute("INSERT INTO notes (id, body) VALUES (?, ?)", ("b", "half"))
            raise RuntimeError("stop half-way")

    with pytest.raises(RuntimeError):
        half_way()
    assert conn.scalar("SELECT COUNT(*) FROM notes") == 0
    with conn.transaction() as tx:
        tx.execute("INSERT INTO notes (id, body) VALUES (?, ?)", ("b", "whole"))
        with tx.transaction() as inner:  # nested: one transaction
            inner.execute("UPDATE notes SET n = ? WHERE id = ?", (2, "b"))
    assert conn.fetchone("SELECT n FROM notes WHERE id = 'b'")["n"] == 2


def test_triggers_from_a_migration_guard_the_table(conn: SqlConnection) -> None:
    conn.execute("INSERT INTO notes (id, body) VALUES ('c', 'kept')")
    with pytest.raises(Exception, match="notes are kept"):
        conn.execute("DELETE FROM notes")
    assert conn.scalar("SELECT COUNT(*) FROM notes") == 1


def test_migrations_are_recorded_and_applied_once(conn: SqlConnection) -> None:
    conn.execute("INSERT INTO notes (id, body) VALUES ('d', 'before the upgrade')")
    with pytest.raises(SchemaNotCurrent, match="rtcc db upgrade"):
        prepare(conn, [*MIGRATIONS, SECOND], migrate=False)
    assert [m.version for m in upgrade(conn, [*MIGRATIONS, SECOND])] == [2]
    assert upgrade(conn, [*MIGRATIONS, SECOND]) == []
    assert conn.fetchone("SELECT body, author FROM notes WHERE id = 'd'")[:] == (
        "before the upgrade", "unknown")
    listed = status(conn, [*MIGRATIONS, SECOND])
    assert [(s.version, s.applied_at is not None) for s in listed] == [(1, True), (2, True)]
    with pytest.raises(SchemaTooNew, match="newer than this release"):
        upgrade(conn, MIGRATIONS)


def test_stores_do_not_see_each_others_tables(database_url: str, tmp_path: Path) -> None:
    db = _database(database_url, tmp_path)
    first, second = db.connect("first"), db.connect("second")
    try:
        for conn in (first, second):
            conn.execute("CREATE TABLE items (name TEXT)")
        first.execute("INSERT INTO items VALUES ('only in first')")
        assert second.scalar("SELECT COUNT(*) FROM items") == 0
        assert first.scalar("SELECT COUNT(*) FROM items") == 1
    finally:
        db.close()


def test_statements_split_like_each_engine_reads_them() -> None:
    script = "CREATE TABLE a (x TEXT DEFAULT ';'); CREATE TRIGGER t BEFORE DELETE ON a " \
             "BEGIN SELECT RAISE(ABORT, 'no;'); END; INSERT INTO a VALUES ('?')"
    assert len(split_statements(script, "sqlite")) == 3
    pg = "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$; SELECT ';'"
    assert split_statements(pg) == ["CREATE FUNCTION f() RETURNS int LANGUAGE sql AS "
                                    "$$ SELECT 1; $$", "SELECT ';'"]
    assert to_format_style("SELECT '?', ? WHERE x LIKE '5%' AND y % 2 = ?") == \
        "SELECT '?', %s WHERE x LIKE '5%%' AND y %% 2 = %s"


def test_passwords_never_shown() -> None:
    assert redact_url("postgresql://rtcc:s3cret@db:5432/rtcc") == "postgresql://rtcc:***@db:5432/rtcc"
    db = Database(DatabaseConfig(url=SecretStr("postgresql://rtcc:s3cret@db:5432/rtcc")),
                  Path("."))
    assert "s3cret" not in db.describe()


def test_an_outage_fails_closed_and_recovers(tmp_path: Path) -> None:
    """The database goes away: statements raise a clear error; it comes back on the same
    port: the same connection object works again without a restart."""
    server: PostgresServer = start_postgres()
    try:
        db = _database(server.url(server.new_database()), tmp_path)
        conn = db.connect("notes")
        upgrade(conn, MIGRATIONS)
        conn.execute("INSERT INTO notes (id, body) VALUES ('e', 'before the outage')")
        server.stop()
        with pytest.raises(DatabaseUnavailable, match="did not answer"):
            conn.execute("SELECT COUNT(*) FROM notes")
        server = server.restart()
        deadline = time.monotonic() + 60
        while True:  # the pool reconnects with its own backoff
            try:
                assert conn.scalar("SELECT body FROM notes WHERE id = 'e'") == "before the outage"
                break
            except DatabaseUnavailable:
                assert time.monotonic() < deadline, "no reconnection within 60 s"
        db.close()
    finally:
        server.remove()
