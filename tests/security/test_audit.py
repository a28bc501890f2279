"""The audit log: hash chain, tampering found by `rtcc audit verify` (on SQLite and on
PostgreSQL), fail-closed writes."""

from __future__ import annotations

import io
import re
import sqlite3
from pathlib import Path

import pytest
from pydantic import SecretStr

from rtcc.config import DatabaseConfig, Settings, SharingLevel
from rtcc.policy import Role
from security.audit import AuditChainBroken, AuditWriter, verify_chain
from security.cli import audit_verify_main
from security.secretbox import load_audit_key
from security.store import SCHEMA, STORE_FILE
from tests.fixtures.auth import FakeClock, MakeClient, bearer, role_headers, security_settings
from tests.security.engines import RAW_ERRORS, engine_settings, open_tables, raw_connection, tamper
from tests.security.harness import Directory, security_app


def _filled_store(tmp_path: Path, database_url: str, entries: int = 6) -> Settings:
    settings = engine_settings(tmp_path / "data", database_url)
    with open_tables(settings) as store:
        audit = AuditWriter(store, FakeClock(1_700_000_000.123))
        for i in range(entries):
            audit.append(actor=f"user{i}", role="analyst", action="view.start",
                         camera_id="cam1", source="192.0.2.1", details={"purpose": f"case {i}"})
    return settings


def _verify(settings: Settings) -> tuple[int, str]:
    out = io.StringIO()
    code = audit_verify_main(settings, out)
    return code, out.getvalue()


def test_intact_chain_verifies_and_timestamps_are_utc_milliseconds(
    tmp_path: Path, database_url: str
) -> None:
    settings = _filled_store(tmp_path, database_url)
    code, text = _verify(settings)
    assert code == 0, text
    assert "intact: 6 entries" in text
    with open_tables(settings) as store:
        entry = AuditWriter(store, FakeClock()).query(limit=1)[0].as_json()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    assert entry["time"].endswith(".123Z")


@pytest.mark.parametrize("statement", [
    "UPDATE audit SET actor = 'nobody' WHERE id = 2",
    "DELETE FROM audit WHERE id = 2",
    "UPDATE audit_meta SET value = '1:x'",
    "DELETE FROM audit_meta",
])
def test_the_log_refuses_updates_and_deletes(tmp_path: Path, database_url: str,
                                             statement: str) -> None:
    settings = _filled_store(tmp_path, database_url)
    with raw_connection(settings) as conn, pytest.raises(
            RAW_ERRORS, match=r"append-only|written once"):
        conn.execute(statement)
    code, text = _verify(settings)
    assert code == 0, text


def test_postgresql_refuses_truncating_the_log(tmp_path: Path, postgres_url: str) -> None:
    settings = _filled_store(tmp_path, postgres_url)
    for table in ("audit", "audit_meta"):
        with raw_connection(settings) as conn, pytest.raises(
                RAW_ERRORS, match=r"append-only|written once"):
            conn.execute(f"TRUNCATE {table}")
    assert _verify(settings)[0] == 0


@pytest.mark.parametrize(
    ("statements", "entry", "reason"),
    [
        (["UPDATE audit SET actor = 'someone else' WHERE id = 3"], 3, "altered"),
        (["UPDATE audit SET details = '{\"purpose\":\"nothing\"}' WHERE id = 6"], 6, "altered"),
        (["DELETE FROM audit WHERE id = 4"], 4, "missing"),
        (["DELETE FROM audit WHERE id = 6"], 6, "missing"),
        (["DELETE FROM audit WHERE id = 1"], 1, "missing"),
        # Swap the contents of two entries (reorder) keeping their ids.
        (["UPDATE audit SET id = 100 WHERE id = 2", "UPDATE audit SET id = 2 WHERE id = 3",
          "UPDATE audit SET id = 3 WHERE id = 100"], 2, "broken"),
        # Recompute the hash of an altered entry: the next entry's link gives it away.
        (["UPDATE audit SET actor = 'x', hash = 'f' || substr(hash, 2) WHERE id = 2"], 2,
         "altered"),
    ],
)
def test_tampering_is_found(tmp_path: Path, database_url: str, statements: list[str],
                            entry: int, reason: str) -> None:
    settings = _filled_store(tmp_path, database_url)
    tamper(settings, *statements)
    code, text = _verify(settings)
    assert code == 1, text
    assert f"tampered at entry {entry}:" in text
    assert reason in text


