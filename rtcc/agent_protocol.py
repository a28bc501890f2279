"""The control protocol between an on-premises agent and the server (JSON over one WebSocket).

Agent to server: ``hello``, ``heartbeat``, ``inventory`` (cameras, never their passwords),
``result`` (the answer to a command), ``event`` (a stream it publishes ended).
Server to agent: ``welcome``, ``inventory_ack`` (the camera ids the server assigned),
``command`` (``start_stream``, ``stop_stream``, ``snapshot``, ``ptz``, ``sync_point``,
``upload_footage``). ``ptz`` carries ``move`` (velocities and timeout), ``stop``, ``presets:
true`` (answer ``{"presets": [{"token", "name"}]}``) or ``goto_preset`` (a token; answer
``{"preset": token}``); an agent that predates presets stops the camera instead and its answer
lacks those keys, which the server reports as an agent to update.

``upload_footage`` (``FootageOrder``): an item of a footage request was approved for one of the
agent's cameras. Fields ``key`` (the camera's key on the agent), ``camera_id``, ``request_id``,
``start`` and ``end`` (UTC epoch seconds), ``case``. The agent answers at once (``data``:
``{"accepted": true, "state": ...}``) and uploads the segments of its rolling buffer that cover
the range in the background, through the resumable upload API (``evidence.uploads``);
when it cannot, it reports why there (``.../fail``), so the request shows it.

Both sides validate what they receive with the functions here; anything unexpected is a
``ProtocolError`` that names the field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from rtcc.errors import RtccError

VERSION = 1
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""A snapshot (at most 4 MiB of JPEG, Base64) is the largest message."""
MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024
MAX_CAMERAS = 64
MAX_TEXT = 200
HEARTBEAT_SECONDS = 15.0
PROFILES = ("main", "sub")
ACTIONS = ("start_stream", "stop_stream", "snapshot", "ptz", "sync_point", "upload_footage")
CLOSE_REVOKED = 4003
"""WebSocket close code the server uses when the agent's credential was revoked."""
CLOSE_REPLACED = 4009
"""The same agent opened a newer control connection."""

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._/\[\]@-]{0,199}$")
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
"""Server-assigned camera ids and footage request ids: safe in a URL path as they are."""

Profile = Literal["main", "sub"]


class ProtocolError(RtccError):
    """A control message that does not follow this protocol."""


def encode(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields}, separators=(",", ":"))


def decode(text: str) -> dict[str, Any]:
    if len(text) > MAX_MESSAGE_BYTES:
        raise ProtocolError("the message is too large")
    try:
        message = json.loads(text)
    except ValueError:
        raise ProtocolError("the message is not JSON") from None
    except RecursionError:  # "[[[[...": nesting deeper than the parser's stack
        raise ProtocolError("the message nests too deeply") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("the message must be a JSON object with a 'type'")
    return message


def text_field(data: dict[str, Any], name: str, *, limit: int = MAX_TEXT,
               required: bool = False) -> str:
    value = data.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ProtocolError(f"{name} must be text")
    value = "".join(ch for ch in value if ch.isprintable())[:limit]
    if required and not value:
        raise ProtocolError(f"{name} is required")
    return value


def number_field(data: dict[str, Any], name: str, *, low: float, high: float,
                 default: float = 0.0) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"{name} must be a number")
    if not low <= float(value) <= high:
        raise ProtocolError(f"{name} must be between {low:g} and {high:g}")
    return float(value)


MAX_PRESETS = 256


def preset_token(value: object) -> str:
    """A PTZ preset's token as the camera names it (``ptz`` command ``goto_preset``)."""
    if not isinstance(value, str) or not 0 < len(value) <= 64 or not value.isprintable():
        raise ProtocolError("preset must be a preset token of 1 to 64 printable characters")
    return value


def presets_field(value: object) -> list[dict[str, str]]:
    """The agent's answer to ``ptz`` with ``presets: true``: ``[{"token", "name"}]``."""
    if not isinstance(value, list) or len(value) > MAX_PRESETS:
        raise ProtocolError(f"presets must be a list of at most {MAX_PRESETS}")
    presets = []
    for item in value:
        if not isinstance(item, dict):
            raise ProtocolError("each preset must be an object with token and name")
        name = item.get("name", "")
        presets.append({"token": preset_token(item.get("token")),
                        "name": name[:100] if isinstance(name, str) else ""})
    return presets


def camera_key(value: object) -> str:
    if not isinstance(value, str) or not _KEY.fullmatch(value):
        raise ProtocolError("a camera key must be 1-200 characters: letters, digits, ':._/-@[]'")
    return value


