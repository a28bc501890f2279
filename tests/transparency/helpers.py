"""Seeding CAD incidents for the transparency tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from incidents.model import CadTimes, IncidentUpdate, PointLocation
from incidents.store import IncidentStore


async def seed_incident(store: IncidentStore, number: int, code: str, created: datetime,
                        lat: float, lon: float, *, priority: int = 2,
                        minutes: tuple[float | None, float | None, float | None] = (1, 6, 30)
                        ) -> None:
    """One CAD incident created at ``created``, dispatched, on scene and cleared the given
    minutes later (None: that time was never reported)."""
    dispatched, on_scene, cleared = (None if m is None else created + timedelta(minutes=m)
                                     for m in minutes)
    update = IncidentUpdate(
        tracking_id=f"urn:emergency:uid:incidentid:t{number:05d}:cad.test.example",
        updated_at=created + timedelta(hours=2), type_code=code, type_text=code,
        priority=priority, status="CLSD",
        location=PointLocation(lat, lon), source="test",
        times=CadTimes(call_received=created, dispatched=dispatched, on_scene=on_scene,
                       cleared=cleared))
    await store.upsert(update, location={"kind": "point", "lat": lat, "lon": lon,
                                         "radius_m": None, "shape": "point"},
                       raw="{}", sender="test")
