"""Updates of one incident merge by last update time; an older one never wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from incidents.model import CadTimes, IncidentUpdate, PointLocation, merge, newer_than

T0 = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)
ID = "urn:emergency:uid:incidentid:1:cad.example"


def update(minutes: int, **kw: object) -> IncidentUpdate:
    return IncidentUpdate(tracking_id=ID, updated_at=T0 + timedelta(minutes=minutes), **kw)  # type: ignore[arg-type]


def test_older_update_never_overwrites_newer() -> None:
    new = update(5, status="ONSCENE")
    assert merge(new, update(1, status="DISPATCHED")) is new


def test_tie_keeps_the_current_state() -> None:
    first = update(5, status="A")
    assert merge(first, update(5, status="B")) is first
    assert not newer_than(update(5), first)


def test_newer_update_replaces_but_keeps_reported_times_and_location() -> None:
    old = update(1, location=PointLocation(39.8, -89.65), status="DISPATCHED",
                 times=CadTimes(call_received=T0, dispatched=T0 + timedelta(minutes=1)))
    new = update(9, status="ONSCENE", times=CadTimes(on_scene=T0 + timedelta(minutes=8)))
    merged = merge(old, new)
    assert merged.status == "ONSCENE"
    assert merged.location == PointLocation(39.8, -89.65)
    assert merged.times == CadTimes(call_received=T0, dispatched=T0 + timedelta(minutes=1),
                                    on_scene=T0 + timedelta(minutes=8))
    assert merge(None, new) is new


def test_different_incidents_do_not_compare() -> None:
    other = IncidentUpdate(tracking_id=ID + "x", updated_at=T0)
    with pytest.raises(ValueError, match="different incidents"):
        newer_than(update(1), other)


def test_naive_update_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        IncidentUpdate(tracking_id=ID, updated_at=datetime(2026, 5, 4))
