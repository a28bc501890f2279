"""EIDO documents read into incident updates: the sample set, draft spellings, and refusals
that name the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from incidents.eido import MAX_ARRAY, EidoError, parse_eido
from incidents.model import (
    CivicLocation,
    FieldProblem,
    PointLocation,
    PolygonLocation,
    ReferenceLocation,
)

SAMPLES = Path(__file__).parent.parent / "fixtures" / "nena"
CDT = timezone(timedelta(hours=-5))


def load(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def doc(name: str) -> Any:
    return json.loads(load(name))


def test_every_sample_loads_or_names_its_fields() -> None:
    loaded = {}
    for path in sorted(SAMPLES.glob("*.json")):
        if path.name == "no-tracking-id-bad-priority.json":
            with pytest.raises(EidoError) as caught:
                parse_eido(path.read_bytes())
            assert caught.value.problems == (
                FieldProblem("incidentTrackingIdentifier",
                             "an incident tracking id 'urn:emergency:uid:incidentid:<id>:<domain>'"
                             " in incidentTrackingIdentifier (or the document's $id)",
                             "$id 'cad-4417-header'"),
                FieldProblem("incidentComponent.incidentCommonPriorityNumber",
                             "a non-negative integer priority", "'high'"),
            )
            assert "Fix these fields" in str(caught.value)
            continue
        loaded[path.name] = parse_eido(path.read_bytes())
    assert sorted(loaded) == ["array-polygon-circle.json", "call-transfer-civic.json",
                              "dispatch-point-units-notes.json", "draft-ellipsoid-messy-pidf.json",
                              "draft-unclosed-attribute-pidf.json"]
    assert sum(len(v) for v in loaded.values()) == 6


def test_call_transfer_sample_gives_the_civic_address() -> None:
    (update,) = parse_eido(load("call-transfer-civic.json"))
    assert update.tracking_id == "urn:emergency:uid:incidentid:7f3a9c21:psap.springfield.il.us"
    assert update.updated_at == datetime(2026, 5, 4, 9, 14, 49, 439000, tzinfo=CDT)
    assert isinstance(update.location, CivicLocation)
    assert update.location.text == "401 S 2nd Street, Springfield, IL 62701"
    assert update.location.get("HNO") == "401"
    assert update.times.call_received == datetime(2026, 5, 4, 9, 12, 30, tzinfo=CDT)
    assert update.type_code is None
    assert update.priority is None


def test_draft_spellings_and_messy_pidf_are_read() -> None:
    (update,) = parse_eido(load("draft-ellipsoid-messy-pidf.json"))
    assert update.tracking_id == "urn:emergency:uid:incidentid:0:psap.springfield.il.us"
    assert update.updated_at == datetime(2026, 5, 4, 14, 40, 4, 337000, tzinfo=UTC)
    assert (update.type_code, update.type_text, update.common_type) == (
        "10-101", "CIVIL UNREST; REQUEST MUTUAL AID", "CU1")
    assert update.priority == 10
    assert update.status == "10-101"
    assert update.location == PointLocation(39.79912, -89.65018, 35.5, "ellipsoid")
    assert update.location_problems == ()


def test_unreadable_location_keeps_the_update_and_names_the_field() -> None:
    (update,) = parse_eido(load("draft-unclosed-attribute-pidf.json"))
    assert update.location is None
    assert update.type_code == "10-101"
    (problem,) = update.location_problems
    assert problem.path == "locationInformationComponent[0].locationByValue"
    assert "not well-formed XML" in problem.found


def test_dispatch_sample_gives_units_times_notes_and_the_referenced_location() -> None:
    (update,) = parse_eido(load("dispatch-point-units-notes.json"))
    assert update.location == PointLocation(39.80012, -89.64921, None, "point")
    assert update.units == ("2A12", "2A14")
    assert update.times.call_received == datetime(2026, 5, 4, 10, 19, 12, tzinfo=CDT)
    assert update.times.dispatched == datetime(2026, 5, 4, 10, 21, 40, tzinfo=CDT)
    assert update.times.en_route == datetime(2026, 5, 4, 10, 23, 10, tzinfo=CDT)
    assert update.times.on_scene == datetime(2026, 5, 4, 10, 27, 55, tzinfo=CDT)
    assert update.times.cleared is None
    assert update.times.entered is None
    assert update.notes == ("Caller reports two suspects, one in a red jacket & cap, fled north "
                            "on 5th.",)
    assert (update.priority, update.status) == (1, "ONSCENE")


def test_an_array_gives_one_update_per_document() -> None:
    first, second = parse_eido(load("array-polygon-circle.json"))
    assert isinstance(first.location, PolygonLocation)
    assert len(first.location.vertices) == 4
    assert second.location == PointLocation(39.7975, -89.6478, 50.0, "circle")


def test_reference_url_is_returned_not_fetched() -> None:
    eido = doc("call-transfer-civic.json")
    del eido["locationComponent"][0]
    (update,) = parse_eido(json.dumps(eido))
    assert update.location == ReferenceLocation("https://lis.example.net/loc?id=oasufdqwerjn12346jfias")


def test_problems_in_an_array_carry_the_document_index() -> None:
    eido = doc("array-polygon-circle.json")
    eido[1]["lastUpdateTimeStamp"] = "2026-05-04T11:05:30"
    with pytest.raises(EidoError) as caught:
        parse_eido(json.dumps(eido))
    (problem,) = caught.value.problems
    assert problem.path == "[1].lastUpdateTimeStamp"
    assert "no UTC offset" in problem.found


def test_case_differences_are_read_but_conflicting_spellings_are_not() -> None:
    eido = doc("dispatch-point-units-notes.json")
    eido["LASTUPDATETIMESTAMP"] = eido.pop("lastUpdateTimeStamp")
    assert parse_eido(json.dumps(eido))[0].updated_at.hour == 10
    eido["lastUpdateTimeStamp"] = "2026-05-04T12:00:00Z"
    with pytest.raises(EidoError) as caught:
        parse_eido(json.dumps(eido))
    assert caught.value.problems[0].expected == "one value per field"


@pytest.mark.parametrize(("body", "path", "expected"), [
    (b"{", "$", "a JSON document"),
    (b'{"a": 1, "a": 2}', "$", "each key once per object"),
    (b"[" * 40 + b"]" * 40, "[0]" * 32, "JSON nested at most 32 levels deep"),
    (b"[" * 100_000, "$", "JSON nested at most 32 levels deep"),
    (b"[]", "$", "an EIDO object or a non-empty array of them"),
    (b'{"x": [' + b",".join([b"1"] * (MAX_ARRAY + 1)) + b"]}", "x",
     f"an array of at most {MAX_ARRAY} items"),
    (b'{"x": NaN}', "$", "a JSON document"),
    (b"\xff\xfe", "$", "UTF-8 encoded JSON"),
])
def test_malformed_bodies_are_refused(body: bytes, path: str, expected: str) -> None:
    with pytest.raises(EidoError) as caught:
        parse_eido(body)
    assert caught.value.problems[0].path == path
    assert caught.value.problems[0].expected == expected


def test_a_huge_document_is_refused_before_parsing() -> None:
    with pytest.raises(EidoError) as caught:
        parse_eido(b" " * 1_000_001)
    assert caught.value.problems[0].expected == "a body of at most 1000000 bytes"


def test_wrong_types_are_refused_with_their_paths() -> None:
    eido = doc("dispatch-point-units-notes.json")
    eido["incidentComponent"]["incidentTypeInternalCode"] = 12
    eido["incidentComponent"]["incidentCommonPriorityNumber"] = True
    eido["callComponent"][0]["callStartTimestamp"] = "yesterday"
    eido["incidentTrackingIdentifier"] = "urn:emergency:uid:incidentid:"
    with pytest.raises(EidoError) as caught:
        parse_eido(json.dumps(eido))
    assert [p.path for p in caught.value.problems] == [
        "incidentTrackingIdentifier",
        "incidentComponent.incidentTypeInternalCode",
        "incidentComponent.incidentCommonPriorityNumber",
        "callComponent[0].callStartTimestamp",
    ]


def test_tracking_id_prefix_case_is_normalised() -> None:
    eido = doc("dispatch-point-units-notes.json")
    eido["$id"] = "URN:Emergency:UID:IncidentID:2026-004417:cad.springfield.il.us"
    assert parse_eido(json.dumps(eido))[0].tracking_id == (
        "urn:emergency:uid:incidentid:2026-004417:cad.springfield.il.us")


def test_hostile_location_is_a_location_problem_not_an_expansion() -> None:
    eido = doc("dispatch-point-units-notes.json")
    eido["locationComponent"][1]["locationByValue"] = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>')
    (update,) = parse_eido(json.dumps(eido))
    assert update.location == ReferenceLocation("https://lis.example.net/loc?id=991")
    (problem,) = update.location_problems
    assert problem.path == "locationComponent[1].locationByValue"
    assert "DTD" in problem.found


def test_pathological_text_is_read_in_one_pass() -> None:
    eido = doc("dispatch-point-units-notes.json")
    eido["notesComponent"][0]["notesActionComments"] = "<" * 300_000
    eido["incidentComponent"]["incidentTypeInternalText"] = '"a\\"' * 50_000
    with pytest.raises(EidoError) as caught:
        parse_eido(json.dumps(eido))
    assert [p.path for p in caught.value.problems] == ["incidentComponent.incidentTypeInternalText"]
