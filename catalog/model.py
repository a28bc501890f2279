"""What the catalog knows: cameras, their owners, sites and the agents that reach them.

Camera passwords exist here only as ciphertext made by the server's ``SecretBox``; the public
form of a camera (:func:`camera_public`) carries ``has_password`` instead, never the ciphertext.

Ownership is proven, not claimed: each camera records who registered its stream addresses
(``registered_by``: an owner's own registration is pulled only from public addresses, never
through the department's private-network allowlist), the most its owner allows
(``owner_sharing``: staff may lower sharing, never raise it above that) and a pending offer to
give it to another owner (``transfer``), which takes effect only when that owner accepts.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rtcc.access import CameraConsent, SecretBox
from rtcc.config import CameraConfig, CameraKind, SharingLevel, TimeWindow
from rtcc.errors import ConfigError
from rtcc.media import StreamState

DEPARTMENT = "department"
"""The ``owner_id`` of the department's own cameras."""
ProfileName = Literal["main", "sub"]
PROFILE_NAMES: tuple[ProfileName, ...] = ("main", "sub")


class Registrar(enum.StrEnum):
    """Who registered a camera's stream addresses, which decides how the server may reach them."""

    DEPARTMENT = "department"
    """Staff, an administrator's import or the configuration: the department's private-network
    allowlist applies."""
    OWNER = "owner"
    """The owner, through the owner portal: public addresses only (private ones through the
    owner's agent)."""


class CameraStatus(enum.StrEnum):
    """The camera's live state as the stream hub last reported it."""

    UNKNOWN = "unknown"
    IDLE = "idle"
    STARTING = "starting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ERROR = "error"

    @classmethod
    def from_stream_state(cls, state: StreamState) -> CameraStatus:
        return cls(str(state))


@dataclass(frozen=True, slots=True)
class Profile:
    """Where one encoding of a camera (main or sub stream) is pulled from."""

    url: str
    username: str = ""
    password_ciphertext: str = ""
    """The password as encrypted by the server's SecretBox; empty when the camera has none."""
    transport: Literal["tcp", "udp"] = "tcp"
    transcode_h264: bool = False
    """Also offer this profile as H.264 transcoded by the server (for an H.265 camera and
    viewers that cannot decode H.265); the original bytes are still what is recorded."""


@dataclass(frozen=True, slots=True)
class TransferOffer:
    """A camera offered to another owner; it changes hands only when that owner accepts."""

    id: str
    """``CAMERA_ID.TOKEN``: names the camera, and cannot be guessed."""
    to_owner: str
    offered_by: str
    """The username of the owner or administrator who made the offer."""
    offered_at: float


@dataclass(frozen=True, slots=True)
class Camera:
    id: str
    name: str
    lat: float
    lon: float
    owner_id: str = "department"
    site_id: str = ""
    heading: float = 0.0
    """Direction the camera looks, degrees clockwise from north."""
    fov: float = 90.0
    """Horizontal field of view, degrees (360 for a fisheye or a PTZ that may turn anywhere)."""
    range_m: float = 60.0
    """How far the camera usefully sees, metres."""
    kind: CameraKind = CameraKind.BUSINESS
    sharing: SharingLevel = SharingLevel.REGISTRY_ONLY
    windows: tuple[TimeWindow, ...] = ()
    timezone: str = "UTC"
    ptz_allowed: bool = False
    preload: bool = False
    record: bool = False
    via_agent: bool = False
    """Reached through the owner's agent (outbound connection) rather than pulled directly."""
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    status: CameraStatus = CameraStatus.UNKNOWN
    last_frame_time: float | None = None
    registered_by: Registrar = Registrar.DEPARTMENT
    """Who registered the stream addresses in ``profiles``."""
    owner_sharing: SharingLevel | None = None
    """The sharing level the owner last chose: staff may lower ``sharing`` but not raise it above
    this. None when no owner's choice is recorded (then the current level is the limit)."""
    transfer: TransferOffer | None = None

    @property
    def has_owner(self) -> bool:
        """False for the department's own cameras, over which staff keep full control."""
        return self.owner_id != DEPARTMENT

    def sharing_limit(self) -> SharingLevel:
        """The most staff may set ``sharing`` to on an owner's camera."""
        return self.owner_sharing if self.owner_sharing is not None else self.sharing

    def consent(self) -> CameraConsent:
        return CameraConsent(
            camera_id=self.id,
            owner_id=self.owner_id,
            sharing=self.sharing,
            windows=self.windows,
            ptz_allowed=self.ptz_allowed,
            timezone=self.timezone,
        )


@dataclass(frozen=True, slots=True)
class Owner:
    id: str
    organisation: str
    contact_name: str = ""
    contact_email: str = ""
    contact_phone: str = ""


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    owner_id: str
    address: str = ""
    outline: tuple[tuple[float, float], ...] = ()
    """Outline polygon as (lon, lat) positions, the ring closed implicitly."""
    soft_target: bool = False
    """A school, place of worship, hospital or venue where crowds gather."""


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    owner_id: str
    camera_ids: tuple[str, ...] = ()
    last_seen: float | None = None


