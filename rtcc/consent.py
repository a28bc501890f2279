"""What an owner's sharing level allows, decided without side effects (pure policy: the
security core decides live views with it, the console previews them, recording checks windows).

- ``registry_only``: never streams (location only; ask the owner for footage).
- ``on_request``: never live; an approved footage request grants recorded footage of its range.
- ``live_emergency``: only while an incident grant is valid (the camera was linked to an active
  incident or panic alert less than ``security.emergency_grant_minutes`` ago).
- ``live_always``: any staff viewer with a purpose.
Time windows (camera's local time) restrict every level for everyone but the owner.
An owner always sees their own cameras.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rtcc.access import CameraConsent
from rtcc.config import SharingLevel, TimeWindow
from rtcc.policy import Role

LIVE_VIEWER_ROLES = frozenset({Role.ADMIN, Role.SUPERVISOR, Role.ANALYST, Role.INVESTIGATOR})
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    status: int = 200
    """HTTP status to answer with when refused (403, or 400 for a missing purpose)."""
    incident: str = ""
    basis: str = ""
    """What allows the view: ``owner``, ``sharing`` (the owner's sharing level and window) or
    ``incident`` (an incident grant)."""
    valid_until: float | None = None
    """When a sharing window allowing the view ends (None: no window limits it)."""


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def in_windows(windows: Sequence[TimeWindow], timezone: str, when: float) -> bool:
    """True when ``when`` (epoch seconds) falls in one of the weekly windows, or none are set.

    A window whose end is before its start runs over midnight into the next day.
    Raises ``ZoneInfoNotFoundError`` for an unknown time zone.
    """
    if not windows:
        return True
    local = dt.datetime.fromtimestamp(when, tz=ZoneInfo(timezone))
    day = _DAYS[local.weekday()]
    previous_day = _DAYS[(local.weekday() - 1) % 7]
    minute = local.hour * 60 + local.minute
    for window in windows:
        start, end = _minutes(window.start), _minutes(window.end)
        if start <= end:
            if day in window.days and start <= minute < end:
                return True
        elif (day in window.days and minute >= start) or (
            previous_day in window.days and minute < end
        ):
            return True
    return False


def window_end(windows: Sequence[TimeWindow], timezone: str, when: float) -> float | None:
    """The moment (epoch seconds) the windows stop covering ``when``; None when no window is
    set or ``when`` is outside them. Adjoining windows count as one."""
    if not windows or not in_windows(windows, timezone, when):
        return None
    zone = ZoneInfo(timezone)
    moment = when
    for _ in range(16):  # adjoining windows: at most a few steps to the real end
        local = dt.datetime.fromtimestamp(moment, tz=zone)
        ends: list[dt.datetime] = []
        for back in (0, 1):
            day = local.date() - dt.timedelta(days=back)
            name = _DAYS[day.weekday()]
            for window in windows:
                if name not in window.days:
                    continue
                start, end = _minutes(window.start), _minutes(window.end)
                begin = dt.datetime.combine(day, dt.time(start // 60, start % 60), tzinfo=zone)
                length = (end - start) % (24 * 60) or 24 * 60
                finish = begin + dt.timedelta(minutes=length)
                if begin <= local < finish:
                    ends.append(finish)
        if not ends:
            return moment
        moment = max(end.timestamp() for end in ends)
        if not in_windows(windows, timezone, moment):
            return moment
    return moment


def clock_time(when: float, timezone: str) -> str:
    """``when`` as HH:MM in the camera's time zone (UTC when the zone is unknown)."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return dt.datetime.fromtimestamp(when, tz=zone).strftime("%H:%M")


def decide(
    consent: CameraConsent,
    *,
    role: Role,
    owner_id: str | None,
    purpose: str,
    requested_incident: str,
    active_incidents: Sequence[str],
    now: float,
) -> Decision:
    """May this viewer watch this camera live now? ``active_incidents``: the incidents holding
    a valid grant on the camera."""
    if role == Role.OWNER:
        if owner_id is not None and owner_id == consent.owner_id:
            return Decision(True, "owner viewing their own camera", basis="owner")
        return Decision(False, "owners may view only their own cameras", 403)
    if role not in LIVE_VIEWER_ROLES:
        return Decision(False, f"the {role} role may not view cameras", 403)
    if not purpose and not requested_incident:
        return Decision(False, "a live view needs a purpose: pass 'incident' (an incident id) "
                               "or 'purpose' (the reason)", 400)
    if consent.sharing == SharingLevel.REGISTRY_ONLY:
        return Decision(False, "the owner registered this camera for its location only; ask the "
                               "owner for footage", 403)
    try:
        windows_ok = in_windows(consent.windows, consent.timezone, now)
    except (ZoneInfoNotFoundError, ValueError):
        return Decision(False, "the camera's time zone is unknown, so its sharing windows cannot "
                               "be checked", 403)
    if not windows_ok:
        return Decision(False, "outside the owner's sharing hours for this camera", 403)
    if requested_incident and requested_incident not in active_incidents and (
        consent.sharing == SharingLevel.LIVE_EMERGENCY
    ):
        return Decision(False, f"incident {requested_incident!r} is not active, not linked to "
                               "this camera, or its grant expired (link the camera to the "
                               "incident again to renew it)", 403)
    if consent.sharing == SharingLevel.ON_REQUEST:
        return Decision(False, "this camera is shared on request only: an approved footage "
                               "request gives its recorded footage of the requested time, never "
                               "live video", 403)
    until = window_end(consent.windows, consent.timezone, now)
    if consent.sharing == SharingLevel.LIVE_EMERGENCY:
        if not active_incidents:
            return Decision(False, "this camera is shared live only during an emergency and it "
                                   "is not linked to an active incident or panic alert (or the "
                                   "incident's grant expired)", 403)
        incident = requested_incident or active_incidents[0]
        return Decision(True, "linked to an active incident", incident=incident,
                        basis="incident", valid_until=until)
    return Decision(True, "shared live", incident=requested_incident, basis="sharing",
                    valid_until=until)


def consent_summary(consent: CameraConsent | None) -> dict[str, object]:
    """A consent as the audit log records it (before and after a change)."""
    if consent is None:
        return {"registered": False}
    return {
        "sharing": str(consent.sharing),
        "windows": [w.model_dump() for w in consent.windows],
        "ptz_allowed": consent.ptz_allowed,
        "timezone": consent.timezone,
    }
