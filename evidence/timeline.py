"""What exists of one camera's footage over a time range, as a timeline draws it.

Spans are cut to the ranges the caller may see (``visible``): recorded segments (``server``:
recorded here; ``upload``: footage an owner's agent uploaded for a footage request), the gaps
between them inside the visible ranges, and the legal holds. Run ``camera_timeline`` on the
evidence store's thread.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from evidence.store import EvidenceStore
from recording.holds import list_holds
from recording.store import SegmentRow

GAP_SECONDS = 2.0
"""A pause between two segments shorter than this is not drawn as a gap (segments are cut at
keyframes; consecutive ones touch within a frame or two)."""


def _clip(first: float, last: float, ranges: Sequence[tuple[float, float]]
          ) -> list[tuple[float, float]]:
    parts = []
    for low, high in ranges:
        a, b = max(first, low), min(last, high)
        if a < b:
            parts.append((a, b))
    return parts


def segments_overlapping(store: EvidenceStore, camera_id: str, start: float, end: float
                         ) -> list[SegmentRow]:
    """Closed and still-open segments of a camera overlapping ``start``..``end``."""
    rows = store.fetchall(
        "SELECT * FROM segments WHERE camera_id = ? AND utc_start <= ?"
        " AND (utc_end IS NULL OR utc_end >= ?) ORDER BY utc_start, id",
        (camera_id, end, start))
    return [SegmentRow.from_row(row) for row in rows]


def camera_timeline(store: EvidenceStore, camera_id: str, start: float, end: float,
                    visible: Sequence[tuple[float, float]], now: float,
                    allowed_requests: Collection[str] | None) -> dict[str, Any]:
    """The camera's spans over ``start``..``end`` within ``visible``; uploads only of the
    footage requests in ``allowed_requests`` (all when None)."""
    ranges = _clip(start, end, visible)
    spans: list[dict[str, Any]] = []
    for row in segments_overlapping(store, camera_id, start, end):
        if row.origin != "server" and allowed_requests is not None \
                and row.request_id not in allowed_requests:
            continue
        last = now if row.utc_end is None else row.utc_end
        for a, b in _clip(row.utc_start, last, ranges):
            spans.append({"kind": "upload" if row.origin != "server" else "recorded",
                          "start": a, "end": b, "segment": row.id, "state": row.state,
                          "frames": row.frames if (a, b) == (row.utc_start, last) else None,
                          "request": row.request_id})
    spans.sort(key=lambda span: (span["start"], span["end"]))
    gaps: list[dict[str, Any]] = []
    for low, high in ranges:
        cursor = low
        for span in spans:
            if span["end"] <= low or span["start"] >= high:
                continue
            if span["start"] - cursor >= GAP_SECONDS:
                gaps.append({"kind": "gap", "start": cursor, "end": span["start"]})
            cursor = max(cursor, span["end"])
        if min(high, now) - cursor >= GAP_SECONDS:
            gaps.append({"kind": "gap", "start": cursor, "end": min(high, now)})
    holds = [
        {"kind": "hold", "id": hold.id, "case": hold.case_number, "reason": hold.reason,
         "start": max(hold.utc_start, start), "end": min(hold.utc_end, end)}
        for hold in list_holds(store, camera_id=camera_id, active_only=True)
        if hold.utc_start < end and hold.utc_end > start
    ]
    return {"camera_id": camera_id, "from": start, "to": end,
            "visible": [[a, b] for a, b in ranges], "segments": spans, "gaps": gaps,
            "holds": holds}
