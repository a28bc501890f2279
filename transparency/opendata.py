"""The open data files: CSV, GeoJSON and JSON with stable field names (``FIELDS``).

Adding a field is allowed; renaming or removing one is a new API version (``/v2/``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Sequence
from typing import Any

from transparency.metrics import MetricRow
from transparency.policy import PublishedIncident
from transparency.program import ProgramNumbers

API_VERSION = "v1"
INCIDENT_FIELDS: dict[str, str] = {
    "id": "Stable public id (not the CAD's or the records system's own number)",
    "source": "cad (a call for service) or records (a reported crime, NIBRS coded)",
    "type_code": "CAD type code or NIBRS offence code",
    "type_label": "What the type means, in plain words",
    "occurred_hour": "When it happened, UTC, ISO 8601, to the hour",
    "lat": "Latitude of the snap point (never the exact place), WGS 84",
    "lon": "Longitude of the snap point (never the exact place), WGS 84",
    "block": "Hundred block of the address (e.g. 400 block of S 8th St), when configured",
    "district": "The police district the incident happened in",
}
METRIC_FIELDS: dict[str, str] = {
    "measure": "queue, response, travel or on_scene",
    "group_by": "all, priority, district or month",
    "group": "The priority, district name or month (YYYY-MM) the row is about",
    "count": "Incidents with both timestamps of the measure",
    "missing": "Incidents without one of the timestamps (not in the times)",
    "inconsistent": "Incidents whose end time is before the start (not in the times)",
    "median_s": "Median, seconds",
    "p90_s": "90th percentile, seconds (linear between closest ranks)",
}


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def incident_rows(incidents: Sequence[PublishedIncident]) -> list[dict[str, Any]]:
    return [{name: getattr(i, name) for name in INCIDENT_FIELDS} for i in incidents]


def incidents_json(incidents: Sequence[PublishedIncident], generated_at: str) -> bytes:
    return _dump({"version": API_VERSION, "generated_at": generated_at,
                  "count": len(incidents), "incidents": incident_rows(incidents)})


def incidents_geojson(incidents: Sequence[PublishedIncident], generated_at: str) -> bytes:
    features = [{
        "type": "Feature", "id": row["id"],
        "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
        "properties": {k: v for k, v in row.items() if k not in {"lat", "lon"}},
    } for row in incident_rows(incidents) if row["lat"] is not None]
    return _dump({"type": "FeatureCollection", "generated_at": generated_at,
                  "features": features})


def _csv(fields: Sequence[str], rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(fields), lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        # A cell that a spreadsheet would run as a formula is quoted as text.
        writer.writerow({k: ("'" + v if isinstance(v, str) and v[:1] in "=+-@" else v)
                         for k, v in row.items()})
    return out.getvalue().encode()


def incidents_csv(incidents: Sequence[PublishedIncident]) -> bytes:
    return _csv(list(INCIDENT_FIELDS), incident_rows(incidents))


def metric_rows(rows: Sequence[MetricRow]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(row) for row in rows]


def metrics_json(rows: Sequence[MetricRow], generated_at: str) -> bytes:
    return _dump({"version": API_VERSION, "generated_at": generated_at,
                  "metrics": metric_rows(rows)})


def metrics_csv(rows: Sequence[MetricRow]) -> bytes:
    return _csv(list(METRIC_FIELDS), metric_rows(rows))


def program_json(numbers: ProgramNumbers, generated_at: str) -> bytes:
    body = dataclasses.asdict(numbers)
    body.update(version=API_VERSION, generated_at=generated_at)
    return _dump(body)


def describe(base: str) -> bytes:
    """The API's own documentation, served at its root."""
    files = {name: f"{base}/{name}" for name in (
        "incidents.json", "incidents.geojson", "incidents.csv", "metrics.json", "metrics.csv",
        "program.json")}
    return _dump({
        "version": API_VERSION,
        "files": files,
        "filters": {"type": "type_code, repeatable", "from": "YYYY-MM-DD (UTC, inclusive)",
                    "to": "YYYY-MM-DD (UTC, inclusive)",
                    "applies_to": ["incidents.json", "incidents.geojson", "incidents.csv"]},
        "incident_fields": INCIDENT_FIELDS, "metric_fields": METRIC_FIELDS,
        "program_fields": {
            "cameras_total": "Registered cameras", "by_sharing": "Cameras per sharing level",
            "by_district": "Cameras per district and sharing level (never locations)",
            "activity": "Per month: footage requests made and approved, live views opened",
            "activity_available": "False when the audit counts could not be read"},
        "stability": "Field names are stable within a version; new fields may be added.",
    })
