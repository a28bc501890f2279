"""Flat CSV/JSON webhooks of CADs without EIDO, read into the same incident updates.

A configured ``FieldMap`` names, for each of our fields, the CAD's field (JSON key or CSV
column), and how its times are written. Problems are reported like EIDO ones (FieldMapError
lists each field: the CAD's name, what was expected, what was found).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from incidents.model import (
    MAX_NOTE_CHARS,
    MAX_NOTES,
    TRACKING_ID_PREFIX,
    CadTimes,
    CivicLocation,
    FieldProblem,
    IncidentParseError,
    IncidentUpdate,
    Location,
    PointLocation,
    describe,
    is_tracking_id,
    normalise_tracking_id,
)

MAX_BODY_BYTES = 1_000_000
MAX_ROWS = 1000
MAX_TEXT = 500

OurField = Literal[
    "tracking_id", "updated_at", "type_code", "type_text", "common_type", "priority", "status",
    "lat", "lon", "radius_m", "address", "call_received", "entered", "dispatched", "en_route",
    "on_scene", "cleared", "units", "notes",
]


class FieldMapError(IncidentParseError):
    def __init__(self, problems: list[FieldProblem] | tuple[FieldProblem, ...]) -> None:
        super().__init__("the CAD webhook", problems)


class FieldMap(BaseModel):
    """How a CAD's flat records map onto incident updates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Our field -> the CAD's field name. tracking_id and updated_at are required.
    fields: dict[OurField, str]
    # Our time field -> a strptime format ("%m/%d/%Y %H:%M:%S"); ISO 8601 when absent.
    time_formats: dict[OurField, str] = Field(default_factory=dict)
    # Zone for times written without a UTC offset (IANA name, e.g. "America/Chicago"); when
    # None, a time without an offset is a problem.
    timezone: str | None = None
    # A CAD incident number that is not already a NENA URN becomes
    # urn:emergency:uid:incidentid:<number>:<agency_domain>.
    agency_domain: str = Field(default="cad.invalid", pattern=r"^[A-Za-z0-9.-]{1,100}$")
    # Separator of several units or notes in one field.
    list_separator: str = ";"

    @field_validator("fields")
    @classmethod
    def _required(cls, value: dict[OurField, str]) -> dict[OurField, str]:
        missing = [f for f in ("tracking_id", "updated_at") if f not in value]
        if missing:
            raise ValueError(f"the field map needs {', '.join(missing)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}; use an IANA name such as "
                                 "'America/Chicago'") from None
        return value


def map_json(data: bytes, field_map: FieldMap) -> list[IncidentUpdate]:
    """A JSON object or an array of flat objects. Raises FieldMapError."""
    if len(data) > MAX_BODY_BYTES:
        raise FieldMapError([FieldProblem("$", f"a body of at most {MAX_BODY_BYTES} bytes",
                                          f"{len(data)} bytes")])
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise FieldMapError([FieldProblem("$", "a JSON object", f"invalid JSON ({exc})")]) from None
    records = body if isinstance(body, list) else [body]
    if len(records) > MAX_ROWS:
        raise FieldMapError([FieldProblem("$", f"at most {MAX_ROWS} records", str(len(records)))])
    problems: list[FieldProblem] = []
    updates = []
    for i, record in enumerate(records):
        prefix = f"[{i}]." if isinstance(body, list) else ""
        if not isinstance(record, dict):
            problems.append(FieldProblem(prefix.rstrip(".") or "$", "a flat JSON object",
                                         describe(record)))
            continue
        update = _map(record, field_map, prefix, problems)
        if update is not None:
            updates.append(update)
    if problems:
        raise FieldMapError(problems)
    return updates


def map_csv(text: str, field_map: FieldMap) -> list[IncidentUpdate]:
    """CSV with a header row, one incident update per row. Raises FieldMapError."""
    if len(text) > MAX_BODY_BYTES:
        raise FieldMapError([FieldProblem("$", f"a body of at most {MAX_BODY_BYTES} characters",
                                          f"{len(text)}")])
    try:
        rows = list(csv.DictReader(text.splitlines()))
    except csv.Error as exc:
        raise FieldMapError([FieldProblem("$", "CSV with a header row", str(exc))]) from None
    if len(rows) > MAX_ROWS:
        raise FieldMapError([FieldProblem("$", f"at most {MAX_ROWS} rows", str(len(rows)))])
    problems: list[FieldProblem] = []
    updates = []
    for line, row in enumerate(rows, start=2):
        update = _map(row, field_map, f"line {line}, column ", problems)
        if update is not None:
            updates.append(update)
    if problems:
        raise FieldMapError(problems)
    return updates


def map_record(record: Mapping[str, object], field_map: FieldMap) -> IncidentUpdate:
    """One flat record. Raises FieldMapError."""
    problems: list[FieldProblem] = []
    update = _map(record, field_map, "", problems)
    if update is None:
        raise FieldMapError(problems)
    return update


