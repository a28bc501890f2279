"""An incident update as read from a CAD feed (EIDO, or a mapped CSV/JSON webhook).

Pure values: frozen dataclasses, no storage. Updates of one incident merge by tracking id and
last update time (``merge``): an older update never overwrites a newer one.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime

from rtcc.errors import RtccError

TRACKING_ID_PREFIX = "urn:emergency:uid:incidentid:"
# NENA-STA-021: urn:emergency:uid:incidentid:<unique string>:<domain of the issuing element>.
_TRACKING_ID = re.compile(r"urn:emergency:uid:incidentid:[A-Za-z0-9._~%!$&'()*+,;=@:-]{3,200}",
                          re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One field that could not be read: where (a JSON path, a column), what was expected, what
    was found (shortened)."""

    path: str
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.path}: expected {self.expected}, found {self.found}"


class IncidentParseError(RtccError):
    """A CAD document was refused; ``problems`` lists every field that could not be read."""

    def __init__(self, what: str, problems: list[FieldProblem] | tuple[FieldProblem, ...]) -> None:
        self.problems = tuple(problems)
        shown = "; ".join(str(p) for p in self.problems[:10])
        more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
        super().__init__(f"{what} was refused, {len(self.problems)} problem(s): {shown}{more}. "
                         "Fix these fields in the CAD integration and send the update again.")


def describe(value: object, limit: int = 60) -> str:
    """A short, safe rendering of a found value for an error message."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"an array of {len(value)}"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def is_tracking_id(value: str) -> bool:
    return _TRACKING_ID.fullmatch(value) is not None


def normalise_tracking_id(value: str) -> str:
    """The tracking id with its URN prefix in lower case (URN scheme and NID are case-blind)."""
    return TRACKING_ID_PREFIX + value[len(TRACKING_ID_PREFIX):]


# -- Locations ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PointLocation:
    """A WGS 84 point. ``radius_m`` is the uncertainty: a circle's radius, an ellipse's or
    ellipsoid's semi-major axis (the ellipse is approximated by the circle that contains it), or
    None for a bare point. ``shape`` names the PIDF-LO shape it came from."""

    lat: float
    lon: float
    radius_m: float | None = None
    shape: str = "point"


@dataclass(frozen=True, slots=True)
class PolygonLocation:
    """A WGS 84 polygon: (lat, lon) vertices, the closing vertex not repeated."""

    vertices: tuple[tuple[float, float], ...]

    def centroid(self) -> tuple[float, float]:
        """The vertices' mean: good enough for ranking cameras within a city block."""
        n = len(self.vertices)
        return (sum(v[0] for v in self.vertices) / n, sum(v[1] for v in self.vertices) / n)


@dataclass(frozen=True, slots=True)
class CivicLocation:
    """A civic address: PIDF-LO CA element names (``HNO``, ``RD``, ``STS``, ``A3``...) with
    their values, and the address on one line for people and for the geocoder."""

    fields: tuple[tuple[str, str], ...]
    text: str

    def get(self, name: str) -> str | None:
        for key, value in self.fields:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class ReferenceLocation:
    """A ``locationByReferenceUrl``: not fetched while parsing (only configured LIS hosts are)."""

    url: str


Location = PointLocation | PolygonLocation | CivicLocation | ReferenceLocation


# -- The update --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CadTimes:
    """The CAD's response timestamps; None when the feed did not say."""

    call_received: datetime | None = None
    entered: datetime | None = None
    dispatched: datetime | None = None
    en_route: datetime | None = None
    on_scene: datetime | None = None
    cleared: datetime | None = None

    def filled_from(self, older: CadTimes) -> CadTimes:
        """These times, each missing one taken from ``older`` (a time once reported stays)."""
        return CadTimes(**{f.name: getattr(self, f.name) or getattr(older, f.name)
                           for f in dataclasses.fields(CadTimes)})


MAX_NOTES = 20
MAX_NOTE_CHARS = 1000


@dataclass(frozen=True, slots=True)
class IncidentUpdate:
    """One incident's state as a CAD reported it at ``updated_at``.

    ``location_problems`` lists locations in the document that could not be read (hostile or
    malformed PIDF-LO, an unsupported shape): the update is still accepted so nothing is lost,
    and the sender is told which field failed.
    """

    tracking_id: str
    updated_at: datetime
    type_code: str | None = None
    type_text: str | None = None
    common_type: str | None = None
    priority: int | None = None
    status: str | None = None
    location: Location | None = None
    times: CadTimes = CadTimes()
    units: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    location_problems: tuple[FieldProblem, ...] = ()
    source: str = "eido"

    def __post_init__(self) -> None:
        if self.updated_at.tzinfo is None or self.updated_at.utcoffset() is None:
            raise ValueError("IncidentUpdate.updated_at must be timezone-aware")


def newer_than(a: IncidentUpdate, b: IncidentUpdate) -> bool:
    """True when ``a`` is strictly newer than ``b`` (same incident, later ``updated_at``)."""
    if a.tracking_id != b.tracking_id:
        raise ValueError(f"cannot compare updates of different incidents "
                         f"({a.tracking_id!r} and {b.tracking_id!r})")
    return a.updated_at > b.updated_at


def merge(current: IncidentUpdate | None, incoming: IncidentUpdate) -> IncidentUpdate:
    """The incident's state after ``incoming`` arrives.

    - An older update never overwrites a newer one: ``current`` is kept as it is.
    - A tie (same ``updated_at``) keeps ``current``: a CAD that resends a document at the same
      time stamp is retrying, and the first copy already counted. The caller can tell a tie
      from a change by comparing the result with ``current``.
    - A newer update replaces every field, except CAD times it leaves out (a time once reported
      stays) and a location it no longer carries (a missing location is not "moved nowhere").
    """
    if current is None:
        return incoming
    if not newer_than(incoming, current):
        return current
    return dataclasses.replace(
        incoming,
        times=incoming.times.filled_from(current.times),
        location=incoming.location if incoming.location is not None else current.location,
    )
