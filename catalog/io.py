"""Bulk formats: CSV and GeoJSON in (with a per-row error report) and out.

Import happens in two steps so that an upsert can keep stored passwords: the file is read into
rows (``csv_rows``/``geojson_rows``), then each row becomes a Camera (``cameras_from_rows``),
given the cameras already stored under the same ids. Any error anywhere refuses the whole file.
Exports never contain passwords or their ciphertext. Text cells that a spreadsheet would run as
a formula (starting with = + - @) are written with a leading apostrophe, removed again on import.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from catalog.errors import FieldError, ImportRejected, RowError
from catalog.model import PROFILE_NAMES, Camera, camera_public
from catalog.query import Hit
from catalog.validate import format_windows, parse_camera
from rtcc.access import SecretBox

REQUIRED_COLUMNS = ("id", "name", "lat", "lon")
_PROFILE_COLUMNS = ("url", "username", "password", "transport")
CSV_COLUMNS: tuple[str, ...] = (
    "id", "name", "lat", "lon", "owner_id", "site_id", "heading", "fov", "range_m", "kind",
    "sharing", "windows", "timezone", "ptz_allowed", "preload", "record", "via_agent",
    *(f"{p}_{c}" for p in PROFILE_NAMES for c in _PROFILE_COLUMNS),
)
EXPORT_COLUMNS = tuple(c for c in CSV_COLUMNS if not c.endswith("_password"))
MAX_ROWS = 200_000
MAX_REPORTED_ERRORS = 1000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TEXT_COLUMNS = frozenset({"name", "main_username", "sub_username"})
_HEADER_HINT = f"a header row with {', '.join(REQUIRED_COLUMNS)} (and optionally " \
    f"{', '.join(CSV_COLUMNS[4:])}), then one row per camera"

Row = tuple[int, dict[str, Any]]


def _csv_field(field: str) -> str:
    """A camera field name as the CSV column that holds it (profiles.main.url -> main_url)."""
    if field.startswith("profiles."):
        parts = field.split(".")
        if len(parts) >= 3:
            return f"{parts[1]}_{parts[2]}"
    return field


def _unescape(value: str) -> str:
    if len(value) >= 2 and value[0] == "'" and value[1] in _FORMULA_START:
        return value[1:]
    return value


def _escape(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def csv_rows(data: bytes) -> tuple[list[Row], list[RowError]]:
    """Rows of a CSV file as camera field mappings, and rows that could not be read. Raises
    FieldError for the file as a whole (encoding, empty, unknown or missing columns)."""
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (Excel writes one) is dropped
    except UnicodeDecodeError:
        raise FieldError("body", "the CSV is not UTF-8 text", "UTF-8 CSV") from None
    if not text.strip():
        raise FieldError("body", "the CSV is empty", _HEADER_HINT)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader)]
        if len(records := list(reader)) > MAX_ROWS + 1000:
            raise FieldError("body", "too many rows", f"at most {MAX_ROWS} cameras per file")
    except csv.Error as exc:
        raise FieldError("body", f"the CSV cannot be read: {exc}", _HEADER_HINT) from None
    for name in header:
        if name not in CSV_COLUMNS:
            raise FieldError(name[:64] or "(empty column name)", "unknown column",
                             ", ".join(CSV_COLUMNS))
        if header.count(name) > 1:
            raise FieldError(name, "column appears twice", "each column once")
    for name in REQUIRED_COLUMNS:
        if name not in header:
            raise FieldError(name, "missing column", _HEADER_HINT)
    rows: list[Row] = []
    errors: list[RowError] = []
    plan = _plan(header)
    blank = [""]
    for number, record in enumerate((r for r in records if r and r != blank), 1):
        if number > MAX_ROWS:
            raise FieldError("body", "too many rows", f"at most {MAX_ROWS} cameras per file")
        if len(record) != len(header):
            errors.append(RowError(number, "(row)", f"has {len(record)} cells, the header has "
                                   f"{len(header)}"))
            continue
        rows.append((number, _row_fields(plan, record)))
    if not rows and not errors:
        raise FieldError("body", "the CSV has a header but no cameras", _HEADER_HINT)
    return rows, errors


_PLAIN, _TEXT, _SECRET = 0, 1, 2


def _plan(header: Sequence[str]) -> list[tuple[int, str, str, str]]:
    """How to read each column: (treatment, column, profile name or "", profile key)."""
    plan: list[tuple[int, str, str, str]] = []
    for column in header:
        treatment = _TEXT if column in _TEXT_COLUMNS else (
            _SECRET if column.endswith("_password") else _PLAIN)
        prefix, _, key = column.partition("_")
        if prefix in PROFILE_NAMES and key in _PROFILE_COLUMNS:
            plan.append((treatment, column, prefix, key))
        else:
            plan.append((treatment, column, "", ""))
    return plan


def _row_fields(plan: list[tuple[int, str, str, str]], record: Sequence[str]) -> dict[str, Any]:
    """A CSV row as camera fields; empty cells mean "not given" (an empty password cell keeps
    the stored password)."""
    fields: dict[str, Any] = {}
    profiles: dict[str, dict[str, str]] | None = None
    for (treatment, column, profile, key), raw in zip(plan, record, strict=True):
        if treatment == _PLAIN:
            value = raw.strip()
        elif treatment == _TEXT:
            value = _unescape(raw)
        else:
            value = raw
        if value == "":
            continue
        if profile:
            if profiles is None:
                profiles = {}
            profiles.setdefault(profile, {})[key] = value
        else:
            fields[column] = value
    if profiles:
        fields["profiles"] = profiles
    return fields


def geojson_rows(data: bytes) -> tuple[list[Row], list[RowError]]:
    """Features of a GeoJSON FeatureCollection of Points as camera field mappings, and
    features that are not camera points."""
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FieldError("body", f"not valid JSON: {exc}", "a GeoJSON FeatureCollection"
                         ) from None
    except RecursionError:  # "[[[[...": nesting deeper than the parser's stack
        raise FieldError("body", "not valid JSON: nested too deeply",
                         "a GeoJSON FeatureCollection") from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise FieldError("type", "must be a FeatureCollection", "FeatureCollection")
    features = document.get("features")
    if not isinstance(features, list) or not features:
        raise FieldError("features", "no features", "a list of Point features, one per camera")
    if len(features) > MAX_ROWS:
        raise FieldError("features", "too many features", f"at most {MAX_ROWS}")
    rows: list[Row] = []
    errors: list[RowError] = []
    for number, feature in enumerate(features, 1):
        try:
            rows.append((number, feature_fields(feature)))
        except FieldError as exc:
            errors.append(RowError(number, exc.field, exc.reason, exc.allowed))
    return rows, errors


def feature_fields(feature: object) -> dict[str, Any]:
    """A GeoJSON Point Feature (or a plain object of camera fields) as camera fields."""
    if not isinstance(feature, dict):
        raise FieldError("feature", "must be an object", "a GeoJSON Feature")
    if feature.get("type") != "Feature":
        return dict(feature)
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") != "Point":
        raise FieldError("geometry", "must be a Point", '{"type": "Point", "coordinates": '
                         '[lon, lat]}')
    coordinates = geometry.get("coordinates")
    if not isinstance(coordinates, list) or len(coordinates) not in (2, 3):
        raise FieldError("geometry.coordinates", "must be [longitude, latitude]",
                         "longitude -180..180, latitude -90..90")
    properties = feature.get("properties") or {}
    if not isinstance(properties, dict):
        raise FieldError("properties", "must be an object", "camera fields")
    fields = dict(properties)
    fields["lon"], fields["lat"] = coordinates[0], coordinates[1]
    if "id" not in fields and feature.get("id") is not None:
        fields["id"] = feature["id"]
    return fields


def cameras_from_rows(
    rows: Sequence[Row], box: SecretBox | None, previous: Mapping[str, Camera],
    unreadable: Sequence[RowError] = (),
) -> list[Camera]:
    """Validated cameras, or ImportRejected listing every bad row, including the ``unreadable``
    ones found while reading the file (nothing is half-taken)."""
    cameras: list[Camera] = []
    errors: list[RowError] = list(unreadable)
    seen: dict[str, int] = {}
    for number, fields in rows:
        try:
            camera = parse_camera(fields, box, previous.get(str(fields.get("id"))))
        except FieldError as exc:
            errors.append(RowError(number, _csv_field(exc.field), exc.reason, exc.allowed))
            continue
        if camera.id in seen:
            errors.append(RowError(number, "id", f"duplicate of row {seen[camera.id]}"))
            continue
        seen[camera.id] = number
        cameras.append(camera)
    if errors:
        errors.sort(key=lambda error: error.row)
        raise ImportRejected(errors[:MAX_REPORTED_ERRORS])
    return cameras


# -- output -----------------------------------------------------------------------------------


def camera_feature(camera: Camera, hit: Hit | None = None, *, urls: bool) -> dict[str, Any]:
    properties = camera_public(camera, urls=urls)
    del properties["lat"], properties["lon"]
    if hit is not None:
        if hit.distance_m is not None:
            properties["distance_m"] = round(hit.distance_m, 2)
        if hit.bearing_deg is not None:
            properties["bearing_deg"] = round(hit.bearing_deg, 2)
        if hit.sees is not None:
            properties["sees"] = hit.sees
        if hit.along_m is not None:
            properties["along_m"] = round(hit.along_m, 2)
    return {"type": "Feature", "id": camera.id,
            "geometry": {"type": "Point", "coordinates": [camera.lon, camera.lat]},
            "properties": properties}


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def csv_line(values: Iterable[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(list(values))
    return buffer.getvalue()


def camera_csv_cells(camera: Camera, *, urls: bool) -> list[str]:
    cells: dict[str, str] = {
        "id": camera.id, "name": _escape(camera.name), "lat": _cell(camera.lat),
        "lon": _cell(camera.lon), "owner_id": camera.owner_id, "site_id": camera.site_id,
        "heading": _cell(camera.heading), "fov": _cell(camera.fov),
        "range_m": _cell(camera.range_m), "kind": str(camera.kind),
        "sharing": str(camera.sharing), "windows": format_windows(camera.windows),
        "timezone": camera.timezone, "ptz_allowed": _cell(camera.ptz_allowed),
        "preload": _cell(camera.preload), "record": _cell(camera.record),
        "via_agent": _cell(camera.via_agent),
    }
    for name in PROFILE_NAMES:
        profile = camera.profiles.get(name)
        shown = profile is not None and urls
        cells[f"{name}_url"] = profile.url if profile is not None and shown else ""
        cells[f"{name}_username"] = _escape(profile.username) if profile and shown else ""
        cells[f"{name}_transport"] = profile.transport if profile else ""
    return [cells[column] for column in EXPORT_COLUMNS]
