"""A view cut by a crash gets its ``view.stop`` when the server starts again: a process opens a
view through the media access contract and is SIGKILLed; the real server started on the same
data directory closes that view in the audit log, and the log still verifies."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from security.audit import AuditWriter
from security.recovery import CRASH_REASON, UNCLOSED_REASON, close_cut_views
from security.store import SecurityTables
from tests.fixtures.auth import FakeClock
from tests.fixtures.server_process import serve

ROOT = Path(__file__).resolve().parents[2]

# Runs the security core as the server does, opens one view through MediaAccess.open_view as the
# bootstrap administrator, prints its id and waits to be killed.
VIEWER = """
import asyncio, sys
from pathlib import Path
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from rtcc.appkeys import MEDIA_ACCESS
from rtcc.config import SecurityConfig, Settings, SharingLevel
from rtcc.principal import PRINCIPAL
from security.core import SECURITY
from tests.security.harness import Directory, security_app

async def main() -> None:
    settings = Settings(data_dir=Path(sys.argv[1]), security=SecurityConfig(require_totp=False))
    directory = Directory()
    directory.add("cam1", SharingLevel.LIVE_ALWAYS)
    app = security_app(settings, directory=directory)
    runner = web.AppRunner(app)
    await runner.setup()
    principal = await app[SECURITY].tokens.resolve(sys.argv[2])
    assert principal is not None
    request = make_mocked_request("GET", "/view?purpose=case+2026-7", app=app)
    request[PRINCIPAL] = principal
    grant = await app[MEDIA_ACCESS].open_view(request, "cam1", "main")
    print("VIEW", grant.view_id, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _env(token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RTCC_AUDIT_KEY", "RTCC_SECRET_KEY", "RTCC_BOOTSTRAP_TOKEN")}
    env["RTCC_BOOTSTRAP_TOKEN"] = token
    return env


def _entries(data: Path, action: str) -> list[dict[str, object]]:
    store = SecurityTables.open_in(data)
    try:
        return [dict(zip(row.keys(), row, strict=True)) for row in store.conn.fetchall(
            "SELECT * FROM audit WHERE action = ? ORDER BY id", (action,))]
    finally:
        store.close()


def _start_and_stop_server(data: Path, env: dict[str, str]) -> None:
    config = data.parent / "server.yaml"
    config.write_text(f"data_dir: {data}\n")
    with serve(config, env):
        pass


def test_a_view_cut_by_sigkill_is_closed_when_the_server_starts_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = _env(secrets.token_hex(32))
    viewer = subprocess.Popen([sys.executable, "-c", VIEWER, str(data),
                               env["RTCC_BOOTSTRAP_TOKEN"]],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)
    try:
        assert viewer.stdout is not None
        line = viewer.stdout.readline()
        assert line.startswith("VIEW "), (line, viewer.poll())
        view_id = line.split()[1]
    finally:
        viewer.send_signal(signal.SIGKILL)
        viewer.communicate(timeout=30)
    assert viewer.returncode == -signal.SIGKILL
    target = f"view:{view_id}"
    assert [e["target"] for e in _entries(data, "view.start")] == [target]
    assert _entries(data, "view.stop") == []

    _start_and_stop_server(data, env)
    stops = _entries(data, "view.stop")
    assert [e["target"] for e in stops] == [target]
    stop = stops[0]
    start = _entries(data, "view.start")[0]
    details = json.loads(str(stop["details"]))
    assert details["reason"] == CRASH_REASON
    assert details["duration_s"] is None
    assert details["purpose"] == "case 2026-7"
    assert details["grant"] == json.loads(str(start["details"]))["grant"]["id"]
    assert (stop["actor"], stop["camera_id"], stop["owner_id"]) == (
        start["actor"], "cam1", "shop1")
    # Written before this run's server.start, so the next start does not close it again.
    server_starts = [int(str(e["id"])) for e in _entries(data, "server.start")]
    assert server_starts[-2] < int(str(stop["id"])) < server_starts[-1]

    _start_and_stop_server(data, env)
    assert len(_entries(data, "view.stop")) == 1
    verified = subprocess.run(
        [sys.executable, "-m", "server", "audit", "verify", "--config",
         str(tmp_path / "server.yaml")],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT, env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_only_the_previous_runs_unmatched_views_are_closed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = SecurityTables.open_in(data)
    try:
        writer = AuditWriter(store, FakeClock(1_700_000_000.0))

        def view(action: str, number: int, outcome: str = "ok") -> None:
            writer.append(actor="ana", role="analyst", action=action, target=f"view:{number}",
                          camera_id="cam1", outcome=outcome,
                          details={"profile": "sub", "purpose": f"case {number}",
                                   "grant": {"id": f"sharing:cam{number}"}})

        writer.append(actor="system", role="", action="server.start")
        view("view.start", 1)  # cut by a crash two runs ago: that run's start handled it
        writer.append(actor="system", role="", action="server.start")
        view("view.start", 2)
        view("view.stop", 2)
        view("view.start", 3)
        view("view.start", 4, outcome="denied")
        writer.append(actor="system", role="", action="server.stop")
        written = close_cut_views(writer)
        assert [(e.target, json.loads(e.details)["reason"]) for e in written] == [
            ("view:3", UNCLOSED_REASON)]
        assert json.loads(written[0].details)["grant"] == "sharing:cam3"
        assert close_cut_views(writer) == []  # matched now
    finally:
        store.close()
    assert CRASH_REASON != UNCLOSED_REASON
