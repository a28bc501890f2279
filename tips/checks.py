"""What a tip's text must be: the refusals a tipster sees, each saying what to change."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rtcc.errors import RtccError

MAX_WHAT = 5000
MAX_SHORT = 300
MAX_MESSAGE = 2000
MAX_LINKS = 2
REPEAT_WINDOW_S = 3600.0
MAX_REPEATS = 2
"""The same text may be sent this many times an hour (a tipster retrying); more is a flood."""
_LINK = re.compile(r"https?://|www\.", re.IGNORECASE)
_RUN = re.compile(r"(.)\1{49,}", re.DOTALL)


class TextRefused(RtccError):
    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class TipText:
    what: str
    where: str
    when: str
    contact: str
    lat: float | None
    lon: float | None


def _text(fields: dict[str, Any], name: str, limit: int, label: str) -> str:
    value = fields.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TextRefused(f"{label} must be text", name)
    value = value.strip()
    if len(value) > limit:
        raise TextRefused(f"{label} is {len(value)} characters long; keep it under {limit}",
                          name)
    return value


def _spam(text: str, label: str, name: str) -> None:
    if len(_LINK.findall(text)) > MAX_LINKS:
        raise TextRefused(f"{label} has more than {MAX_LINKS} links; describe what you saw "
                          "instead", name)
    if _RUN.search(text):
        raise TextRefused(f"{label} repeats one character 50 times or more; please write "
                          "what happened", name)


def _coordinate(fields: dict[str, Any], name: str, bound: float) -> float | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TextRefused(f"{name} must be a number", name)
    try:
        number = float(value)
    except ValueError:
        raise TextRefused(f"{name} must be a number", name) from None
    if not -bound <= number <= bound:
        raise TextRefused(f"{name} must be between -{bound:g} and {bound:g}", name)
    return number


def tip_text(fields: dict[str, Any]) -> TipText:
    what = _text(fields, "what", MAX_WHAT, "What happened")
    if len(what) < 10:
        raise TextRefused("Tell us what happened in a few words (at least 10 characters)",
                          "what")
    _spam(what, "What happened", "what")
    where = _text(fields, "where", MAX_SHORT, "Where")
    _spam(where, "Where", "where")
    lat = _coordinate(fields, "lat", 90.0)
    lon = _coordinate(fields, "lon", 180.0)
    if (lat is None) != (lon is None):
        raise TextRefused("a map point needs both a latitude and a longitude", "lat")
    return TipText(what=what, where=where, when=_text(fields, "when", MAX_SHORT, "When"),
                   contact=_text(fields, "contact", MAX_SHORT, "Contact"), lat=lat, lon=lon)


def message_text(fields: dict[str, Any]) -> str:
    body = _text(fields, "body", MAX_MESSAGE, "The message")
    if not body:
        raise TextRefused("The message is empty", "body")
    _spam(body, "The message", "body")
    return body


class RepeatGuard:
    """Refuses the same text sent over and over (a flood that varies its address). Keeps
    short hashes of recent texts, in memory only, for an hour."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._seen: dict[bytes, list[float]] = {}

    def check(self, text: str) -> None:
        now = self._clock()
        if len(self._seen) > 10_000:
            self._seen = {k: v for k, v in self._seen.items() if v[-1] > now - REPEAT_WINDOW_S}
        digest = hashlib.sha256(" ".join(text.lower().split()).encode()).digest()[:12]
        times = [t for t in self._seen.get(digest, []) if t > now - REPEAT_WINDOW_S]
        if len(times) >= MAX_REPEATS:
            raise TextRefused("This exact text was already sent; your tip is received. Use "
                              "your tip number and passphrase to add to it", "what")
        times.append(now)
        self._seen[digest] = times
