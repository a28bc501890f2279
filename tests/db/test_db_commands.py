"""``rtcc db status | upgrade | copy`` as real subprocesses, on a real PostgreSQL server."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from pydantic import SecretStr

from rtcc.config import DatabaseConfig
from rtcc.db import Database, SqlConnection
from server.db_commands import Progress
from tests.db.schemas import LEDGER, NOTES, append_entry, verify_chain

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = 4500
"""More than two copy batches."""


def _rtcc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.db.run_cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env, check=False)


def _postgres(url: str, data_dir: Path) -> Database:
    return Database(DatabaseConfig(url=SecretStr(url), connect_timeout=5), data_dir)


def _fill(data_dir: Path, entries: int, *, notes: bool = True) -> None:
    """A SQLite installation: accounts with a gap in their ids, a chained ledger, notes."""
    db = Database.embedded(data_dir)
    ledger = db.open_store(LEDGER)
    try:
        with ledger.transaction() as tx:
            ids = [int(tx.scalar("INSERT INTO accounts (name) VALUES (?) RETURNING id",
                                 (f"account {i}",))) for i in range(4)]
            tx.execute("DELETE FROM accounts WHERE id = ?", (ids[1],))
            kept = [ids[0], ids[2], ids[3]]
            for i in range(entries):
                append_entry(tx, kept[i % 3], f"entry {i}")
    finally:
        ledger.close()
    if notes:
        note_conn = db.open_store(NOTES)
        try:
            note_conn.executemany("INSERT INTO notes (key, body, author) VALUES (?, ?, ?)",
                                  [("a", "first", "ann"), ("b", "second", "bob"),
                                   ("c", "third", "unknown")])
        finally:
            note_conn.close()


def _rows(conn: SqlConnection, sql: str) -> list[tuple[object, ...]]:
    return [tuple(row) for row in conn.fetchall(sql)]


def test_status_and_upgrade_through_the_configuration(postgres_url: str,
                                                      tmp_path: Path) -> None:
    password = urllib.parse.urlsplit(postgres_url).password
    assert password
    config = tmp_path / "rtcc.yaml"
    secret_url = postgres_url.replace(f":{password}@", ":${RTCC_DATABASE_PASSWORD}@")
    config.write_text(f"data_dir: {tmp_path / 'data'}\n"
                      f"database:\n  url: {secret_url}\n  connect_timeout: 5\n")
    env = {**os.environ, "RTCC_DATABASE_PASSWORD": password}

    before = _rtcc("db", "status", "--config", str(config), env=env)
    assert before.returncode == 1, before.stderr
    assert "database: PostgreSQL at postgresql://rtcc:***@127.0.0.1:" in before.stdout
    assert "ledger: schema version 0 of 1 (1 pending)" in before.stdout
    assert "notes: schema version 0 of 2 (2 pending)" in before.stdout
    assert "3 migrations pending: run `rtcc db upgrade" in before.stdout

    up = _rtcc("db", "upgrade", "--config", str(config), env=env)
    assert up.returncode == 0, up.stderr
    assert "ledger: applied 1 (accounts and entries)" in up.stdout
    assert "notes: applied 1 (notes), 2 (note authors)" in up.stdout
    again = _rtcc("db", "upgrade", "--config", str(config), env=env)
    assert "notes: up to date (version 2)" in again.stdout

    after = _rtcc("db", "status", "--config", str(config), env=env)
    assert after.returncode == 0, after.stderr
    assert "notes: schema version 2 of 2 (up to date)" in after.stdout
    assert after.stdout.count(" UTC") == 3
    for run in (before, up, again, after):
        assert password not in run.stdout + run.stderr

    # A server started without migrate_on_start finds the schema current.
    db = _postgres(postgres_url, tmp_path)
    try:
        notes = db.open_store(NOTES, migrate=False)
        notes.execute("INSERT INTO notes (key, body) VALUES ('k', 'v')")
        assert notes.scalar("SELECT author FROM notes WHERE key = 'k'") == "unknown"
    finally:
        db.close()


def test_status_of_an_unreachable_database_says_so(tmp_path: Path) -> None:
    config = tmp_path / "rtcc.yaml"
    # A port nothing listens on: 1 is privileged and unused here.
    config.write_text(f"data_dir: {tmp_path / 'data'}\ndatabase:\n"
                      "  url: postgresql://rtcc@127.0.0.1:1/rtcc\n  connect_timeout: 2\n")
    result = _rtcc("db", "status", "--config", str(config))
    assert result.returncode == 1
    assert "rtcc db status: the ledger store's tables in PostgreSQL at " \
           "postgresql://rtcc@127.0.0.1:1/rtcc did not answer" in result.stderr


def test_copy_from_sqlite_to_postgresql(postgres_url: str, tmp_path: Path) -> None:
    source_dir = tmp_path / "pilot"
    _fill(source_dir, ENTRIES)
    password = urllib.parse.urlsplit(postgres_url).password
    assert password

    result = _rtcc("db", "copy", "--from", f"sqlite:///{source_dir}", "--to", postgres_url)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert password not in out + result.stderr
    assert f"from: SQLite files in {source_dir}" in out
    assert "to:   PostgreSQL at postgresql://rtcc:***@" in out
    # Progress as plain lines (not a terminal), one per batch.
    assert [line for line in out.splitlines() if line.startswith("ledger.entries ")] == [
        f"ledger.entries 0/{ENTRIES}", f"ledger.entries 2000/{ENTRIES}",
        f"ledger.entries 4000/{ENTRIES}", f"ledger.entries {ENTRIES}/{ENTRIES}"]
    assert "ledger.accounts: 3 rows (source 3)" in out
    assert f"ledger.entries: {ENTRIES} rows (source {ENTRIES})" in out
    assert "notes.notes: 3 rows (source 3)" in out
    assert "ledger: integrity check passed" in out
    assert f"copied {3 + ENTRIES + 3} rows in 3 tables of 2 stores" in out

    source, target = Database.embedded(source_dir), _postgres(postgres_url, tmp_path)
    try:
        src, dst = source.open_store(LEDGER), target.open_store(LEDGER, migrate=False)
        rows = "SELECT id, account_id, body, payload, amount, prev_hash, hash FROM entries " \
               "ORDER BY id"
        assert _rows(dst, rows) == _rows(src, rows)
        accounts = "SELECT id, name FROM accounts ORDER BY id"
        assert _rows(dst, accounts) == _rows(src, accounts) == [
            (1, "account 0"), (3, "account 2"), (4, "account 3")]
        notes = target.open_store(NOTES, migrate=False)
        assert _rows(notes, "SELECT key, body, author FROM notes ORDER BY key") == [
            ("a", "first", "ann"), ("b", "second", "bob"), ("c", "third", "unknown")]
        src.close()

        # A second copy into the now-filled database is refused and changes nothing.
        refused = _rtcc("db", "copy", "--from", f"sqlite:///{source_dir}", "--to",
                        postgres_url)
        assert refused.returncode == 1
        assert "the target database already holds rows in ledger.accounts (3 rows), " \
               f"ledger.entries ({ENTRIES} rows), notes.notes (3 rows)" in refused.stderr
        assert "nothing was copied" in refused.stderr
        assert "ledger.entries 0/" not in refused.stdout
        assert dst.scalar("SELECT COUNT(*) FROM entries") == ENTRIES

        # New rows continue after the copied ids; the append-only guard came along.
        assert dst.scalar("INSERT INTO accounts (name) VALUES ('new') RETURNING id") == 5
        assert append_entry(dst, 5, "after the move") == ENTRIES + 1
        verify_chain(dst)
        with pytest.raises(Exception, match="append-only"):
            dst.execute("UPDATE entries SET body = 'changed' WHERE id = 1")
    finally:
        source.close()
        target.close()


def test_copy_reports_a_broken_chain_in_the_source(postgres_url: str, tmp_path: Path) -> None:
    """A source whose chain was tampered with (its guard dropped first) copies row for row, and
    the copy fails its verification, naming the entry."""
    source_dir = tmp_path / "tampered"
    _fill(source_dir, 10, notes=False)
    conn = Database.embedded(source_dir).open_store(LEDGER)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("UPDATE entries SET body = 'rewritten' WHERE id = 5")
    conn.close()

    result = _rtcc("db", "copy", "--from", f"sqlite:///{source_dir}", "--to", postgres_url)
    assert result.returncode == 1
    assert "ledger.entries: 10 rows (source 10)" in result.stdout
    assert "notes: no tables in the source" in result.stdout
    assert "ledger's integrity check failed on the target: ledger entry 5 breaks the chain" \
        in result.stderr


def test_copy_refuses_a_missing_source_folder(tmp_path: Path) -> None:
    result = _rtcc("db", "copy", "--from", f"sqlite:///{tmp_path / 'nowhere'}",
                   "--to", "postgresql://rtcc@127.0.0.1:1/rtcc")
    assert result.returncode == 1
    assert f"there is no folder {tmp_path / 'nowhere'}" in result.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal() -> None:
    terminal = _Terminal()
    progress = Progress(terminal)
    for done in (0, 2000, 4000):
        progress.show("security.audit", done, 4000)
    frames = terminal.getvalue().split("\r")[1:]
    assert [frame.split("[")[1].split("]")[0].count("#") for frame in frames] == [0, 15, 30]
    assert frames[-1].endswith("] 4000/4000\n")
