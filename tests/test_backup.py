"""`rtcc backup` of a running server and `rtcc restore` into a new data directory, run as real
subprocesses: the restored audit log verifies, an export made afterwards verifies, a tampered
backup is refused naming the file, and a data directory in use or not empty is left alone."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

from evidence.store import EvidenceStore
from rtcc.files import private_dir
from security.audit import AuditWriter
from security.store import SecurityTables
from tests.evidence.helpers import frames_from, make_h264, write_segments
from tests.fixtures.auth import FakeClock
from tests.fixtures.server_process import serve

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("RTCC_AUDIT_KEY", "RTCC_SECRET_KEY")}


def rtcc(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", *args], capture_output=True,
                          text=True, timeout=timeout, check=False, cwd=ROOT, env=_env())


def _config(folder: Path, data: Path) -> Path:
    path = folder / f"{data.name}.yaml"
    path.write_text(f"data_dir: {data}\nsecurity:\n  audit_checkpoint_seconds: 0.2\n")
    return path


def _record(data: Path, work: Path, camera_id: str = "cam1") -> list[int]:
    """Recorded segments written as the recorder writes them."""
    private_dir(data)
    store = EvidenceStore.open_in(data)
    try:
        units = make_h264(work, 4.0)
        frames = frames_from(units, time.time() - 60)
        return write_segments(store, data / "evidence", camera_id, frames, 2.0)
    finally:
        store.close()


def _small_data_dir(tmp_path: Path) -> Path:
    """A data directory with an audit log and an evidence store, no server run."""
    data = tmp_path / "data"
    private_dir(data)
    store = SecurityTables.open_in(data)
    try:
        writer = AuditWriter(store, FakeClock(1_700_000_000.0))
        for i in range(3):
            writer.append(actor=f"user{i}", role="analyst", action="login")
    finally:
        store.close()
    EvidenceStore.open_in(data).close()
    return data


def _modes(folder: Path) -> set[int]:
    return {stat.S_IMODE(path.stat().st_mode) for path in folder.rglob("*")}


def test_a_backup_of_a_running_server_restores_and_verifies(tmp_path: Path) -> None:
    data = tmp_path / "data"
    segment_ids = _record(data, tmp_path)
    config = _config(tmp_path, data)
    backup = tmp_path / "backup"
    with serve(config, _env()):
        done = rtcc("backup", "--config", str(config), "--to", str(backup))
        assert done.returncode == 0, done.stdout + done.stderr
        # The running server's data directory is never overwritten, even with --force.
        refused = rtcc("restore", "--config", str(config), "--from", str(backup), "--force")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert f"{data} is in use" in refused.stdout

    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    assert _modes(backup) <= {0o600, 0o700}
    manifest = json.loads((backup / "manifest.json").read_text())
    names = {entry["path"] for entry in manifest["files"]}
    assert {"security.sqlite3", "evidence.sqlite3", "rtcc.sqlite3", "secret.key", "audit.key",
            "audit-signing-key.pem", "evidence/signing-key.pem",
            "audit-checkpoints.jsonl"} <= names
    assert not any(name.endswith(("-wal", "-shm")) for name in names)
    assert len(manifest["recordings"]) == len(segment_ids) >= 2
    assert manifest["server_version"]
    assert manifest["created"]

    restored = tmp_path / "restored"
    config2 = _config(tmp_path, restored)
    first = rtcc("restore", "--config", str(config2), "--from", str(backup))
    # The recordings were referenced, not copied: the restore names each one as missing.
    assert first.returncode == 1, first.stdout + first.stderr
    assert "audit log intact" in first.stdout
    assert f"recordings: 0 of {len(segment_ids)} present and unchanged" in first.stdout
    missing = manifest["recordings"][0]["path"]
    assert f"missing: {missing}" in first.stdout

    # The evidence disk survived: put the recordings back and restore again over the first try.
    shutil.copytree(data / "evidence" / "recordings", restored / "evidence" / "recordings")
    second = rtcc("restore", "--config", str(config2), "--from", str(backup), "--force")
    assert second.returncode == 0, second.stdout + second.stderr
    assert (f"recordings: {len(segment_ids)} of {len(segment_ids)} present and unchanged"
            in second.stdout)
    assert _modes(restored) <= {0o600, 0o700}

    verified = rtcc("audit", "verify", "--config", str(config2))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit checkpoints intact" in verified.stdout

    start = manifest["recordings"][0]
    package = tmp_path / "after-restore.tar"
    rows = EvidenceStore.open_in(restored)
    try:
        segments = rows.fetchall("SELECT utc_start, utc_end FROM segments ORDER BY id")
    finally:
        rows.close()
    exported = rtcc("export", "--config", str(config2), "--camera", start["camera_id"],
                    "--from", str(segments[0]["utc_start"]), "--to",
                    str(segments[-1]["utc_end"]), "--case", "2026-0042", "--out", str(package))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    checked = rtcc("verify", str(package), "--config", str(config2))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_tampered_backup_is_refused_naming_the_file(tmp_path: Path) -> None:
    data = _small_data_dir(tmp_path)
    config = _config(tmp_path, data)
    backup = tmp_path / "backup"
    done = rtcc("backup", "--config", str(config), "--to", str(backup))
    assert done.returncode == 0, done.stdout + done.stderr
    key = backup / "audit.key"
    blob = bytearray(key.read_bytes())
    blob[0] ^= 0x01
    key.write_bytes(bytes(blob))

    target = tmp_path / "restored"
    refused = rtcc("restore", "--config", str(_config(tmp_path, target)), "--from", str(backup))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "audit.key does not match its SHA-256 in the manifest" in refused.stdout
    assert not target.exists()  # nothing was written


def test_restore_refuses_a_non_empty_data_dir_without_force(tmp_path: Path) -> None:
    data = _small_data_dir(tmp_path)
    backup = tmp_path / "backup"
    done = rtcc("backup", "--config", str(_config(tmp_path, data)), "--to", str(backup))
    assert done.returncode == 0, done.stdout + done.stderr

    target = tmp_path / "other"
    private_dir(target)
    (target / "notes.txt").write_text("kept")
    config = _config(tmp_path, target)
    refused = rtcc("restore", "--config", str(config), "--from", str(backup))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "is not empty" in refused.stdout
    assert "--force" in refused.stdout
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]

    forced = rtcc("restore", "--config", str(config), "--from", str(backup), "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    # Three logins and the backup's own entry; the restore is recorded after the check.
    assert "audit log intact: 4 entries" in forced.stdout
    store = SecurityTables.open_in(target)
    try:
        actions = [str(row[0]) for row in store.conn.fetchall(
            "SELECT action FROM audit ORDER BY id")]
    finally:
        store.close()
    assert actions[-2:] == ["backup.create", "backup.restore"]
    assert (target / "security.sqlite3").exists()
    assert (target / "notes.txt").exists()


def test_a_backup_into_a_non_empty_folder_is_refused(tmp_path: Path) -> None:
    data = _small_data_dir(tmp_path)
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "old").write_text("x")
    done = rtcc("backup", "--config", str(_config(tmp_path, data)), "--to", str(backup))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is not empty" in done.stdout
