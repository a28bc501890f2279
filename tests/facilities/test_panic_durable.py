"""An alert the server answered survives the server being killed at once (SIGKILL, no clean
stop): after a restart it is there, on the console's list, its incident opened. A revoked
device is refused by the restarted server too."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from facilities.store import FacilityStore
from rtcc.db import Database
from tests.fixtures.auth import BOOTSTRAP_TOKEN
from tests.fixtures.server_process import ROOT


@contextmanager
def _server(config: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = {**os.environ, "RTCC_BOOTSTRAP_TOKEN": BOOTSTRAP_TOKEN}
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--config", str(config), "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while "listening on" not in line and time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line or process.poll() is None, "the server exited before listening"
        found = re.search(r"listening on (\S+)", line)
        assert found, line
        yield process, found.group(1).rstrip("/")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=60)


def _call(method: str, url: str, body: dict[str, Any] | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, method=method, headers={
        "Content-Type": "application/json", **(headers or {})},
        data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def _seed(data: Path) -> str:
    """A facility with a one-time enrolment code, written as the owner's portal writes it."""
    database = Database.embedded(data)
    store = FacilityStore(database, time.time)
    try:
        store._open_tables()  # noqa: SLF001 -- this test owns the thread it runs on
        facility = store.create_facility("shop1", "site1", "Lincoln Elementary", "school",
                                         "1 School Rd", 39.8, -89.645, "alert")
        return store.add_enrolment(facility.id, "Front office", "", 3600)
    finally:
        store._release()  # noqa: SLF001
        database.close()


def test_an_answered_alert_survives_a_killed_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "rtcc.yaml"
    config.write_text(f"data_dir: {data}\n")
    admin = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
    with _server(config) as (process, base):
        secret = _seed(data)
        status, device = _call("POST", f"{base}/panic/api/enrol", {"secret": secret})
        assert status == 201, device
        token = {"X-Device-Token": device["device_token"]}
        status, raised = _call("POST", f"{base}/panic/api/alerts",
                               {"id": "kill-0001-aaaa", "level": "active_threat"}, token)
        process.kill()  # the moment the answer arrived: no clean stop, no flush
        process.wait(timeout=30)
    assert status == 201, raised
    alert_id = raised["alert"]["id"]

    with _server(config) as (_, base):
        status, listed = _call("GET", f"{base}/api/panic/alerts", headers=admin)
        assert status == 200, listed
        (alert,) = [a for a in listed["alerts"] if a["id"] == alert_id]
        assert alert["state"] == "triggered"
        assert "incident.opened" in [e["step"] for e in alert["timeline"]]
        status, replay = _call("POST", f"{base}/panic/api/alerts",
                               {"id": "kill-0001-aaaa", "level": "active_threat"}, token)
        assert status == 200, replay
        assert replay["alert"]["id"] == alert_id
        status, devices = _call("GET", f"{base}/api/facilities/{alert['facility_id']}/devices",
                                headers=admin)
        assert status == 200, devices
        status, _ = _call("POST", f"{base}/api/facilities/{alert['facility_id']}/devices/"
                                  f"{device['device_id']}/revoke", {}, admin)
        assert status == 200
        status, refused = _call("POST", f"{base}/panic/api/alerts",
                                {"id": "kill-0002-aaaa", "level": "medical"}, token)
        assert status == 403
        assert "revoked" in refused["error"]
