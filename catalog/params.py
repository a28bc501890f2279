"""Reading HTTP query strings and JSON bodies into catalog queries (FieldError on bad input)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, TypeVar

from multidict import MultiMapping

from catalog.errors import FieldError
from catalog.geo import MAX_RADIUS_M, check_radius, parse_point
from catalog.model import CameraStatus
from catalog.query import MAX_PAGE, Filters, Page
from rtcc.config import CameraKind, SharingLevel

E = TypeVar("E", bound=StrEnum)

FILTER_PARAMS = ("sharing", "status", "kind", "owner")
MAX_OFFSET = 10_000
DEFAULT_SEES_NEAR_M = 100.0
"""With ``sees``: cameras this close that do not see the point are listed after those that do."""

LIST_PARAMS = frozenset({"near", "sees", "radius_m", "limit", "offset", "after", "access",
                         *FILTER_PARAMS})


def _enum_set(values: Iterable[str], enum: type[E], field: str) -> frozenset[E]:
    out: set[E] = set()
    for value in values:
        try:
            out.add(enum(value))
        except ValueError:
            raise FieldError(field, f"unknown value {value[:40]!r}",
                             ", ".join(member.value for member in enum)) from None
    return frozenset(out)


def _split(values: Iterable[object], field: str) -> list[str]:
    out: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise FieldError(field, "must be text", "a list of names")
        out += [part.strip() for part in value.split(",") if part.strip()]
    return out


def filters_from(values: Mapping[str, Iterable[object]]) -> Filters:
    """Filters from {name: [values...]} (each value may itself be comma-separated)."""
    return Filters(
        sharing=_enum_set(_split(values.get("sharing", ()), "sharing"), SharingLevel, "sharing"),
        status=_enum_set(_split(values.get("status", ()), "status"), CameraStatus, "status"),
        kind=_enum_set(_split(values.get("kind", ()), "kind"), CameraKind, "kind"),
        owner=frozenset(_split(values.get("owner", ()), "owner")),
    )


def query_filters(query: MultiMapping[str]) -> Filters:
    return filters_from({name: query.getall(name, []) for name in FILTER_PARAMS})


def integer(value: object, field: str, low: int, high: int) -> int:
    allowed = f"{low}..{high}"
    if isinstance(value, bool):
        raise FieldError(field, "must be a whole number", allowed)
    if isinstance(value, str):
        value = value.strip()
        if not value.lstrip("-").isdigit() or len(value) > 12:
            raise FieldError(field, "must be a whole number", allowed)
        value = int(value)
    if not isinstance(value, int):
        raise FieldError(field, "must be a whole number", allowed)
    if not low <= value <= high:
        raise FieldError(field, f"{value} is out of range", allowed)
    return value


def page_from(values: Mapping[str, Any], default_limit: int = 100) -> Page:
    limit = values.get("limit")
    offset = values.get("offset")
    return Page(
        offset=0 if offset is None else integer(offset, "offset", 0, MAX_OFFSET),
        limit=default_limit if limit is None else integer(limit, "limit", 1, MAX_PAGE),
    )


def check_query_names(query: MultiMapping[str], allowed: frozenset[str]) -> None:
    for name in query:
        if name not in allowed:
            raise FieldError(name[:64], "unknown query parameter", ", ".join(sorted(allowed)))


def point(query: MultiMapping[str], name: str) -> tuple[float, float] | None:
    value = query.get(name)
    return None if value is None else parse_point(value, name)


def radius(query: MultiMapping[str], default: float) -> float:
    value = query.get("radius_m")
    if value is None:
        return default
    return check_radius(value, "radius_m", MAX_RADIUS_M)


def near_radius(query: MultiMapping[str]) -> float:
    """``radius_m`` with ``sees``: 0 turns the merely-near cameras off."""
    value = query.get("radius_m")
    if value is None:
        return DEFAULT_SEES_NEAR_M
    if value.strip() in ("0", "0.0"):
        return 0.0
    return check_radius(value, "radius_m", MAX_RADIUS_M)
