"""Small EIDOs for tests: one incident at a point, at a given minute, in a given status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cadsim.scenario import iso, pidf_point

T0 = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)
SPRINGFIELD = (39.8017, -89.6440)


def tracking_id(number: int) -> str:
    return f"urn:emergency:uid:incidentid:test{number:06d}:cad.test.example"


def eido(number: int, *, minute: float = 0, status: str = "DISP", code: str = "SHOTS",
         lat: float = SPRINGFIELD[0], lon: float = SPRINGFIELD[1],
         location_xml: str | None = None, start: datetime = T0) -> dict[str, Any]:
    tid = tracking_id(number)
    stamp = iso(start + timedelta(minutes=minute))
    return {
        "$id": tid, "incidentTrackingIdentifier": tid, "lastUpdateTimeStamp": stamp,
        "incidentComponent": [{
            "$id": f"{tid}:incident", "lastUpdateTimeStamp": stamp,
            "incidentTrackingIdentifier": tid, "incidentTypeInternalCode": code,
            "incidentTypeInternalText": "Shots fired", "incidentStatusInternalText": [status],
            "incidentCommonPriorityNumber": 1, "locationReference": [{"$ref": f"{tid}:loc"}]}],
        "locationComponent": [{
            "$id": f"{tid}:loc", "lastUpdateTimeStamp": stamp,
            "locationTypeDescriptionRegistryText": "Incident",
            "locationByValue": location_xml if location_xml is not None
            else pidf_point(lat, lon, stamp)}],
    }
