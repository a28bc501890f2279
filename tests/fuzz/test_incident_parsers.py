"""EIDO and PIDF-LO parsers fed arbitrary and mutated input: an incident update (or a location)
or the parser's own error, never another exception."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from incidents.eido import EidoError, parse_eido
from incidents.field_map import FieldMap, FieldMapError, map_csv, map_json
from incidents.pidf import PidfError, parse_pidf

SAMPLES = sorted((Path(__file__).parent.parent / "fixtures" / "nena").glob("*.json"))
SAMPLE_BYTES = [p.read_bytes() for p in SAMPLES]
PIDFS = [c["locationByValue"].encode()
         for doc in (json.loads(b) for b in SAMPLE_BYTES)
         for d in (doc if isinstance(doc, list) else [doc])
         for c in d.get("locationComponent", d.get("locationInformationComponent", []))
         if "locationByValue" in c]
BOMB = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>')
FIELD_MAP = FieldMap(fields={"tracking_id": "id", "updated_at": "t", "lat": "lat", "lon": "lon",
                             "priority": "p", "units": "u"}, timezone="UTC")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["$id", "lastUpdateTimeStamp", "LastUpdateTimeStamp", "incidentComponent",
                         "locationComponent", "locationByValue", "incidentCommonPriorityNumber",
                         "incidentTrackingIdentifier", "callComponent", "notesComponent",
                         "emergencyResourceComponent", "dispatchComponent", "x"]),
        inner, max_size=5),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn, choices: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(choices)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["cut", "insert", "flip"]))
        if action == "cut":
            del data[at:at + draw(st.integers(1, 40))]
        elif action == "insert":
            data[at:at] = draw(st.sampled_from(
                [b"<", b'"', b"{", b"[", b"]", b"}", b",", b"<!DOCTYPE x>", b"&lol;", b"\xff",
                 b"null", b"1e999", b"<gs:Circle>", b"-", b":"]))
        elif at < len(data):
            data[at] ^= draw(st.integers(1, 255))
    return bytes(data)


@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                 mutated(SAMPLE_BYTES)))
@example(b"[" * 5000)
@example(b'{"lastUpdateTimeStamp": "9999-12-31T23:59:59.9999999+23:59"}')
@example(json.dumps({"$id": "urn:emergency:uid:incidentid:abc:x", "lastUpdateTimeStamp":
                     "2026-01-01T00:00:00Z", "locationComponent": [
                         {"locationByValue": BOMB.decode()}]}).encode())
def test_eido_parses_or_is_refused(data: bytes) -> None:
    try:
        updates = parse_eido(data)
    except EidoError as exc:
        problems = exc.problems
        updates = []
    else:
        problems = ()
    assert problems or updates
    assert all(u.updated_at.utcoffset() is not None for u in updates)


@given(st.one_of(st.binary(max_size=300), mutated(PIDFS), mutated([BOMB])))
@example(BOMB)
@example("<?xml version='1.0' encoding='utf-16'?><r/>".encode("utf-16"))
@example(b"<?xml version='1.0' encoding='bogus'?><r/>")
@example(b"")
def test_pidf_parses_or_is_refused(data: bytes) -> None:
    try:
        location = parse_pidf(data)
    except PidfError as exc:
        location, message = None, str(exc)
    else:
        message = ""
    assert (location is None) == bool(message)


@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())))
def test_field_map_json_parses_or_is_refused(data: bytes) -> None:
    try:
        updates = map_json(data, FIELD_MAP)
    except FieldMapError as exc:
        problems, updates = exc.problems, []
    else:
        problems = ()
    assert all(u.source == "webhook" for u in updates)
    assert problems or isinstance(updates, list)


@given(st.text(max_size=200))
@example('id,t,lat\n1,2026-01-01T00:00:00,"x\n')
def test_field_map_csv_parses_or_is_refused(text: str) -> None:
    try:
        updates = map_csv(text, FIELD_MAP)
    except FieldMapError as exc:
        problems, updates = exc.problems, []
    else:
        problems = ()
    assert all(u.source == "webhook" for u in updates)
    assert problems or isinstance(updates, list)
