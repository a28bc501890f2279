"""Turning untrusted input (API bodies, CSV rows, GeoJSON features) into valid Cameras.

Every refusal is a :class:`FieldError` naming the field, the reason and what is allowed. Input
never contains the password ciphertext: a password given in clear is encrypted at once with the
server's ``SecretBox``; one left out keeps the stored one (so editing a camera's name does not
erase its password); an empty one removes it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import replace
from functools import lru_cache
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import ValidationError

from catalog.errors import FieldError
from catalog.geo import check_fov, check_heading, check_lat, check_lon, check_range
from catalog.model import PROFILE_NAMES, Camera, Profile, Registrar, stream_urls
from rtcc.access import SecretBox
from rtcc.cameras import CAMERA_ID_RULE, is_camera_id
from rtcc.config import CameraKind, SharingLevel, TimeWindow

REF_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
RESERVED_IDS = frozenset({"import", "export", "search"})
"""Words that are routes under /api/cameras/ and so cannot be camera ids."""

CAMERA_FIELDS = (
    "id", "name", "lat", "lon", "owner_id", "site_id", "heading", "fov", "range_m", "kind",
    "sharing", "windows", "timezone", "ptz_allowed", "preload", "record", "via_agent", "profiles",
)
_KNOWN_FIELDS = frozenset(CAMERA_FIELDS)
READ_ONLY_FIELDS = frozenset({"status", "last_frame_time", "distance_m", "bearing_deg", "sees",
                              "along_m", "registered_by", "owner_sharing", "transfer"})
"""Fields the API sends out that are accepted back (a GET body may be PUT again) and ignored:
the server keeps them (who registered the URLs, the owner's choice, a pending transfer)."""
PROFILE_FIELDS = ("url", "username", "password", "transport", "transcode_h264")
_CREDENTIAL_QUERY = re.compile(r"user|pass|pwd|login|token|secret|auth|credential|key$",
                               re.IGNORECASE)
"""Query parameter names that carry credentials (``?user=..&password=..``, ``?token=``)."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_KIND_BY_VALUE = {k.value: k for k in CameraKind}
_SHARING_BY_VALUE = {s.value: s for s in SharingLevel}
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off", ""})
_KINDS = ", ".join(k.value for k in CameraKind)
_SHARING = ", ".join(s.value for s in SharingLevel)


def check_camera_id(value: object, field: str = "id") -> str:
    allowed = CAMERA_ID_RULE
    if not is_camera_id(value):
        raise FieldError(field, "not a valid camera id", allowed)
    if value in RESERVED_IDS:
        raise FieldError(field, f"{value!r} is a reserved word", allowed + "; not import, export "
                         "or search")
    return value


def _ref(value: object, field: str, default: str) -> str:
    if value is None or value == "":
        return default
    if not isinstance(value, str) or not REF_ID.fullmatch(value):
        raise FieldError(field, "not a valid identifier", "1-64 of A-Z a-z 0-9 _ . -")
    return value


def _text(value: object, field: str, low: int, high: int) -> str:
    if not isinstance(value, str):
        raise FieldError(field, "must be text", f"{low}..{high} characters")
    value = value.strip()
    if not low <= len(value) <= high or _CONTROL.search(value):
        raise FieldError(field, "wrong length or control characters",
                         f"{low}..{high} printable characters")
    return value


def _bool(value: object, field: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered == "":
            return default
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise FieldError(field, "must be true or false", "true, false (or 1, 0, yes, no)")


def _enum_kind(value: object, default: CameraKind) -> CameraKind:
    if value is None or value == "":
        return default
    kind = _KIND_BY_VALUE.get(value) if isinstance(value, str) else None
    if kind is None:
        raise FieldError("kind", f"unknown kind {str(value)[:40]!r}", _KINDS)
    return kind


def _enum_sharing(value: object, default: SharingLevel) -> SharingLevel:
    if value is None or value == "":
        return default
    level = _SHARING_BY_VALUE.get(value) if isinstance(value, str) else None
    if level is None:
        raise FieldError("sharing", f"unknown sharing level {str(value)[:40]!r}", _SHARING)
    return level


@lru_cache(maxsize=512)
def _zone_ok(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _timezone(value: object, default: str) -> str:
    if value is None or value == "":
        return default
    if not isinstance(value, str) or len(value) > 64 or not _zone_ok(value):
        raise FieldError("timezone", "unknown time zone", "an IANA zone such as America/Chicago")
    return value


# -- time windows -----------------------------------------------------------------------------


def _expand_days(text: str, field: str) -> list[str]:
    days: list[str] = []
    for part in text.split(","):
        part = part.strip().lower()
        if part in ("*", "daily"):
            days += _DAYS
        elif "-" in part:
            first, _, last = part.partition("-")
            if first not in _DAYS or last not in _DAYS:
                raise FieldError(field, f"unknown days {part!r}", "mon..sun, e.g. mon-fri")
            a, b = _DAYS.index(first), _DAYS.index(last)
            days += [_DAYS[i % 7] for i in range(a, b + 1 if b >= a else b + 8)]
        elif part in _DAYS:
            days.append(part)
        else:
            raise FieldError(field, f"unknown day {part!r}", "mon, tue, wed, thu, fri, sat, sun")
    return list(dict.fromkeys(days))


def parse_windows_text(text: str, field: str = "windows") -> tuple[TimeWindow, ...]:
    """``"mon-fri 08:00-18:00; sat,sun 10:00-14:00"`` (the CSV form)."""
    windows: list[dict[str, Any]] = []
    for index, chunk in enumerate(p for p in text.split(";") if p.strip()):
        where = f"{field}[{index}]"
        parts = chunk.split()
        if len(parts) != 2 or "-" not in parts[1]:
            raise FieldError(where, f"cannot read {chunk.strip()[:40]!r}",
                             "DAYS HH:MM-HH:MM; ... e.g. mon-fri 08:00-18:00")
        start, _, end = parts[1].partition("-")
        windows.append({"days": _expand_days(parts[0], where), "start": start, "end": end})
    return _windows(windows, field)


def format_windows(windows: tuple[TimeWindow, ...]) -> str:
    return "; ".join(f"{','.join(w.days)} {w.start}-{w.end}" for w in windows)


def _windows(value: object, field: str = "windows") -> tuple[TimeWindow, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return parse_windows_text(value, field)
    if not isinstance(value, list) or len(value) > 50:
        raise FieldError(field, "must be a list of windows", "at most 50 of "
                         '{"days": ["mon", ...], "start": "HH:MM", "end": "HH:MM"}')
    out: list[TimeWindow] = []
    for index, item in enumerate(value):
        try:
            out.append(TimeWindow.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise FieldError(f"{field}[{index}]{'.' + loc if loc else ''}", first["msg"],
                             "days mon..sun, start and end HH:MM between 00:00 and 24:00"
                             ) from None
    return tuple(out)


# -- profiles ---------------------------------------------------------------------------------


def check_stream_url(value: object, field: str) -> str:
    allowed = "rtsp:// or rtsps:// URL without credentials, at most 2048 characters"
    if not isinstance(value, str) or not value.startswith(("rtsp://", "rtsps://")):
        raise FieldError(field, "must be an rtsp:// or rtsps:// URL", allowed)
    if len(value) > 2048 or any(ord(c) <= 32 or ord(c) == 127 for c in value):
        raise FieldError(field, "too long or contains spaces or control characters", allowed)
    # Any "@" is refused, not only one in the authority: "rtsp://user:pa/ss@host/" parses as a
    # host "user" with a path holding the password, which would then be stored in clear.
    if "@" in value:
        raise FieldError(field, "put credentials in username and password, not in the URL",
                         allowed)
    names = [name for name, _ in parse_qsl(urlsplit(value).query, keep_blank_values=True)]
    secret = next((name for name in names if _CREDENTIAL_QUERY.search(name)), None)
    if secret is not None:
        raise FieldError(field, f"the URL's query string carries credentials ({secret[:32]}=): "
                         f"move the user name and password to the username and password "
                         f"fields (the password is stored encrypted), and remove them from "
                         f"the URL", allowed)
    return value


def _profile(
    name: str, value: object, box: SecretBox | None, previous: Profile | None
) -> Profile:
    field = f"profiles.{name}"
    if not isinstance(value, Mapping):
        raise FieldError(field, "must be an object", "url, username, password, transport")
    for key in value:
        if key not in PROFILE_FIELDS and key != "has_password":
            raise FieldError(f"{field}.{key}", "unknown field", ", ".join(PROFILE_FIELDS))
    if "url" not in value and previous is not None:
        # Who may not read stream addresses can still write back what they read: an absent
        # address (and user name) keeps the stored one.
        value = {"url": previous.url, "username": previous.username, **value}
    url = check_stream_url(value.get("url"), f"{field}.url")
    username = value.get("username") or ""
    if not isinstance(username, str) or len(username) > 128:
        raise FieldError(f"{field}.username", "must be text", "0..128 characters")
    transport = value.get("transport") or "tcp"
    if transport not in ("tcp", "udp"):
        raise FieldError(f"{field}.transport", f"unknown transport {str(transport)[:10]!r}",
                         "tcp, udp")
    password = value.get("password")
    if password is None:
        ciphertext = previous.password_ciphertext if previous is not None else ""
    elif not isinstance(password, str) or len(password) > 256:
        raise FieldError(f"{field}.password", "must be text", "0..256 characters")
    elif password == "":
        ciphertext = ""
    elif box is None:
        raise FieldError(f"{field}.password", "this server has no secret box to store passwords",
                         "no password, or configure the server's secret key")
    else:
        ciphertext = box.encrypt(password)
    transcode = value.get("transcode_h264", previous.transcode_h264 if previous else False)
    if not isinstance(transcode, bool):
        raise FieldError(f"{field}.transcode_h264", "must be true or false", "true, false")
    return Profile(url=url, username=username, password_ciphertext=ciphertext,
                   transport=cast(Literal["tcp", "udp"], transport), transcode_h264=transcode)


def _profiles(
    value: object, box: SecretBox | None, previous: Camera | None
) -> dict[str, Profile]:
    if value is None or value == "":
        return {}
    if not isinstance(value, Mapping):
        raise FieldError("profiles", "must be an object", "main and/or sub profiles")
    out: dict[str, Profile] = {}
    for name, profile in value.items():
        if name not in PROFILE_NAMES:
            raise FieldError(f"profiles.{name}", "unknown profile", "main, sub")
        before = previous.profiles.get(name) if previous is not None else None
        out[name] = _profile(name, profile, box, before)
    return out


# -- cameras ----------------------------------------------------------------------------------


def parse_camera(
    data: Mapping[str, Any],
    box: SecretBox | None,
    previous: Camera | None = None,
) -> Camera:
    """A camera from a flat mapping of its fields (JSON body, GeoJSON properties, CSV row)."""
    if not _KNOWN_FIELDS.issuperset(data):
        for key in data:
            if key not in _KNOWN_FIELDS and key not in READ_ONLY_FIELDS:
                raise FieldError(str(key)[:64], "unknown field", ", ".join(CAMERA_FIELDS))
    get = data.get
    for key in ("id", "name", "lat", "lon"):
        if get(key) in _ABSENT:
            raise FieldError(key, "is required", _REQUIRED_HINT[key])
    # Optional fields left out (None or an empty CSV cell) take their defaults.
    owner_id, site_id, heading, fov, range_m, kind, sharing, windows, timezone = (
        get(name) for name in ("owner_id", "site_id", "heading", "fov", "range_m", "kind",
                               "sharing", "windows", "timezone"))
    flags = [get(name) for name in _FLAGS]
    camera = Camera(
        id=check_camera_id(get("id")),
        name=_text(get("name"), "name", 1, 200),
        lat=check_lat(get("lat")),
        lon=check_lon(get("lon")),
        owner_id="department" if owner_id in _ABSENT else _ref(owner_id, "owner_id", ""),
        site_id="" if site_id in _ABSENT else _ref(site_id, "site_id", ""),
        heading=0.0 if heading in _ABSENT else check_heading(heading),
        fov=90.0 if fov in _ABSENT else check_fov(fov),
        range_m=60.0 if range_m in _ABSENT else check_range(range_m),
        kind=CameraKind.BUSINESS if kind in _ABSENT else _enum_kind(kind, CameraKind.BUSINESS),
        sharing=SharingLevel.REGISTRY_ONLY if sharing in _ABSENT else _enum_sharing(
            sharing, SharingLevel.REGISTRY_ONLY),
        windows=() if windows in _ABSENT else _windows(windows),
        timezone="UTC" if timezone in _ABSENT else _timezone(timezone, "UTC"),
        ptz_allowed=flags[0] is not None and _bool(flags[0], "ptz_allowed", False),
        preload=flags[1] is not None and _bool(flags[1], "preload", False),
        record=flags[2] is not None and _bool(flags[2], "record", False),
        via_agent=flags[3] is not None and _bool(flags[3], "via_agent", False),
        profiles=_profiles(get("profiles"), box, previous),
    )
    if previous is not None:
        camera = replace(camera, status=previous.status, last_frame_time=previous.last_frame_time,
                         registered_by=previous.registered_by,
                         owner_sharing=previous.owner_sharing, transfer=previous.transfer)
    return camera


def registered(camera: Camera, before: Camera | None, registrar: Registrar) -> Camera:
    """``camera`` marked as registered by ``registrar`` if it is new or its stream addresses
    changed; an edit that keeps the addresses keeps who registered them."""
    if before is not None and stream_urls(camera) == stream_urls(before):
        return camera
    return replace(camera, registered_by=registrar)


_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}
StreamAddress = tuple[str, str, int, str]


def stream_address(url: str) -> StreamAddress:
    """What makes two stream URLs the same camera: scheme, host, port and path, compared
    normalised (case, default port, repeated or trailing slashes, percent escapes), with
    credentials and the query string ignored."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    with contextlib.suppress(ValueError):  # a name stays as written
        host = ipaddress.ip_address(host).compressed
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        port = 0
    path = re.sub(r"/+", "/", unquote(parts.path)).rstrip("/").casefold()
    return scheme, host, port, path or "/"


_ABSENT = (None, "")
_FLAGS = ("ptz_allowed", "preload", "record", "via_agent")
_REQUIRED_HINT = {
    "id": "1-64 of a-z 0-9 _ -",
    "name": "1..200 characters",
    "lat": "-90..90 degrees",
    "lon": "-180..180 degrees",
}
