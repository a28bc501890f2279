"""Small parts of the agent and of agent ingest, without processes."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import pytest
from aiortc.mediastreams import MediaStreamError

from agent.cameras import device_xaddr, split_credentials
from agent.publisher import FRAME_TICKS, PassthroughTrack
from agent.state import (
    AgentSetupError,
    Credential,
    load_credential,
    normalize_server,
    save_credential,
)
from rtcc import agent_protocol as proto
from rtcc.cameras import camera_id, camera_id_for, is_camera_id
from rtcc.errors import UnsafeUrl
from rtcc.media import EncodedFrame


def _frame(pts: int, keyframe: bool = False, discontinuity: bool = False) -> EncodedFrame:
    return EncodedFrame("h264", b"\x00\x00\x00\x01\x65" if keyframe else b"\x00\x00\x00\x01\x41",
                        pts, keyframe, 0.0, discontinuity)


async def test_passthrough_track_keeps_timestamps_monotonic_across_camera_reconnects() -> None:
    track = PassthroughTrack()
    for frame in (_frame(90_000, True, True), _frame(93_000),
                  _frame(0, True, True), _frame(3_000)):  # the camera reconnected: pts restart
        track.push(frame)
    stamps = [(await track.recv()).pts for _ in range(4)]
    assert stamps == [90_000, 93_000, 93_000 + FRAME_TICKS, 93_000 + FRAME_TICKS + 3_000]


async def test_passthrough_track_drops_until_the_next_keyframe_when_behind() -> None:
    track = PassthroughTrack(maxsize=3)
    track.push(_frame(0, True))
    for n in range(1, 6):
        track.push(_frame(n * 3000))
    track.push(_frame(18_000, True))
    track.push(_frame(21_000))
    packet = await track.recv()
    assert packet.pts == 18_000  # resumed at a keyframe: nothing half-decodable was sent
    assert track.dropped == 6  # the keyframe at 0 and everything after it up to 18 000
    assert (await track.recv()).pts == 21_000
    track.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(track.recv(), 1)


def test_credential_file_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    credential = Credential("https://rtcc.example", "a1", "shop1", "rtcc_secret")
    path = save_credential(state, credential)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert "rtcc_secret" not in repr(credential)
    path.chmod(0o644)
    assert load_credential(state) == credential
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # tightened again
    path.write_text("{not json")
    with pytest.raises(AgentSetupError, match="enroll again"):
        load_credential(state)
    assert load_credential(tmp_path / "nothing") is None


def test_urls_on_the_agent() -> None:
    assert normalize_server("https://rtcc.example/") == "https://rtcc.example"
    with pytest.raises(AgentSetupError):
        normalize_server("ftp://rtcc.example")
    with pytest.raises(AgentSetupError):
        normalize_server("https://user:pw@rtcc.example")
    clean, creds = split_credentials("rtsp://admin:p%40ss@192.0.2.4:554/live")
    assert clean == "rtsp://192.0.2.4:554/live"
    assert creds is not None
    assert (creds.username, creds.password) == ("admin", "p@ss")
    assert device_xaddr("192.0.2.4") == "http://192.0.2.4/onvif/device_service"
    assert device_xaddr("192.0.2.4:8080") == "http://192.0.2.4:8080/onvif/device_service"
    with pytest.raises(UnsafeUrl):
        device_xaddr("http://admin:pw@192.0.2.4/")


def test_inventory_messages_are_validated_field_by_field() -> None:
    good = {"key": "onvif:192.0.2.4:80", "name": "Door\x00", "source": "onvif",
            "profiles": [{"name": "main", "encoding": "H264", "width": 640, "height": 360,
                          "fps": 15}], "status": "ok", "password": "never kept"}
    cameras, problems = proto.parse_inventory({"cameras": [
        good,
        {**good, "key": "two words"},
        {**good, "key": "rtsp:x", "source": "ftp"},
        {**good, "key": "rtsp:y", "profiles": [{"name": "main", "width": -1}]},
        good,
    ]})
    assert [c.key for c in cameras] == ["onvif:192.0.2.4:80"]
    assert cameras[0].name == "Door"
    assert "password" not in json.dumps(cameras[0].to_json())
    assert len(problems) == 4
    with pytest.raises(proto.ProtocolError):
        proto.parse_inventory({"cameras": [good] * (proto.MAX_CAMERAS + 1)})
    with pytest.raises(proto.ProtocolError):
        proto.decode("[1, 2]")


def test_camera_ids_are_stable_and_valid() -> None:
    first = camera_id_for("a0c1d2e3f", "onvif:192.0.2.4:80")
    assert first == camera_id_for("a0c1d2e3f", "onvif:192.0.2.4:80")
    assert first != camera_id_for("a0c1d2e3f", "onvif:192.0.2.5:80")
    from rtcc.config import CameraConfig

    CameraConfig(id=first, name="x", lat=0, lon=0)  # the catalog's id rules accept it
    assert camera_id(first) == first


@pytest.mark.parametrize("value", ["", "Cam1", "-cam", "cam/1", "cam 1", "a" * 65, 7, None])
def test_camera_id_rule_refuses(value: object) -> None:
    assert not is_camera_id(value)
    with pytest.raises(ValueError, match="not a valid camera id"):
        camera_id(value)
