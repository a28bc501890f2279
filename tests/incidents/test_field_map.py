"""Flat CAD webhooks mapped into incident updates with field-level errors."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from incidents.field_map import FieldMap, FieldMapError, map_csv, map_json, map_record
from incidents.model import CivicLocation, PointLocation

CHICAGO = ZoneInfo("America/Chicago")
MAP = FieldMap(
    fields={"tracking_id": "IncidentNo", "updated_at": "Modified", "type_code": "Nature",
            "priority": "Pri", "lat": "Lat", "lon": "Lon", "address": "Addr",
            "call_received": "CallTime", "dispatched": "DispTime", "units": "Units",
            "notes": "Comments", "status": "Status"},
    time_formats={"updated_at": "%m/%d/%Y %H:%M:%S", "call_received": "%m/%d/%Y %H:%M:%S",
                  "dispatched": "%m/%d/%Y %H:%M:%S"},
    timezone="America/Chicago", agency_domain="cad.springfield.il.us",
)


def test_json_record_maps_to_an_update() -> None:
    (update,) = map_json(json.dumps({
        "IncidentNo": "2026-004417", "Modified": "05/04/2026 10:31:07", "Nature": "ROB",
        "Pri": "1", "Lat": 39.80012, "Lon": "-89.64921", "CallTime": "05/04/2026 10:19:12",
        "DispTime": "", "Units": "2A12; 2A14", "Comments": "two suspects", "Status": "ONSCENE",
    }).encode(), MAP)
    assert update.tracking_id == "urn:emergency:uid:incidentid:2026-004417:cad.springfield.il.us"
    assert update.updated_at == datetime(2026, 5, 4, 10, 31, 7, tzinfo=CHICAGO)
    assert update.location == PointLocation(39.80012, -89.64921)
    assert update.times.call_received == datetime(2026, 5, 4, 10, 19, 12, tzinfo=CHICAGO)
    assert update.times.dispatched is None
    assert (update.priority, update.units, update.notes) == (1, ("2A12", "2A14"), ("two suspects",))
    assert update.source == "webhook"


def test_csv_rows_with_an_address() -> None:
    text = ("IncidentNo,Modified,Nature,Addr\n"
            "A-1,05/04/2026 11:00:00,FIRE,\"401 S 2nd St, Springfield\"\n")
    (update,) = map_csv(text, MAP)
    assert update.location == CivicLocation((), "401 S 2nd St, Springfield")


def test_errors_name_their_fields_lines_and_formats() -> None:
    text = ("IncidentNo,Modified,Pri,Lat,Lon\n"
            ",05/04/2026 11:00:00,x,39.8,-89.6\n"
            "A-2,2026-05-04,1,95,-89.6\n")
    with pytest.raises(FieldMapError) as caught:
        map_csv(text, MAP)
    assert [(p.path, p.expected) for p in caught.value.problems] == [
        ("line 2, column IncidentNo", "the CAD incident number"),
        ("line 2, column Pri", "a number"),
        ("line 3, column Modified", "a time written as '%m/%d/%Y %H:%M:%S'"),
        ("line 3, column Lat", "a latitude and longitude (and a radius of 0 or more metres)"),
    ]


def test_naive_times_need_a_configured_zone() -> None:
    fm = FieldMap(fields={"tracking_id": "id", "updated_at": "t"})
    with pytest.raises(FieldMapError, match="with a UTC offset"):
        map_record({"id": "7", "t": "2026-05-04T10:00:00"}, fm)
    assert map_record({"id": "7", "t": "2026-05-04T10:00:00Z"}, fm).tracking_id == (
        "urn:emergency:uid:incidentid:7:cad.invalid")


def test_field_map_config_is_checked() -> None:
    with pytest.raises(ValidationError, match="needs updated_at"):
        FieldMap(fields={"tracking_id": "id"})
    with pytest.raises(ValidationError, match="unknown time zone"):
        FieldMap(fields={"tracking_id": "id", "updated_at": "t"}, timezone="Mars/Olympus")
    with pytest.raises(ValidationError):
        FieldMap(fields={"tracking_id": "id", "updated_at": "t", "colour": "c"})  # type: ignore[dict-item]
