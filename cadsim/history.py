"""A plausible past month of a CAD for the demo: closed incidents with their full timestamps.

Calls arrive more in the evening than before dawn; each is dispatched, driven to and worked
for times that depend on its priority (log-normal, as response times are); about one call in
twelve is cancelled before a unit arrives (no on-scene time). One in four is placed by its
street address, the others by a point. Each incident is one EIDO in its
final, closed state, whose units report their status so the server learns every CAD time.
Deterministic for a seed and an end time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from cadsim.scenario import (
    AGENCY,
    CAD_ELEMENT,
    INCIDENT_TYPES,
    PLACES,
    TRACKING_PREFIX,
    IncidentType,
    Place,
    _Incident,
    _offset,
    build_eido,
    iso,
)

HISTORY_TYPES: tuple[tuple[IncidentType, float], ...] = (
    *((kind, {"DIST": 5.0, "SUSP": 5.0, "MVA": 3.0, "BURG": 3.0}.get(kind.code, 1.0))
      for kind in INCIDENT_TYPES),
    (IncidentType("DV", "Domestic disturbance", "Police.Domestic", 2), 2.0),
)
CALLS_PER_DAY = 30
HOUR_WEIGHTS = (3, 2, 2, 1, 1, 1, 2, 3, 4, 4, 4, 5, 5, 5, 5, 6, 6, 7, 7, 7, 6, 5, 4, 3)
# (queue, travel) median seconds by priority; on scene median 25 minutes.
MEDIANS = {1: (35.0, 260.0), 2: (110.0, 420.0), 3: (420.0, 660.0)}
CANCELLED = 1 / 12
SPREAD_M = 1800.0
CIVIC_EVERY = 4
"""One call in four gives a street address (the CAD's own), the others a point."""
UNIT_STATUS = {"ENRT": "EnRoute", "ONSC": "OnScene", "CLSD": "Cleared"}


def _lognormal(rng: random.Random, median: float, sigma: float = 0.55) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _moment(rng: random.Random, start: datetime, days: int) -> datetime:
    day = rng.randrange(days)
    hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
    return start + timedelta(days=day, hours=hour, seconds=rng.randrange(3600),
                             milliseconds=rng.randrange(1000))


def _place(rng: random.Random, civic: bool) -> Place:
    """A known address (sent as a civic address, geocoded by the server) or a point spread
    around one."""
    base = rng.choice(PLACES)
    if civic:
        return base
    lat, lon = _offset(base.lat, base.lon, rng.uniform(-SPREAD_M, SPREAD_M),
                       rng.uniform(-SPREAD_M, SPREAD_M))
    return Place(f"near {base.name}", "", "", "", "", round(lat, 6), round(lon, 6))


def history_eidos(seed: int, days: int, end: datetime) -> Iterator[dict[str, Any]]:
    """About ``CALLS_PER_DAY`` closed incidents a day for the ``days`` before ``end``, oldest
    first, each as its final EIDO."""
    rng = random.Random(f"history:{seed}")
    start = end - timedelta(days=days)
    kinds = [k for k, _ in HISTORY_TYPES]
    weights = [w for _, w in HISTORY_TYPES]
    calls = sorted(_moment(rng, start, days) for _ in range(CALLS_PER_DAY * days))
    for number, received in enumerate(calls, start=1):
        kind = rng.choices(kinds, weights=weights)[0]
        queue_m, travel_m = MEDIANS.get(kind.priority, MEDIANS[3])
        entered = received + timedelta(seconds=rng.randint(10, 60))
        dispatched = entered + timedelta(seconds=_lognormal(rng, queue_m))
        en_route = dispatched + timedelta(seconds=rng.randint(5, 60))
        on_scene = en_route + timedelta(seconds=_lognormal(rng, travel_m))
        cleared = on_scene + timedelta(seconds=_lognormal(rng, 25 * 60.0))
        steps: list[tuple[str, datetime]] = [("PEND", entered), ("DISP", dispatched)]
        if rng.random() < CANCELLED:  # cancelled on the way: never on scene
            cleared = en_route + timedelta(seconds=rng.randint(60, 400))
            steps += [("ENRT", en_route), ("CLSD", cleared)]
        else:
            steps += [("ENRT", en_route), ("ONSC", on_scene), ("CLSD", cleared)]
        if cleared > end:
            continue
        incident = _Incident(
            number=number,
            tracking_id=f"{TRACKING_PREFIX}h{seed:04x}{number:06d}:{CAD_ELEMENT}",
            kind=kind, place=_place(rng, civic=number % CIVIC_EVERY == 0),
            shape="civic" if number % CIVIC_EVERY == 0 else "point",
            unit=f"{rng.randint(1, 4)}A{rng.randint(10, 39)}", call_received=received,
            step=4, history=steps)
        eido = build_eido(incident, cleared)
        eido["emergencyResourceComponent"] = [{
            "$id": f"{incident.tracking_id}:unit:{code}",
            "lastUpdateTimeStamp": iso(at), "updatedByAgencyReference": {"$ref": AGENCY},
            "emergencyResourceName": incident.unit, "primaryUnitStatusRegistryText": status,
        } for code, at in steps if (status := UNIT_STATUS.get(code))]
        yield eido