def profile_name(value: object) -> Profile:
    if value == "main":
        return "main"
    if value == "sub":
        return "sub"
    raise ProtocolError("profile must be 'main' or 'sub'")


@dataclass(frozen=True, slots=True)
class ProfileReport:
    name: Profile
    encoding: str
    width: int
    height: int
    fps: float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "encoding": self.encoding, "width": self.width,
                "height": self.height, "fps": self.fps}

    @classmethod
    def from_json(cls, data: object) -> ProfileReport:
        if not isinstance(data, dict):
            raise ProtocolError("a profile must be an object")
        return cls(
            name=profile_name(data.get("name")),
            encoding=text_field(data, "encoding", limit=16),
            width=int(number_field(data, "width", low=0, high=16384)),
            height=int(number_field(data, "height", low=0, high=16384)),
            fps=number_field(data, "fps", low=0, high=1000),
        )


@dataclass(frozen=True, slots=True)
class CameraReport:
    """One camera as the agent reports it: what it is and whether it works, never how to log
    in to it."""

    key: str
    """Stable on the agent: ``onvif:HOST:PORT`` or ``rtsp:HOST:PORT/PATH``."""
    name: str
    source: Literal["onvif", "rtsp"]
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""
    profiles: tuple[ProfileReport, ...] = ()
    ptz: bool = False
    snapshot: bool = False
    status: Literal["ok", "error"] = "ok"
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "name": self.name, "source": self.source,
            "manufacturer": self.manufacturer, "model": self.model, "firmware": self.firmware,
            "profiles": [profile.to_json() for profile in self.profiles],
            "ptz": self.ptz, "snapshot": self.snapshot, "status": self.status,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: object) -> CameraReport:
        if not isinstance(data, dict):
            raise ProtocolError("a camera must be an object")
        source = data.get("source")
        if source not in ("onvif", "rtsp"):
            raise ProtocolError("source must be 'onvif' or 'rtsp'")
        status = data.get("status", "ok")
        if status not in ("ok", "error"):
            raise ProtocolError("status must be 'ok' or 'error'")
        raw_profiles = data.get("profiles", [])
        if not isinstance(raw_profiles, list) or len(raw_profiles) > len(PROFILES):
            raise ProtocolError("profiles must be a list of at most two profiles")
        profiles = tuple(ProfileReport.from_json(item) for item in raw_profiles)
        if len({profile.name for profile in profiles}) != len(profiles):
            raise ProtocolError("a profile name is reported twice")
        return cls(
            key=camera_key(data.get("key")),
            name=text_field(data, "name") or "camera",
            source="onvif" if source == "onvif" else "rtsp",
            manufacturer=text_field(data, "manufacturer"),
            model=text_field(data, "model"),
            firmware=text_field(data, "firmware", limit=64),
            profiles=profiles,
            ptz=data.get("ptz") is True,
            snapshot=data.get("snapshot") is True,
            status="error" if status == "error" else "ok",
            error=text_field(data, "error", limit=300),
        )


def parse_inventory(message: dict[str, Any]) -> tuple[list[CameraReport], list[str]]:
    """The valid cameras of an ``inventory`` message and a problem per invalid one."""
    cameras = message.get("cameras")
    if not isinstance(cameras, list):
        raise ProtocolError("inventory.cameras must be a list")
    if len(cameras) > MAX_CAMERAS:
        raise ProtocolError(f"an agent may report at most {MAX_CAMERAS} cameras")
    valid: list[CameraReport] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(cameras):
        try:
            report = CameraReport.from_json(item)
        except (ProtocolError, ValueError, TypeError) as exc:
            problems.append(f"cameras[{index}]: {exc}")
            continue
        if report.key in seen:
            problems.append(f"cameras[{index}]: key reported twice")
            continue
        seen.add(report.key)
        valid.append(report)
    return valid, problems


def server_id(value: object, name: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ProtocolError(f"{name} must be 1-64 lowercase letters, digits, '-' or '_'")
    return value


@dataclass(frozen=True, slots=True)
class FootageOrder:
    """An approved footage request item for one of the agent's cameras (``upload_footage``)."""

    request_id: str
    camera_id: str
    start: float
    end: float
    case: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "camera_id": self.camera_id,
                "start": self.start, "end": self.end, "case": self.case}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FootageOrder:
        start = number_field(data, "start", low=0, high=1e11)
        end = number_field(data, "end", low=0, high=1e11)
        if end <= start:
            raise ProtocolError("end must be after start")
        return cls(
            request_id=server_id(data.get("request_id"), "request_id"),
            camera_id=server_id(data.get("camera_id"), "camera_id"),
            start=start, end=end, case=text_field(data, "case", limit=64),
        )