def _map(record: Mapping[str, object], fm: FieldMap, prefix: str,
         problems: list[FieldProblem]) -> IncidentUpdate | None:
    before = len(problems)

    def problem(ours: OurField, expected: str, found: object) -> None:
        problems.append(FieldProblem(prefix + fm.fields.get(ours, ours), expected,
                                     describe(found)))

    def raw(ours: OurField) -> object:
        name = fm.fields.get(ours)
        if name is None:
            return None
        value = record.get(name)
        return None if value == "" else value

    def text(ours: OurField) -> str | None:
        value = raw(ours)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            problem(ours, "a string", value)
            return None
        out = " ".join(str(value).split())
        if len(out) > MAX_TEXT:
            problem(ours, f"at most {MAX_TEXT} characters", f"{len(out)} characters")
            return None
        return out or None

    def number(ours: OurField) -> float | None:
        value = raw(ours)
        if value is None:
            return None
        try:
            out = float(value) if not isinstance(value, bool) and isinstance(
                value, str | int | float) else None
        except ValueError:
            out = None
        if out is None or out != out or out in (float("inf"), float("-inf")):
            problem(ours, "a number", value)
            return None
        return out

    def time(ours: OurField) -> datetime | None:
        value = raw(ours)
        if value is None:
            return None
        fmt = fm.time_formats.get(ours)
        expected = f"a time written as {fmt!r}" if fmt else "an ISO 8601 date-time"
        if not isinstance(value, str) or len(value) > 64:
            problem(ours, expected, value)
            return None
        try:
            when = (datetime.strptime(value.strip(), fmt) if fmt
                    else datetime.fromisoformat(value.strip()))
        except ValueError:
            problem(ours, expected, value)
            return None
        if when.tzinfo is None:
            if fm.timezone is None:
                problem(ours, expected + " with a UTC offset (or configure the field map's "
                        "timezone)", value)
                return None
            when = when.replace(tzinfo=ZoneInfo(fm.timezone))
        return when

    tracking = text("tracking_id")
    tracking_id: str | None = None
    if tracking is None:
        problem("tracking_id", "the CAD incident number", raw("tracking_id"))
    elif tracking.lower().startswith(TRACKING_ID_PREFIX):
        if is_tracking_id(tracking):
            tracking_id = normalise_tracking_id(tracking)
        else:
            problem("tracking_id", "a valid urn:emergency:uid:incidentid: URN", tracking)
    elif is_tracking_id(f"{TRACKING_ID_PREFIX}{tracking}:{fm.agency_domain}"):
        tracking_id = f"{TRACKING_ID_PREFIX}{tracking}:{fm.agency_domain}"
    else:
        problem("tracking_id", "an incident number of letters, digits and - . _", tracking)
    updated_at = time("updated_at")
    if updated_at is None and raw("updated_at") is None:
        problem("updated_at", "the time of this update", None)

    priority: int | None = None
    value = number("priority")
    if value is not None:
        if value.is_integer() and 0 <= value <= 999_999:
            priority = int(value)
        else:
            problem("priority", "a non-negative integer priority", raw("priority"))

    location: Location | None = None
    lat, lon, radius = number("lat"), number("lon"), number("radius_m")
    if lat is not None and lon is not None:
        if -90 <= lat <= 90 and -180 <= lon <= 180 and (radius is None or radius >= 0):
            location = PointLocation(lat, lon, radius, "circle" if radius else "point")
        else:
            problem("lat", "a latitude and longitude (and a radius of 0 or more metres)",
                    f"{lat}, {lon}")
    elif lat is not None or lon is not None:
        problem("lat" if lat is None else "lon", "both lat and lon", None)
    if location is None and (address := text("address")):
        location = CivicLocation((), address)

    def items(ours: OurField, limit: int) -> tuple[str, ...]:
        value = text(ours)
        if value is None:
            return ()
        return tuple(p.strip()[:MAX_NOTE_CHARS] for p in value.split(fm.list_separator)
                     if p.strip())[:limit]

    times = CadTimes(call_received=time("call_received"), entered=time("entered"),
                     dispatched=time("dispatched"), en_route=time("en_route"),
                     on_scene=time("on_scene"), cleared=time("cleared"))
    type_code, type_text = text("type_code"), text("type_text")
    common_type, status = text("common_type"), text("status")
    units, notes = items("units", 100), items("notes", MAX_NOTES)
    if len(problems) > before or tracking_id is None or updated_at is None:
        return None
    return IncidentUpdate(tracking_id=tracking_id, updated_at=updated_at, priority=priority,
                          location=location, times=times, units=units, notes=notes,
                          type_code=type_code, type_text=type_text, common_type=common_type,
                          status=status, source="webhook")
