"""UTC times of recordings: ISO-8601 with milliseconds and a Z, or epoch seconds."""

from __future__ import annotations

import datetime as dt
import math


def iso_utc(epoch: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_utc(value: object, name: str) -> float:
    """Epoch seconds from epoch seconds or an ISO-8601 time with a zone; ValueError says why."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            seconds = _iso(text, name)
    else:
        raise ValueError(f"{name} is required (ISO-8601 time or epoch seconds)")
    if not math.isfinite(seconds) or not 0 < seconds < 10**11:
        raise ValueError(f"{name} is out of range")
    return seconds


def _iso(text: str, name: str) -> float:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}: not a time (use ISO-8601 with a zone, e.g. "
                         "2024-05-01T12:00:00Z, or epoch seconds)") from None
    if moment.tzinfo is None:
        raise ValueError(f"{name}: give the time zone (e.g. a trailing Z for UTC)")
    return moment.timestamp()