# -- conversions ------------------------------------------------------------------------------


def camera_from_config(config: CameraConfig, box: SecretBox | None) -> Camera:
    """A camera of the configuration file (the demo's seeds) as the catalog stores it."""
    profiles: dict[str, Profile] = {}
    for name, profile in config.profiles.items():
        secret = profile.password.get_secret_value()
        if secret and box is None:
            raise ConfigError(
                f"camera {config.id!r}: its {name} profile has a password but the server has no "
                "secret box to encrypt it; configure the security module before the catalog"
            )
        profiles[name] = Profile(
            url=profile.url,
            username=profile.username,
            password_ciphertext=box.encrypt(secret) if secret and box is not None else "",
            transport=profile.transport,
            transcode_h264=profile.transcode_h264,
        )
    return Camera(
        id=config.id,
        name=config.name,
        lat=config.lat,
        lon=config.lon,
        owner_id=config.owner,
        site_id=config.site,
        heading=config.heading,
        fov=config.fov,
        range_m=config.range_m,
        kind=config.kind,
        sharing=config.sharing,
        windows=tuple(config.windows),
        ptz_allowed=config.ptz_allowed,
        preload=config.preload,
        record=config.record,
        profiles=profiles,
        # The configuration records what each owner agreed to.
        owner_sharing=config.sharing if config.owner != DEPARTMENT else None,
    )


def stream_urls(camera: Camera) -> dict[str, str]:
    """Each profile's stream address, by profile name."""
    return {name: profile.url for name, profile in camera.profiles.items()}


def _transfer_dict(offer: TransferOffer) -> dict[str, Any]:
    return {"id": offer.id, "to_owner": offer.to_owner, "offered_by": offer.offered_by,
            "offered_at": offer.offered_at}


def _window_dict(window: TimeWindow) -> dict[str, Any]:
    return {"days": list(window.days), "start": window.start, "end": window.end}


def camera_record(camera: Camera) -> dict[str, Any]:
    """Every field, JSON-ready. Holds the password ciphertext: never send it to a client."""
    return {
        "id": camera.id,
        "name": camera.name,
        "lat": camera.lat,
        "lon": camera.lon,
        "owner_id": camera.owner_id,
        "site_id": camera.site_id,
        "heading": camera.heading,
        "fov": camera.fov,
        "range_m": camera.range_m,
        "kind": str(camera.kind),
        "sharing": str(camera.sharing),
        "windows": [_window_dict(w) for w in camera.windows],
        "timezone": camera.timezone,
        "ptz_allowed": camera.ptz_allowed,
        "preload": camera.preload,
        "record": camera.record,
        "via_agent": camera.via_agent,
        "profiles": {
            name: {
                "url": p.url,
                "username": p.username,
                "password_ciphertext": p.password_ciphertext,
                "transport": p.transport,
                **({"transcode_h264": True} if p.transcode_h264 else {}),
            }
            for name, p in camera.profiles.items()
        },
        "registered_by": str(camera.registered_by),
        "owner_sharing": str(camera.owner_sharing) if camera.owner_sharing is not None else None,
        "transfer": _transfer_dict(camera.transfer) if camera.transfer is not None else None,
    }


def camera_extra(camera: Camera) -> dict[str, Any]:
    """The fields a store keeps beside its indexed columns, defaults left out (stored form:
    holds the password ciphertext)."""
    extra: dict[str, Any] = {"name": camera.name}
    if camera.site_id:
        extra["site_id"] = camera.site_id
    if camera.windows:
        extra["windows"] = [_window_dict(w) for w in camera.windows]
    if camera.timezone != "UTC":
        extra["timezone"] = camera.timezone
    for flag in ("ptz_allowed", "preload", "record", "via_agent"):
        if getattr(camera, flag):
            extra[flag] = True
    if camera.profiles:
        extra["profiles"] = {
            name: {"url": p.url, "username": p.username,
                   "password_ciphertext": p.password_ciphertext, "transport": p.transport,
                   **({"transcode_h264": True} if p.transcode_h264 else {})}
            for name, p in camera.profiles.items()
        }
    # Always written: a record without it predates the field (see _legacy_registrar).
    extra["registered_by"] = str(camera.registered_by)
    if camera.owner_sharing is not None:
        extra["owner_sharing"] = str(camera.owner_sharing)
    if camera.transfer is not None:
        extra["transfer"] = _transfer_dict(camera.transfer)
    return extra


_DOC_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)
"""``json.dumps(..., separators=(",", ":"))`` without building an encoder per camera."""


def camera_doc(camera: Camera) -> str:
    """:func:`camera_extra` as the compact JSON text the stores keep."""
    return _DOC_ENCODER.encode(camera_extra(camera))


