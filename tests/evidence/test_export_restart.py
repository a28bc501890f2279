"""A server killed (SIGKILL) in the middle of an investigator's export, then started again: the
job reads ``failed`` with the reason and keeps the packages it had finished, no half-written
package is offered, and the same export made again succeeds and its package verifies.

A real ``rtcc serve`` subprocess over segments written as the recorder writes them."""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from evidence import verify_main
from evidence.export_jobs import INTERRUPTED
from evidence.store import EvidenceStore
from rtcc.files import private_dir
from tests.evidence.helpers import frames_from, make_h264, run_text, write_segments
from tests.fixtures.server_process import serve

CAMERAS = ("north", "south", "east", "west")
SECONDS = 40.0


def _env(token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RTCC_AUDIT_KEY", "RTCC_SECRET_KEY", "RTCC_BOOTSTRAP_TOKEN")}
    env["RTCC_BOOTSTRAP_TOKEN"] = token
    return env


def _call(url: str, token: str, method: str = "GET", body: dict[str, Any] | None = None
          ) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _until(url: str, token: str, ready: Any, what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        status, job = _call(url, token)
        assert status == 200, job
        if ready(job):
            return job
        assert time.monotonic() < deadline, f"timed out waiting for {what}; last: {job}"
        time.sleep(0.02)


def test_a_job_cut_by_a_kill_reads_failed_and_the_export_made_again_verifies(
    tmp_path: Path
) -> None:
    data = tmp_path / "data"
    private_dir(data)
    units = make_h264(tmp_path, SECONDS, size="640x360")
    start = time.time() - 600
    store = EvidenceStore.open_in(data)
    try:
        for camera in CAMERAS:
            write_segments(store, data / "evidence", camera, frames_from(units, start), 4.0)
    finally:
        store.close()
    config = tmp_path / "server.yaml"
    config.write_text(json.dumps({
        "data_dir": str(data), "log_level": "warning",
        "cameras": [{"id": camera, "name": f"Camera {camera}", "lat": 39.8, "lon": -89.6,
                     "profiles": {"main": {"url": f"rtsp://127.0.0.1:9/{camera}"}}}
                    for camera in CAMERAS]}))
    token = secrets.token_hex(32)
    asked = {"cameras": list(CAMERAS), "from": start, "to": start + SECONDS, "case": "2024-0777",
             "reason": "a robbery"}

    with serve(config, _env(token)) as run:
        status, started = _call(f"{run.url}/api/investigate/exports", token, "POST", asked)
        assert status == 202, started
        job_url = f"{run.url}/api/investigate/exports/{started['job']}"
        # Killed once the first camera's package is made, while the others are still built.
        before = _until(job_url, token, lambda job: job["results"] or job["state"] != "running",
                        "the first package")
        run.kill()
    assert before["state"] == "running", "the export ended before the kill; make it longer"
    made_before = {result["export_id"] for result in before["results"]}
    assert len(made_before) == 1

    with serve(config, _env(token)) as run:
        status, job = _call(job_url.replace(job_url.split("/api/")[0], run.url), token)
        assert status == 200, job
        assert job["state"] == "failed"
        assert job["error"] == INTERRUPTED
        kept = {result["export_id"] for result in job["results"]}
        assert made_before <= kept  # the packages made before the kill stay named
        assert all("download" not in result for result in job["results"])  # tokens: shown once
        assert not list((data / "evidence" / "exports").glob("*.part"))
        assert not list((data / "evidence" / "tmp").glob("export-*"))

        status, again = _call(f"{run.url}/api/investigate/exports", token, "POST", asked)
        assert status == 202, again
        done = _until(f"{run.url}/api/investigate/exports/{again['job']}", token,
                      lambda job: job["state"] != "running", "the export made again", 300.0)
        assert done["state"] == "done", done
        assert len(done["results"]) == len(CAMERAS)
        status, key = _call(f"{run.url}/api/evidence/public-key", token)
        trusted = tmp_path / "department.pem"
        trusted.write_text(key["pem"])
        first = done["results"][0]
        request = urllib.request.Request(f"{run.url}{first['download']}",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            package = tmp_path / "again.tar"
            package.write_bytes(response.read())
        assert package.stat().st_size == first["bytes"]
        code, text = run_text(verify_main, package, key_path=trusted)
        assert code == 0, text
