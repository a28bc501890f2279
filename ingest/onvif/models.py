"""What the ONVIF adapter returns: frozen, typed values (never zeep objects)."""

from __future__ import annotations

from dataclasses import dataclass

from rtcc.errors import RtccError


class OnvifError(RtccError):
    """A camera's ONVIF service failed; the message says what and what to do."""


class OnvifAuthError(OnvifError):
    """The camera refused the user name or password."""


class OnvifFault(OnvifError):
    """The camera answered with a SOAP fault other than an authentication failure."""


class OnvifTimeout(OnvifError):
    """The camera did not answer in time."""


class OnvifUnreachable(OnvifError):
    """No connection to the camera's ONVIF service."""


class OnvifUnsafeReply(OnvifError):
    """The camera's reply was refused: a DTD or entities (XXE, entity bomb), or too large."""


class OnvifUnsafeAddress(OnvifError):
    """The camera named an address the server must not connect to (another host's service, a
    private or metadata address outside the allowlist); nothing was sent there."""


class OnvifProtocolError(OnvifError):
    """The reply was not the SOAP the operation expects."""


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    manufacturer: str
    model: str
    firmware: str
    serial: str
    hardware_id: str


@dataclass(frozen=True, slots=True)
class VideoProfile:
    token: str
    name: str
    encoding: str
    """``H264``, ``H265``, ``JPEG``... as the camera names it."""
    width: int
    height: int
    fps: float
    bitrate_kbps: int
    has_ptz: bool

    @property
    def is_h264(self) -> bool:
        return self.encoding.upper() in ("H264", "H.264", "AVC")


@dataclass(frozen=True, slots=True)
class PtzStatus:
    pan: float
    tilt: float
    zoom: float
    moving: bool


@dataclass(frozen=True, slots=True)
class PtzPreset:
    token: str
    """What the camera calls the preset in ``GotoPreset``."""
    name: str


@dataclass(frozen=True, slots=True)
class Capabilities:
    media: bool
    ptz: bool
