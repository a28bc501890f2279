"""The camera program in numbers: counted from the catalog and the audit log, never placed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rtcc.appkeys import AUDIT, CLOCK
from rtcc.config import CameraConfig, CameraKind, SecurityConfig, Settings, SharingLevel
from rtcc.transparency_config import District, TransparencyConfig
from server.app import create_app
from tests.fixtures.auth import MakeClient
from transparency.keys import TRANSPARENCY

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
NORTH = District(name="North", polygon=[(39.80, -89.70), (39.80, -89.60), (39.90, -89.60),
                                        (39.90, -89.70)])


def _camera(n: int, lat: float, sharing: SharingLevel, kind: CameraKind) -> CameraConfig:
    return CameraConfig(id=f"cam{n}", name=f"Camera {n}", lat=lat, lon=-89.6543, kind=kind,
                        sharing=sharing)


async def test_cameras_and_use_are_counted_never_located(tmp_path: Path,
                                                         make_client: MakeClient) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", security=SecurityConfig(),
        transparency=TransparencyConfig(districts=[NORTH]),
        cameras=[_camera(1, 39.8512, SharingLevel.LIVE_EMERGENCY, CameraKind.RESIDENTIAL),
                 _camera(2, 39.8513, SharingLevel.ON_REQUEST, CameraKind.BUSINESS),
                 _camera(3, 39.7514, SharingLevel.ON_REQUEST, CameraKind.BUSINESS)])
    app = create_app(settings)
    app[CLOCK] = NOW.timestamp
    client = await make_client(app)
    audit = app[AUDIT]
    for action, outcome in (("view.start", "ok"), ("view.start", "ok"),
                            ("view.start", "denied"), ("footage_request.create", "ok"),
                            ("footage_request.create", "ok"), ("footage_request.approve", "ok")):
        await audit.append(actor="analyst1", role="analyst", action=action, camera_id="cam1",
                           outcome=outcome)
    await app[TRANSPARENCY].refresh()

    answer = await client.get("/public/api/v1/program.json")
    assert answer.status == 200
    text = await answer.text()
    for secret in ("39.851", "39.751", "cam1", "analyst1", "Camera 1"):
        assert secret not in text
    program = await answer.json()
    assert program["cameras_total"] == 3
    assert program["by_sharing"] == {"registry_only": 0, "on_request": 2, "live_emergency": 1,
                                     "live_always": 0}
    assert {(c["district"], c["sharing"], c["cameras"]) for c in program["by_district"]} == {
        ("North", "live_emergency", 1), ("North", "on_request", 1),
        ("Outside the districts", "on_request", 1)}
    assert program["activity"] == [{"month": "2026-11", "footage_requests_made": 2,
                                    "footage_requests_approved": 1, "live_views_opened": 2}]
