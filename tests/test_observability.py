"""Metrics of every subsystem, the Grafana dashboard built on them, and JSON log lines."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from pathlib import Path

from rtcc.logs import JsonFormatter
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, security_settings
from tests.fixtures.server_process import serve

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"


async def _families(make_client: MakeClient, tmp_path: Path, token: str) -> set[str]:
    client = await make_client(create_app(security_settings(tmp_path)))
    response = await client.get("/metrics", headers=bearer(token))
    assert response.status == 200
    text = await response.text()
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


async def test_metrics_cover_every_subsystem(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    families = await _families(make_client, tmp_path, bootstrap_token)
    for expected in ("rtcc_stream_state", "rtcc_stream_bytes_total",  # ingest per camera
                     "rtcc_relay_viewers", "rtcc_relay_stream_bytes",  # relay
                     "rtcc_grants_open_views", "rtcc_agents_connected",
                     "rtcc_database_up", "rtcc_database_pool_connections",
                     "rtcc_event_loop_lag_seconds", "rtcc_admission_refused_total"):
        assert expected in families


async def test_dashboard_uses_only_metrics_the_server_exports(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    families = await _families(make_client, tmp_path, bootstrap_token)
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in expressions for name in re.findall(r"\brtcc_[a-z0-9_]+", expr)}
    assert len(used) > 15
    assert used - families == set(), "dashboard metrics the server does not export"
    # Every subsystem has a panel.
    for prefix in ("rtcc_stream_", "rtcc_relay_", "rtcc_grants_", "rtcc_database_"):
        assert any(name.startswith(prefix) for name in used), prefix


def test_json_lines_carry_the_extra_fields() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("rtcc.test.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("camera %s lost", "cam1", extra={"camera": "cam1", "attempt": 3,
                                                     "path": Path("/x")})
    finally:
        log.removeHandler(handler)
    entry = json.loads(out.getvalue())
    assert entry["level"] == "warning"
    assert entry["logger"] == "rtcc.test.json"
    assert entry["message"] == "camera cam1 lost"
    assert entry["time"].endswith("Z")
    assert (entry["camera"], entry["attempt"], entry["path"]) == ("cam1", 3, "/x")


def test_the_server_logs_json_lines_when_configured(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "server.yaml"
    config.write_text(f"data_dir: {data}\nlog_format: json\n")
    env = {k: v for k, v in os.environ.items() if k not in ("RTCC_AUDIT_KEY", "RTCC_SECRET_KEY")}
    with serve(config, env) as run:
        pass
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) >= 3
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(entry), line
