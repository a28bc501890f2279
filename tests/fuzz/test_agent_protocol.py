"""Messages from an owner's agent fed arbitrary JSON: parsed reports or ProtocolError."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from rtcc import agent_protocol as proto
from rtcc.agent_protocol import CameraReport, FootageOrder, ProtocolError

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
              st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)
GOOD_CAMERA = {"key": "onvif:192.0.2.10", "name": "Front door", "source": "onvif",
               "status": "ok", "profiles": [{"name": "main", "codec": "h264", "width": 1920,
                                             "height": 1080}]}


@st.composite
def camera_like(draw: st.DrawFn) -> dict[str, Any]:
    camera: dict[str, Any] = dict(GOOD_CAMERA)
    for key in draw(st.lists(st.sampled_from([*GOOD_CAMERA, "error", "extra"]), max_size=3)):
        camera[key] = draw(json_values)
    return camera


@given(st.one_of(st.text(max_size=200), json_values.map(json.dumps)))
@example("[" * 100_000 + "]" * 100_000)
@example('{"type": ' + "[" * 50_000 + "]" * 50_000 + "}")
@example('{"type": "hello"}')
def test_decode_returns_an_object_or_protocol_error(text: str) -> None:
    try:
        message = proto.decode(text)
    except ProtocolError:
        return
    assert isinstance(message, dict)
    assert isinstance(message["type"], str)


@given(st.one_of(json_values, camera_like()))
@example(GOOD_CAMERA)
@example({**GOOD_CAMERA, "profiles": [{"name": "main"}, {"name": "main"}]})
def test_camera_reports_parse_or_raise_protocol_error(data: Any) -> None:
    try:
        report = CameraReport.from_json(data)
    except ProtocolError:
        return
    assert isinstance(report, CameraReport)
    assert CameraReport.from_json(report.to_json()) == report


@given(st.one_of(json_values, st.lists(camera_like(), max_size=3)))
def test_inventories_parse_or_raise_protocol_error(cameras: Any) -> None:
    try:
        reports, problems = proto.parse_inventory({"type": "inventory", "cameras": cameras})
    except ProtocolError:
        return
    assert all(isinstance(report, CameraReport) for report in reports)
    assert all(isinstance(problem, str) for problem in problems)


@given(st.dictionaries(st.sampled_from(["request_id", "camera_id", "start", "end", "profile",
                                        "upload_url", "type"]), json_values, max_size=7))
def test_footage_orders_parse_or_raise_protocol_error(data: dict[str, Any]) -> None:
    try:
        order = FootageOrder.from_json(data)
    except ProtocolError:
        return
    assert isinstance(order, FootageOrder)
    assert order.end > order.start


@given(json_values)
def test_field_checks_raise_protocol_error(value: Any) -> None:
    for check in (proto.camera_key, proto.profile_name,
                  lambda v: proto.server_id(v, "camera_id"),
                  lambda v: proto.text_field({"x": v}, "x"),
                  lambda v: proto.number_field({"x": v}, "x", low=0, high=10)):
        try:
            check(value)
        except ProtocolError:
            continue
