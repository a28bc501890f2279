"""Several processes appending to one audit log at once keep a single unbroken chain, on SQLite
and on PostgreSQL: each append reads the head inside a transaction that admits one writer of the
store at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from security.audit import AuditWriter, verify_chain
from tests.security.engines import engine_settings, open_tables

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4
PER_WORKER = 40


def test_appends_from_several_processes_form_one_chain(tmp_path: Path,
                                                       database_url: str) -> None:
    settings = engine_settings(tmp_path / "data", database_url)
    # The schema, the audit key and the keyed boundary exist before the workers start.
    with open_tables(settings) as store:
        AuditWriter(store, lambda: 1_700_000_000.0).append(actor="setup", role="system",
                                                            action="server.start")
    go = tmp_path / "go"
    workers = [subprocess.Popen(
        [sys.executable, "-m", "tests.security.audit_appender", database_url,
         str(settings.data_dir), f"worker{n}", str(PER_WORKER), str(go)],
        cwd=ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for n in range(WORKERS)]
    go.touch()
    for process in workers:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, out + err

    with open_tables(settings) as store:
        result = verify_chain(store)
        rows = store.conn.fetchall("SELECT actor, details FROM audit WHERE actor LIKE 'worker%'"
                                   " ORDER BY id")
    assert result.ok, result.describe()
    assert result.entries == 1 + WORKERS * PER_WORKER
    written = sorted((str(row["actor"]), json.loads(row["details"])["n"]) for row in rows)
    assert written == sorted((f"worker{w}", n) for w in range(WORKERS)
                             for n in range(PER_WORKER))
