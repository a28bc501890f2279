"""Camera fields and CSV / GeoJSON imports fed arbitrary data: cameras, or FieldError /
ImportRejected saying which row and field."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from catalog.errors import FieldError, ImportRejected
from catalog.io import cameras_from_rows, csv_rows, geojson_rows
from catalog.validate import CAMERA_FIELDS, parse_camera


class _Box:
    """Stands in for the server's secret box: reversible, so a stored password can be read."""

    def encrypt(self, plaintext: str) -> str:
        return "sealed:" + plaintext

    def decrypt(self, token: str) -> str:
        return token.removeprefix("sealed:")


GOOD = {"id": "cam-1", "name": "Main St", "lat": 41.88, "lon": -87.63, "sharing": "live_always",
        "windows": "mon-fri 08:00-18:00", "profiles": {"main": {"url": "rtsp://192.0.2.1/live"}}}
values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
                   st.sampled_from(["mon-fri 08:00-18:00", "sat 25:00-26:00", "x-y", "24:00",
                                    "America/Chicago", "Etc/../../etc/passwd", "rtsp://u:p@h/",
                                    "rtsp://h/?password=x", "yes", "1e999", "nan"]),
                   st.lists(st.text(max_size=5), max_size=3),
                   st.dictionaries(st.sampled_from(["main", "sub", "url", "x", "password"]),
                                   st.text(max_size=10), max_size=3))
fields = st.dictionaries(st.sampled_from([*CAMERA_FIELDS, "status", "bogus"]), values,
                         max_size=8).map(lambda extra: {**GOOD, **extra})


@given(fields)
@example(GOOD)
@example({**GOOD, "windows": [{"days": "mon", "start": "25:00"}]})
@example({**GOOD, "profiles": {"main": {"url": "rtsp://h/", "password": 5}}})
@example({**GOOD, "timezone": "../../etc/localtime"})
def test_camera_fields_give_a_camera_or_field_error(data: dict[str, Any]) -> None:
    try:
        camera = parse_camera(data, _Box())
    except FieldError as exc:
        assert exc.field  # noqa: PT017 -- every refusal names its field
        return
    assert camera.id == data["id"]
    assert -90 <= camera.lat <= 90


header = st.lists(st.sampled_from([*CAMERA_FIELDS, "main_url", "sub_url", "bogus", ""]),
                  min_size=1, max_size=6)
cell = st.one_of(st.text(max_size=12), st.sampled_from(['"a,b"', '"unterminated', "41.5",
                                                        "-200", "cam-2"]))


@st.composite
def csv_documents(draw: st.DrawFn) -> bytes:
    columns = draw(st.one_of(header, st.just(["id", "name", "lat", "lon"])))
    rows = draw(st.lists(st.lists(cell, min_size=len(columns), max_size=len(columns)),
                         max_size=4))
    text = "\n".join(",".join(line) for line in [columns, *rows])
    return draw(st.sampled_from([text.encode(), text.encode("utf-16"),
                                 b"\xef\xbb\xbf" + text.encode()]))


def _import(rows: list[Any], unreadable: list[Any]) -> None:
    try:
        cameras = cameras_from_rows(rows, _Box(), {}, unreadable)
    except ImportRejected as exc:
        assert exc.errors  # noqa: PT017 -- says which rows were refused
        return
    assert len({camera.id for camera in cameras}) == len(cameras)


@given(st.one_of(csv_documents(), st.binary(max_size=200)))
@example(b"id,name,lat,lon\ncam-1,A,41,-87\ncam-1,B,41,-87\n")
@example(b"id,name,lat,lon\n\"cam-1,A")
@example(b"\x00id,name\n")
@example(b"id,name,lat,lon\ncam-1,A\n")
def test_csv_imports_give_cameras_or_say_which_rows_are_wrong(data: bytes) -> None:
    try:
        rows, unreadable = csv_rows(data)
    except FieldError:
        return
    _import(rows, unreadable)


geo_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=10,
)
feature = st.one_of(
    geo_values,
    st.builds(lambda coordinates, properties: {
        "type": "Feature", "geometry": {"type": "Point", "coordinates": coordinates},
        "properties": properties},
        st.one_of(st.lists(st.floats(-200, 200), max_size=4), geo_values),
        st.one_of(st.fixed_dictionaries({"id": st.sampled_from(["cam-1", "cam-2", "Bad Id"]),
                                         "name": st.text(max_size=10)}), geo_values)),
)


@given(st.one_of(st.lists(feature, max_size=4).map(
    lambda items: json.dumps({"type": "FeatureCollection", "features": items}).encode()),
    st.binary(max_size=100)))
@example(b'{"type": "FeatureCollection", "features": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
@example(b'{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": '
         b'{"type": "Point", "coordinates": [1e999, 0]}, "properties": {"id": "a", "name": "A"}}]}')
def test_geojson_imports_give_cameras_or_say_which_rows_are_wrong(data: bytes) -> None:
    try:
        rows, unreadable = geojson_rows(data)
    except FieldError:
        return
    _import(rows, unreadable)