def test_a_deletion_hidden_by_rewinding_sqlites_counter_is_found(tmp_path: Path) -> None:
    """SQLite only: its AUTOINCREMENT counter (PostgreSQL keeps the head row alone)."""
    settings = _filled_store(tmp_path, "")
    tamper(settings, "DELETE FROM audit WHERE id = 6",
           "UPDATE sqlite_sequence SET seq = 5 WHERE name = 'audit'")
    code, text = _verify(settings)
    assert code == 1, text
    assert "tampered at entry 6:" in text
    assert "missing" in text


def test_a_rehashed_alteration_is_found_by_the_next_link(tmp_path: Path,
                                                         database_url: str) -> None:
    """Even rehashed with the audit key itself, the next entry's link gives it away."""
    settings = _filled_store(tmp_path, database_url)
    with open_tables(settings) as store:
        row = store.conn.fetchone("SELECT * FROM audit WHERE id = 3")
    from security.audit import AuditEntry

    forged = AuditEntry.from_row(row)
    forged = AuditEntry(**{**{f: getattr(forged, f) for f in AuditEntry.__slots__},
                           "actor": "innocent"})
    new_hash = forged.computed_hash(load_audit_key(settings.data_dir))
    tamper(settings, f"UPDATE audit SET actor = 'innocent', hash = '{new_hash}' WHERE id = 3")
    code, text = _verify(settings)
    assert code == 1
    assert "tampered at entry 4:" in text
    assert "broken" in text


def test_appending_after_a_deletion_keeps_the_gap_visible(tmp_path: Path,
                                                          database_url: str) -> None:
    settings = _filled_store(tmp_path, database_url)
    tamper(settings, "DELETE FROM audit WHERE id = 6")
    with open_tables(settings) as store:
        AuditWriter(store, FakeClock()).append(actor="later", role="admin",
                                               action="user.create")
        result = verify_chain(store)
    assert not result.ok
    assert result.entry_id == 6


def test_verify_without_a_store_says_so(tmp_path: Path) -> None:
    code, text = _verify(security_settings(tmp_path))
    assert code == 2
    assert "no security store" in text


async def test_view_is_refused_when_the_audit_log_cannot_be_written(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    directory = Directory()
    directory.add("cam1", SharingLevel.LIVE_ALWAYS)
    settings = security_settings(tmp_path)
    client = await make_client(security_app(settings, directory=directory))
    _, analyst = await role_headers(client, bearer(bootstrap_token), Role.ANALYST)
    assert (await client.get("/test/view/cam1?purpose=patrol", headers=analyst)).status == 200

    conn = sqlite3.connect(settings.data_dir / STORE_FILE)
    conn.execute("CREATE TRIGGER audit_broken BEFORE INSERT ON audit "
                 "BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    conn.commit()
    conn.close()
    refused = await client.get("/test/view/cam1?purpose=patrol", headers=analyst)
    assert refused.status == 503
    assert "audit" in (await refused.json())["error"]


def test_the_schema_check_a_copy_runs_is_the_audit_chain(tmp_path: Path,
                                                         database_url: str) -> None:
    """``SCHEMA.verify`` (run by ``rtcc db copy`` after copying) passes an intact log without
    the audit key and names the entry where a damaged one breaks."""
    settings = _filled_store(tmp_path, database_url)
    assert SCHEMA.verify is not None
    with open_tables(settings) as store:
        SCHEMA.verify(store.conn)
    tamper(settings, "DELETE FROM audit WHERE id = 4")
    with open_tables(settings) as store, pytest.raises(
            AuditChainBroken, match="tampered at entry 4: entries 4 are missing"):
        SCHEMA.verify(store.conn)


def test_verify_on_postgresql_before_the_upgrade_says_what_to_run(
    tmp_path: Path, postgres_url: str
) -> None:
    settings = Settings(data_dir=tmp_path / "data",
                        database=DatabaseConfig(url=SecretStr(postgres_url)))
    code, text = _verify(settings)
    assert code == 2, text
    assert "rtcc db upgrade" in text