_PORTAL_CAMERA_ID = re.compile(r"cam-[0-9a-f]{12}")


def _legacy_registrar(camera_id: str) -> Registrar:
    """Who registered a camera stored before the catalog recorded it: the owner portal gives its
    cameras ids of this form, so those addresses are not the department's."""
    return Registrar.OWNER if _PORTAL_CAMERA_ID.fullmatch(camera_id) else Registrar.DEPARTMENT


_KINDS: dict[str, CameraKind] = {str(k): k for k in CameraKind}
_SHARING: dict[str, SharingLevel] = {str(s): s for s in SharingLevel}
_REGISTRARS: dict[str, Registrar] = {str(r): r for r in Registrar}
_STATUSES: dict[str, CameraStatus] = {str(s): s for s in CameraStatus}
"""Stored text to enum member by dictionary: a search builds tens of cameras per query and the
enum constructors were a fifth of that work."""


def status_from(text: str) -> CameraStatus:
    return _STATUSES.get(text) or CameraStatus(text)


def camera_from_parts(
    camera_id: str, lat: float, lon: float, heading: float, fov: float, range_m: float,
    sharing: str, kind: str, owner_id: str, extra: Mapping[str, Any],
    status: CameraStatus = CameraStatus.UNKNOWN, last_frame_time: float | None = None,
) -> Camera:
    """Back from indexed columns and :func:`camera_extra` (trusted: validated when written)."""
    windows = extra.get("windows")
    profiles = extra.get("profiles")
    owner_sharing = extra.get("owner_sharing")
    transfer = extra.get("transfer")
    registrar = extra.get("registered_by") or _legacy_registrar(camera_id)
    return Camera(
        id=camera_id, name=extra["name"], lat=lat, lon=lon, owner_id=owner_id,
        site_id=extra.get("site_id", ""), heading=heading, fov=fov, range_m=range_m,
        kind=_KINDS.get(kind) or CameraKind(kind),
        sharing=_SHARING.get(sharing) or SharingLevel(sharing),
        windows=tuple(TimeWindow.model_construct(**w) for w in windows) if windows else (),
        timezone=extra.get("timezone", "UTC"), ptz_allowed=extra.get("ptz_allowed", False),
        preload=extra.get("preload", False), record=extra.get("record", False),
        via_agent=extra.get("via_agent", False),
        profiles={n: Profile(**p) for n, p in profiles.items()} if profiles else {},
        status=status, last_frame_time=last_frame_time,
        registered_by=_REGISTRARS.get(registrar) or Registrar(registrar),
        owner_sharing=(_SHARING.get(owner_sharing) or SharingLevel(owner_sharing)
                       if owner_sharing else None),
        transfer=TransferOffer(**transfer) if transfer else None,
    )


def camera_public(camera: Camera, *, urls: bool) -> dict[str, Any]:
    """What API clients see: everything but secrets (``has_password`` instead).

    Without ``urls`` (anyone but an administrator or the camera's owner) each profile tells that
    the stream exists and how it is carried, not where it is: a stream address opened outside
    the product is a view nobody audits.
    """
    out = camera_record(camera)
    out["profiles"] = {
        name: {
            "url": p.url,
            "username": p.username,
            "has_password": bool(p.password_ciphertext),
            "transport": p.transport,
            **({"transcode_h264": True} if p.transcode_h264 else {}),
        } if urls else {"transport": p.transport,
                        **({"transcode_h264": True} if p.transcode_h264 else {})}
        for name, p in camera.profiles.items()
    }
    out["status"] = str(camera.status)
    out["last_frame_time"] = camera.last_frame_time
    return out


def owner_record(owner: Owner) -> dict[str, Any]:
    return {"id": owner.id, "organisation": owner.organisation,
            "contact_name": owner.contact_name, "contact_email": owner.contact_email,
            "contact_phone": owner.contact_phone}


def owner_from_record(record: Mapping[str, Any]) -> Owner:
    return Owner(**record)


def site_record(site: Site) -> dict[str, Any]:
    return {"id": site.id, "owner_id": site.owner_id, "address": site.address,
            "outline": [list(p) for p in site.outline], "soft_target": site.soft_target}


def site_from_record(record: Mapping[str, Any]) -> Site:
    return Site(id=record["id"], owner_id=record["owner_id"], address=record["address"],
                outline=tuple((float(p[0]), float(p[1])) for p in record["outline"]),
                soft_target=record["soft_target"])


def agent_record(agent: Agent) -> dict[str, Any]:
    return {"id": agent.id, "owner_id": agent.owner_id, "camera_ids": list(agent.camera_ids),
            "last_seen": agent.last_seen}


def agent_from_record(record: Mapping[str, Any]) -> Agent:
    return Agent(id=record["id"], owner_id=record["owner_id"],
                 camera_ids=tuple(record["camera_ids"]), last_seen=record["last_seen"])
