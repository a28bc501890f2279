"""Response metrics against numbers worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rtcc.public_data import CadRecord
from rtcc.transparency_config import District
from transparency.districts import OUTSIDE, UNKNOWN
from transparency.metrics import MetricRow, percentile, response_metrics

T0 = datetime(2026, 10, 31, 23, 50, tzinfo=UTC)
NORTH = District(name="North", polygon=[(40.0, -90.0), (40.0, -89.0), (39.8, -89.0),
                                        (39.8, -90.0)])


def record(n: int, *, priority: int | None = 1, lat: float | None = 39.9,
           offsets: dict[str, float | None]) -> CadRecord:
    """A CAD record whose times are T0 plus the given seconds (None: not reported)."""
    times = {name: None if seconds is None else T0 + timedelta(seconds=seconds)
             for name, seconds in offsets.items()}
    return CadRecord(incident_id=str(n), type_code="BURG", type_text=None, priority=priority,
                     lat=lat, lon=None if lat is None else -89.5, address=None, **times)


RECORDS = [
    # created 0; dispatched 60; on scene 360; cleared 1560
    record(1, offsets={"call_received": 0, "dispatched": 60, "on_scene": 360, "cleared": 1560}),
    # no call_received: entered counts as created; dispatched 120, on scene 720
    record(2, offsets={"entered": 0, "dispatched": 120, "on_scene": 720, "cleared": None}),
    # never on scene (cancelled): only queue time
    record(3, priority=2, lat=39.5, offsets={"call_received": 0, "dispatched": 30}),
    # on scene before dispatch (entry error): travel is inconsistent, response counts
    record(4, priority=2, lat=None,
           offsets={"call_received": 600, "dispatched": 900, "on_scene": 840, "cleared": 1440}),
]


def row(rows: list[MetricRow], measure: str, group_by: str, group: str) -> MetricRow:
    (found,) = [r for r in rows if (r.measure, r.group_by, r.group) == (measure, group_by, group)]
    return found


def test_percentiles_by_hand() -> None:
    assert percentile([1.0], 0.9) == 1.0
    assert percentile([10.0, 20.0], 0.5) == 15.0
    assert percentile([0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0],
                      0.9) == 90.0
    assert percentile([60.0, 120.0, 300.0], 0.9) == 264.0  # 120 + (300 - 120) * 0.8


def test_metrics_by_hand_with_missing_and_inconsistent_times() -> None:
    rows = response_metrics(RECORDS, [NORTH])
    queue = row(rows, "queue", "all", "all")  # 60, 120, 30, 300
    assert (queue.count, queue.missing, queue.median_s, queue.p90_s) == (4, 0, 90.0, 246.0)
    response = row(rows, "response", "all", "all")  # 360, 720, (missing), 240
    assert (response.count, response.missing, response.median_s) == (3, 1, 360.0)
    assert response.p90_s == 648.0  # 360 + (720 - 360) * 0.8
    travel = row(rows, "travel", "all", "all")  # 300, 600, (missing), -60
    assert (travel.count, travel.missing, travel.inconsistent) == (2, 1, 1)
    assert (travel.median_s, travel.p90_s) == (450.0, 570.0)
    on_scene = row(rows, "on_scene", "all", "all")  # 1200, (missing), (missing), 600
    assert (on_scene.count, on_scene.missing, on_scene.median_s) == (2, 2, 900.0)

    p2 = row(rows, "queue", "priority", "2")  # 30, 300
    assert (p2.count, p2.median_s, p2.p90_s) == (2, 165.0, 273.0)
    assert row(rows, "response", "priority", "2").missing == 1
    assert row(rows, "queue", "district", "North").count == 2
    assert row(rows, "queue", "district", OUTSIDE).count == 1
    assert row(rows, "queue", "district", UNKNOWN).count == 1
    # Record 4 was created ten minutes after the others, past midnight: November.
    assert row(rows, "queue", "month", "2026-10").count == 3
    assert row(rows, "queue", "month", "2026-11").median_s == 300.0
    nothing = row(rows, "on_scene", "district", OUTSIDE)
    assert (nothing.count, nothing.missing, nothing.median_s, nothing.p90_s) == (0, 1, None, None)
