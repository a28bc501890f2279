"""A separate process appending to the audit log, for the test of concurrent writers.

``python -m tests.security.audit_appender DATABASE_URL DATA_DIR WORKER COUNT GO_FILE``: opens
the security tables (SQLite files in DATA_DIR when DATABASE_URL is empty), waits until GO_FILE
exists so that every worker starts appending at once, then appends COUNT entries whose actor is
``WORKER`` and whose details number them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from security.audit import AuditWriter
from security.secretbox import load_audit_key
from tests.security.engines import engine_settings, open_tables

GO_DEADLINE_S = 60.0


def main(argv: list[str]) -> int:
    url, data_dir, worker, count, go_file = argv
    settings = engine_settings(Path(data_dir), url)
    with open_tables(settings) as store:
        writer = AuditWriter(store, time.time, load_audit_key(settings.data_dir, create=False))
        deadline = time.monotonic() + GO_DEADLINE_S
        while not Path(go_file).exists():
            if time.monotonic() > deadline:
                print(f"worker {worker}: {go_file} never appeared", file=sys.stderr)
                return 2
            time.sleep(0.01)
        for number in range(int(count)):
            writer.append(actor=worker, role="analyst", action="view.start",
                          camera_id="cam1", details={"n": number})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
