"""The audit log: hash chain, tampering found by `rtcc audit verify`, fail-closed writes."""

from __future__ import annotations

import io
import re
import sqlite3
from pathlib import Path

import pytest

from rtcc.config import Settings, SharingLevel
from rtcc.policy import Role
from security.audit import AuditWriter, verify_chain
from security.cli import audit_verify_main
from security.secretbox import load_audit_key
from security.store import STORE_FILE, SecurityTables
from tests.fixtures.auth import FakeClock, MakeClient, bearer, role_headers, security_settings
from tests.security.harness import Directory, security_app


def _filled_store(tmp_path: Path, entries: int = 6) -> tuple[Settings, Path]:
    settings = security_settings(tmp_path)
    store = SecurityTables.open_in(settings.data_dir)
    audit = AuditWriter(store, FakeClock(1_700_000_000.123))
    for i in range(entries):
        audit.append(actor=f"user{i}", role="analyst", action="view.start", camera_id="cam1",
                     source="192.0.2.1", details={"purpose": f"case {i}"})
    store.close()
    return settings, settings.data_dir / STORE_FILE


def _tamper(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def _verify(settings: Settings) -> tuple[int, str]:
    out = io.StringIO()
    code = audit_verify_main(settings, out)
    return code, out.getvalue()


def test_intact_chain_verifies_and_timestamps_are_utc_milliseconds(tmp_path: Path) -> None:
    settings, path = _filled_store(tmp_path)
    code, text = _verify(settings)
    assert code == 0, text
    assert "intact: 6 entries" in text
    store = SecurityTables.open(path)
    entry = AuditWriter(store, FakeClock()).query(limit=1)[0].as_json()
    store.close()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    assert entry["time"].endswith(".123Z")


def test_the_log_refuses_updates_and_deletes(tmp_path: Path) -> None:
    _, path = _filled_store(tmp_path)
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit SET actor = 'nobody' WHERE id = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit WHERE id = 2")
    conn.close()


@pytest.mark.parametrize(
    ("statements", "entry", "reason"),
    [
        (["UPDATE audit SET actor = 'someone else' WHERE id = 3"], 3, "altered"),
        (["UPDATE audit SET details = '{\"purpose\":\"nothing\"}' WHERE id = 6"], 6, "altered"),
        (["DELETE FROM audit WHERE id = 4"], 4, "missing"),
        (["DELETE FROM audit WHERE id = 6"], 6, "missing"),
        (["DELETE FROM audit WHERE id = 6",
          "UPDATE sqlite_sequence SET seq = 5 WHERE name = 'audit'"], 6, "missing"),
        (["DELETE FROM audit WHERE id = 1"], 1, "missing"),
        # Swap the contents of two entries (reorder) keeping their ids.
        (["UPDATE audit SET id = 100 WHERE id = 2", "UPDATE audit SET id = 2 WHERE id = 3",
          "UPDATE audit SET id = 3 WHERE id = 100"], 2, "broken"),
        # Recompute the hash of an altered entry: the next entry's link gives it away.
        (["UPDATE audit SET actor = 'x', hash = 'f' || substr(hash, 2) WHERE id = 2"], 2,
         "altered"),
    ],
)
def test_tampering_is_found(tmp_path: Path, statements: list[str], entry: int,
                            reason: str) -> None:
    settings, path = _filled_store(tmp_path)
    _tamper(path, *statements)
    code, text = _verify(settings)
    assert code == 1, text
    assert f"tampered at entry {entry}:" in text
    assert reason in text


def test_a_rehashed_alteration_is_found_by_the_next_link(tmp_path: Path) -> None:
    """Even rehashed with the audit key itself, the next entry's link gives it away."""
    settings, path = _filled_store(tmp_path)
    store = SecurityTables.open(path)
    row = store.conn.execute("SELECT * FROM audit WHERE id = 3").fetchone()
    store.close()
    from security.audit import AuditEntry

    forged = AuditEntry.from_row(row)
    forged = AuditEntry(**{**{f: getattr(forged, f) for f in AuditEntry.__slots__},
                           "actor": "innocent"})
    new_hash = forged.computed_hash(load_audit_key(settings.data_dir))
    _tamper(path, f"UPDATE audit SET actor = 'innocent', hash = '{new_hash}' WHERE id = 3")
    code, text = _verify(settings)
    assert code == 1
    assert "tampered at entry 4:" in text
    assert "broken" in text


def test_appending_after_a_deletion_keeps_the_gap_visible(tmp_path: Path) -> None:
    _settings, path = _filled_store(tmp_path)
    _tamper(path, "DELETE FROM audit WHERE id = 6")
    store = SecurityTables.open(path)
    AuditWriter(store, FakeClock()).append(actor="later", role="admin", action="user.create")
    result = verify_chain(store)
    store.close()
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
