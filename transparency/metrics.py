"""Response metrics from CAD timestamps.

- queue time: call created -> first unit dispatched
- response time: call created -> first unit on scene
- travel time: first unit dispatched -> first unit on scene
- time on scene: first unit on scene -> cleared

"Created" is the time the call was received, or when the CAD does not say, the time it was
entered. Each measure is reported as a count, a median and a 90th percentile (linear
interpolation between the closest ranks, as spreadsheets' PERCENTILE.INC), overall and by
priority, district and month (UTC, of the created time), in seconds to one decimal. An
incident missing either timestamp of a measure is not counted in it but in ``missing``; one
whose end is before its start (a clock or entry error) is counted in ``inconsistent``, never as
a negative time.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from rtcc.public_data import CadRecord
from rtcc.transparency_config import District
from transparency.districts import district_of

Measure = Literal["queue", "response", "travel", "on_scene"]
MEASURES: tuple[Measure, ...] = ("queue", "response", "travel", "on_scene")
MEASURE_LABELS: dict[Measure, str] = {
    "queue": "Queue time (call to first dispatch)",
    "response": "Response time (call to first unit on scene)",
    "travel": "Travel time (dispatch to on scene)",
    "on_scene": "Time on scene (on scene to cleared)",
}
GroupKind = Literal["all", "priority", "district", "month"]


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One measure over one group. Field names are the open data's: stable."""

    measure: Measure
    group_by: GroupKind
    group: str
    count: int
    missing: int
    inconsistent: int
    median_s: float | None
    p90_s: float | None


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-th quantile (0..1) of sorted values, linear between closest ranks."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    position = (len(sorted_values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def created(record: CadRecord) -> datetime | None:
    return record.call_received or record.entered


def _span(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def durations(record: CadRecord) -> dict[Measure, float | None]:
    begin = created(record)
    return {
        "queue": _span(begin, record.dispatched),
        "response": _span(begin, record.on_scene),
        "travel": _span(record.dispatched, record.on_scene),
        "on_scene": _span(record.on_scene, record.cleared),
    }


def _groups(record: CadRecord, districts: list[District]) -> list[tuple[GroupKind, str]]:
    begin = created(record)
    groups: list[tuple[GroupKind, str]] = [
        ("all", "all"),
        ("priority", "unknown" if record.priority is None else str(record.priority)),
        ("district", district_of(districts, record.lat, record.lon)),
    ]
    groups.append(("month", "unknown" if begin is None else begin.strftime("%Y-%m")))
    return groups


def response_metrics(records: Iterable[CadRecord], districts: list[District]) -> list[MetricRow]:
    """Every measure by every group, sorted by measure, group kind and group."""
    values: dict[tuple[Measure, GroupKind, str], list[float]] = defaultdict(list)
    missing: dict[tuple[Measure, GroupKind, str], int] = defaultdict(int)
    bad: dict[tuple[Measure, GroupKind, str], int] = defaultdict(int)
    for record in records:
        spans = durations(record)
        for kind, group in _groups(record, districts):
            for measure in MEASURES:
                key = (measure, kind, group)
                value = spans[measure]
                if value is None:
                    missing[key] += 1
                elif value < 0:
                    bad[key] += 1
                else:
                    values[key].append(value)
    keys = set(values) | set(missing) | set(bad)
    order = {kind: i for i, kind in enumerate(("all", "priority", "district", "month"))}
    rows = []
    for key in sorted(keys, key=lambda k: (MEASURES.index(k[0]), order[k[1]], k[2])):
        found = sorted(values.get(key, []))
        rows.append(MetricRow(
            measure=key[0], group_by=key[1], group=key[2], count=len(found),
            missing=missing.get(key, 0), inconsistent=bad.get(key, 0),
            median_s=round(percentile(found, 0.5), 1) if found else None,
            p90_s=round(percentile(found, 0.9), 1) if found else None))
    return rows
