"""Trustworthy records: the keyed audit chain and its signed checkpoints, checked by the real
`rtcc audit verify` command, and the server's data files private whatever the umask."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rtcc.config import Settings
from security.audit import GENESIS, AuditWriter, entry_hash
from security.audit_checkpoints import CHECKPOINT_FILE, AuditCheckpoints, Checkpoint
from security.secretbox import load_audit_key
from security.store import STORE_FILE, SecurityTables
from tests.fixtures.auth import FakeClock, security_settings
from tests.fixtures.server_process import serve

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ("id", "ts_ms", "actor", "role", "action", "target", "camera_id", "owner_id",
           "outcome", "source", "details", "prev_hash")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("RTCC_AUDIT_KEY", "RTCC_SECRET_KEY")}


def _config(settings: Settings) -> Path:
    path = settings.data_dir.parent / "server.yaml"
    path.write_text(f"data_dir: {settings.data_dir}\n")
    return path


def rtcc(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", *args], capture_output=True,
                          text=True, timeout=timeout, check=False, cwd=ROOT, env=_env())


def audit_verify(settings: Settings) -> subprocess.CompletedProcess[str]:
    return rtcc("audit", "verify", "--config", str(_config(settings)))


def _append(audit: AuditWriter, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        audit.append(actor=f"user{i}", role="analyst", action="view.start", camera_id="cam1",
                     source="192.0.2.1", details={"purpose": f"case {i}"})


def _filled(tmp_path: Path, entries: int = 6) -> Settings:
    settings = security_settings(tmp_path)
    store = SecurityTables.open_in(settings.data_dir)
    try:
        _append(AuditWriter(store, FakeClock(1_700_000_000.0)), entries)
    finally:
        store.close()
    return settings


def _open_for_tampering(settings: Settings) -> sqlite3.Connection:
    conn = sqlite3.connect(settings.data_dir / STORE_FILE)
    conn.row_factory = sqlite3.Row
    for trigger in ("audit_no_update", "audit_no_delete", "audit_meta_no_update",
                    "audit_meta_no_delete"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    return conn


def rewrite_chain(settings: Settings, *, delete: int | None = None, actor_of: int | None = None,
                  key: bytes | None = None) -> None:
    """What an intruder with write access to the database does: remove (or alter) an entry,
    renumber the rest and recompute every later hash with ``key`` (plain SHA-256 when None),
    then fix the sequence and head."""
    conn = _open_for_tampering(settings)
    rows = [dict(row) for row in conn.execute("SELECT * FROM audit ORDER BY id")]
    conn.execute("DELETE FROM audit")
    if delete is not None:
        rows = [row for row in rows if row["id"] != delete]
    first_changed = min(n for n in (delete, actor_of) if n is not None)
    prev = GENESIS
    for number, row in enumerate(rows, start=1):
        row["id"] = number
        if number == actor_of:
            row["actor"] = "innocent"
        if number >= first_changed:  # the entries before it are left as they were
            row["prev_hash"] = prev
            row["hash"] = entry_hash(
                row["id"], row["ts_ms"], row["actor"], row["role"], row["action"],
                row["target"], row["camera_id"], row["owner_id"], row["outcome"],
                row["source"], row["details"], row["prev_hash"], key=key)
        prev = row["hash"]
        conn.execute("INSERT INTO audit (" + ", ".join((*COLUMNS, "hash")) + ") VALUES ("
                     + ", ".join("?" * (len(COLUMNS) + 1)) + ")",
                     [row[c] for c in (*COLUMNS, "hash")])
    conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'audit'", (len(rows),))
    conn.execute("UPDATE audit_head SET last_id = ?, last_hash = ?", (len(rows), prev))
    conn.commit()
    conn.close()


def truncate(settings: Settings, keep: int) -> None:
    """Delete the entries after ``keep`` and make the sequence and head agree."""
    conn = _open_for_tampering(settings)
    conn.execute("DELETE FROM audit WHERE id > ?", (keep,))
    last = conn.execute("SELECT hash FROM audit WHERE id = ?", (keep,)).fetchone()["hash"]
    conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'audit'", (keep,))
    conn.execute("UPDATE audit_head SET last_id = ?, last_hash = ?", (keep, last))
    conn.commit()
    conn.close()


# -- the keyed chain ------------------------------------------------------------------------


def test_an_intact_keyed_log_verifies(tmp_path: Path) -> None:
    settings = _filled(tmp_path)
    key_file = settings.data_dir / "audit.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    done = audit_verify(settings)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "audit log intact: 6 entries" in done.stdout
    assert "every entry is keyed (HMAC-SHA256)" in done.stdout
    assert "audit checkpoints: none written yet" in done.stdout


@pytest.mark.parametrize("rehash_key", [None, b"guessed" * 4 + b"1234"],
                         ids=["plain-sha256", "guessed-key"])
def test_a_chain_rewritten_after_deleting_an_entry_is_found(
    tmp_path: Path, rehash_key: bytes | None
) -> None:
    settings = _filled(tmp_path)
    rewrite_chain(settings, delete=3, key=rehash_key)
    done = audit_verify(settings)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "audit log tampered at entry 3:" in done.stdout
    assert "keyed hash (HMAC-SHA256)" in done.stdout


def test_verify_without_the_audit_key_says_how_to_give_it(tmp_path: Path) -> None:
    settings = _filled(tmp_path)
    key = load_audit_key(settings.data_dir)
    assert key is not None
    (settings.data_dir / "audit.key").unlink()
    done = audit_verify(settings)
    assert done.returncode == 2
    assert "no audit key was found: set RTCC_AUDIT_KEY or restore" in done.stdout

    given = subprocess.run(
        [sys.executable, "-m", "server", "audit", "verify", "--config", str(_config(settings))],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
        env={**_env(), "RTCC_AUDIT_KEY": base64.b64encode(key).decode()})
    assert given.returncode == 0, given.stdout
    assert "every entry is keyed" in given.stdout


# -- entries written before the key existed ----------------------------------------------------


def _legacy_log(tmp_path: Path, entries: int) -> Settings:
    """A log written by a server without an audit key: plain SHA-256, no boundary."""
    settings = security_settings(tmp_path)
    store = SecurityTables.open_in(settings.data_dir)
    prev = GENESIS
    with store.transaction() as conn:
        for number in range(1, entries + 1):
            row = (number, 1_700_000_000_000 + number, f"old{number}", "analyst", "view.start",
                   "", "cam1", "", "ok", "192.0.2.1", "{}", prev)
            prev = entry_hash(*row)
            conn.execute("INSERT INTO audit (" + ", ".join((*COLUMNS, "hash")) + ") VALUES ("
                         + ", ".join("?" * (len(COLUMNS) + 1)) + ")", (*row, prev))
        conn.execute("INSERT INTO audit_head (one, last_id, last_hash) VALUES (1, ?, ?)",
                     (entries, prev))
    store.close()
    return settings


def test_entries_from_before_the_key_keep_verifying_under_the_old_rule(tmp_path: Path) -> None:
    settings = _legacy_log(tmp_path, 4)
    before = audit_verify(settings)  # never started with a key: verified, and said so
    assert before.returncode == 0, before.stdout
    assert "NOT KEYED" in before.stdout
    assert not (settings.data_dir / "audit.key").exists()  # verifying creates no key

    store = SecurityTables.open_in(settings.data_dir)
    try:
        _append(AuditWriter(store, FakeClock()), 2)
    finally:
        store.close()
    done = audit_verify(settings)
    assert done.returncode == 0, done.stdout
    assert "audit log intact: 6 entries" in done.stdout
    assert ("entries 1-4 were written before the audit key existed and follow the unkeyed "
            "SHA-256 rule, entries 5-6 are keyed (HMAC-SHA256)") in done.stdout


@pytest.mark.parametrize(
    ("attack", "expected"),
    [
        # Rewrite an old entry and rehash the old part: the first keyed entry's link breaks.
        ("legacy-rewrite", "tampered at entry 5: link to the previous entry is broken"),
        # Rewrite everything under the old rule and move the boundary past the end.
        ("boundary-moved", "keyed entries begin (audit_meta keyed_from) was altered"),
        # ... or remove the boundary altogether.
        ("boundary-removed", "keyed entries begin (audit_meta keyed_from) was removed"),
    ],
)
def test_the_boundary_of_the_keyed_entries_cannot_be_moved(
    tmp_path: Path, attack: str, expected: str
) -> None:
    settings = _legacy_log(tmp_path, 4)
    store = SecurityTables.open_in(settings.data_dir)
    try:
        _append(AuditWriter(store, FakeClock()), 2)
    finally:
        store.close()
    if attack == "legacy-rewrite":
        conn = _open_for_tampering(settings)
        rows = [dict(r) for r in conn.execute("SELECT * FROM audit WHERE id <= 4 ORDER BY id")]
        conn.execute("DELETE FROM audit WHERE id <= 4")
        prev = GENESIS
        for row in rows:
            row["actor"] = "innocent" if row["id"] == 2 else row["actor"]
            row["prev_hash"] = prev
            row["hash"] = prev = entry_hash(*(row[c] for c in COLUMNS))
            conn.execute("INSERT INTO audit (" + ", ".join((*COLUMNS, "hash")) + ") VALUES ("
                         + ", ".join("?" * (len(COLUMNS) + 1)) + ")",
                         [row[c] for c in (*COLUMNS, "hash")])
        conn.commit()
        conn.close()
    else:
        rewrite_chain(settings, actor_of=5, key=None)
        conn = _open_for_tampering(settings)
        if attack == "boundary-moved":
            conn.execute("UPDATE audit_meta SET value = ? WHERE name = 'keyed_from'",
                         (f"100:{secrets.token_hex(32)}",))
        else:
            conn.execute("DELETE FROM audit_meta")
        conn.commit()
        conn.close()
    done = audit_verify(settings)
    assert done.returncode == 1, done.stdout
    assert expected in done.stdout


# -- signed checkpoints -----------------------------------------------------------------------


async def _checkpointed(tmp_path: Path) -> tuple[Settings, list[dict[str, object]]]:
    """Six entries with two checkpoints: one written by the running task after three entries,
    one at close."""
    settings = security_settings(tmp_path)
    store = SecurityTables.open_in(settings.data_dir)
    try:
        audit = AuditWriter(store, FakeClock())
        checkpoints = await AuditCheckpoints.start(audit, settings.data_dir, every_entries=3,
                                                   every_seconds=3600)
        path = settings.data_dir / CHECKPOINT_FILE
        _append(audit, 3)
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        _append(audit, 3, start=3)
        await checkpoints.aclose()
        await checkpoints.aclose()  # idempotent: no third line
    finally:
        store.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return settings, lines


async def test_checkpoints_are_written_periodically_and_at_stop(tmp_path: Path) -> None:
    settings, lines = await _checkpointed(tmp_path)
    assert [line["entry_id"] for line in lines] == [3, 6]
    path = settings.data_dir / CHECKPOINT_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    done = await asyncio.to_thread(audit_verify, settings)
    assert done.returncode == 0, done.stdout
    assert "audit checkpoints intact: 2 checked, the latest at entry 6" in done.stdout


async def test_checkpoints_follow_the_time_limit(tmp_path: Path) -> None:
    settings = security_settings(tmp_path)
    store = SecurityTables.open_in(settings.data_dir)
    try:
        audit = AuditWriter(store, FakeClock())
        async with AuditCheckpoints(audit, settings.data_dir, Ed25519PrivateKey.generate(),
                                    every_entries=1000, every_seconds=0.1):
            _append(audit, 1)
            path = settings.data_dir / CHECKPOINT_FILE
            deadline = time.monotonic() + 10
            while not path.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert path.exists(), "no checkpoint within the time limit"
    finally:
        store.close()


async def test_a_truncated_log_is_found_by_its_checkpoint(tmp_path: Path) -> None:
    settings, _ = await _checkpointed(tmp_path)
    truncate(settings, keep=4)
    done = await asyncio.to_thread(audit_verify, settings)
    assert done.returncode == 1, done.stdout
    assert "audit log intact: 4 entries" in done.stdout  # the chain alone cannot tell
    assert "audit checkpoint 2 is bad: (entry 6, written " in done.stdout
    assert "entry 6 is missing from the log: it was truncated" in done.stdout


async def test_a_rewrite_with_the_stolen_key_is_found_by_its_checkpoint(tmp_path: Path) -> None:
    settings, _ = await _checkpointed(tmp_path)
    rewrite_chain(settings, actor_of=2, key=load_audit_key(settings.data_dir))
    done = await asyncio.to_thread(audit_verify, settings)
    assert done.returncode == 1, done.stdout
    assert "audit log intact: 6 entries" in done.stdout  # the key holder fooled the chain
    assert "audit checkpoint 1 is bad: (entry 3, written " in done.stdout
    assert "entry 3 no longer has the hash this checkpoint signed" in done.stdout


@pytest.mark.parametrize("forgery", ["other-key", "altered"])
async def test_a_forged_checkpoint_is_found(tmp_path: Path, forgery: str) -> None:
    settings, lines = await _checkpointed(tmp_path)
    path = settings.data_dir / CHECKPOINT_FILE
    if forgery == "other-key":
        line = Checkpoint(6, str(lines[1]["hash"]), 1).signed_line(Ed25519PrivateKey.generate())
        path.write_bytes(path.read_bytes() + line)
        expected = "audit checkpoint 3 is bad: (entry 6, written 1970-01-01T00:00:00.001Z) was " \
                   "signed by another key"
    else:
        altered = dict(lines[0], entry_id=2)
        path.write_text(json.dumps(altered) + "\n" + json.dumps(lines[1]) + "\n")
        expected = "audit checkpoint 1 is bad: (entry 2, written "
    done = await asyncio.to_thread(audit_verify, settings)
    assert done.returncode == 1, done.stdout
    assert expected in done.stdout
    if forgery == "altered":
        assert "the signature does not match: the line was altered" in done.stdout


# -- private data files -----------------------------------------------------------------------


def _modes(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): stat.S_IMODE(path.stat().st_mode)
            for path in [folder, *folder.rglob("*")]}


def test_the_server_keeps_its_data_private_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)  # an existing install, open to everyone
    config = tmp_path / "server.yaml"
    config.write_text(f"data_dir: {data}\nsecurity:\n  audit_checkpoint_seconds: 0.2\n")
    with serve(config, _env(), umask=0o022) as run:
        running = _modes(data)  # -wal and -shm files exist while the stores are open
    stderr = run.stderr
    assert f"{data} was open to other users (mode 755); set it to 700" in stderr
    stopped = _modes(data)
    for modes in (running, stopped):
        folders = {name: mode for name, mode in modes.items() if (data / name).is_dir()}
        files = {name: mode for name, mode in modes.items() if name not in folders}
        assert set(folders.values()) == {0o700}, folders
        assert set(files.values()) == {0o600}, files
    assert any(name.endswith("-wal") for name in running), running
    for name in ("security.sqlite3", "rtcc.sqlite3", "evidence.sqlite3", "secret.key",
                 "audit.key", "audit-signing-key.pem", CHECKPOINT_FILE,
                 "evidence/signing-key.pem"):
        assert name in stopped, name
    done = audit_verify(Settings(data_dir=data))
    assert done.returncode == 0, done.stdout
    assert "audit checkpoints intact" in done.stdout


def test_a_removed_boundary_is_not_recorded_again_at_the_next_start(tmp_path: Path) -> None:
    settings = _filled(tmp_path)
    conn = _open_for_tampering(settings)
    conn.execute("DELETE FROM audit_meta")
    conn.commit()
    conn.close()
    store = SecurityTables.open_in(settings.data_dir)
    try:
        _append(AuditWriter(store, FakeClock()), 1, start=6)  # the server starts again
    finally:
        store.close()
    done = audit_verify(settings)
    assert done.returncode == 1, done.stdout
    assert "keyed entries begin (audit_meta keyed_from) was removed" in done.stdout


async def test_a_log_rewritten_under_the_old_rule_is_found_by_its_checkpoints(
    tmp_path: Path
) -> None:
    """Remove the boundary, rewrite every entry with plain SHA-256 and let the server start
    again (it records a new boundary after the rewritten entries): the checkpoints tell."""
    settings, _ = await _checkpointed(tmp_path)
    conn = _open_for_tampering(settings)
    conn.execute("DELETE FROM audit_meta")
    conn.commit()
    conn.close()
    rewrite_chain(settings, delete=1, key=None)  # every entry rehashed
    store = SecurityTables.open_in(settings.data_dir)
    try:
        _append(AuditWriter(store, FakeClock()), 1, start=6)
    finally:
        store.close()
    done = await asyncio.to_thread(audit_verify, settings)
    assert done.returncode == 1, done.stdout
    assert "audit log intact: 6 entries" in done.stdout
    assert "entries 1-5 were written before the audit key existed" in done.stdout
    assert "audit checkpoint 1 is bad: (entry 3, written " in done.stdout
