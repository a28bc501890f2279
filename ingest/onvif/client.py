"""A small typed adapter over onvif-zeep-async: one camera, the operations the agent needs.

Every call has a timeout, replies are parsed with DTDs and entities forbidden and read up to a
size limit (``ingest.onvif.safety``), and library exceptions are turned into the
``ingest.onvif.models`` errors, whose messages name the camera by address only (never a
password). One hostile or broken camera fails alone: nothing here is shared between cameras
except the WSDL documents the library caches. The library loads each WSDL from disk once, on an
executor thread, never on the event loop.

Given ``AddressRules`` (``ingest.onvif.addresses``), the client never follows a service address
to a host other than the configured one and checks every stream and snapshot address the camera
names before it is used; no HTTP redirect is followed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures.thread  # noqa: F401 -- imported now, not lazily on the event loop
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import zeep.exceptions
from onvif import ONVIFCamera
from onvif.exceptions import ONVIFError

from ingest.onvif.addresses import AddressRules, check_announced
from ingest.onvif.models import (
    Capabilities,
    DeviceInfo,
    OnvifAuthError,
    OnvifError,
    OnvifFault,
    OnvifProtocolError,
    OnvifTimeout,
    OnvifUnreachable,
    OnvifUnsafeReply,
    PtzPreset,
    PtzStatus,
    VideoProfile,
)
from ingest.onvif.safety import DEFAULT_MAX_REPLY_BYTES, ReplyTooLarge, harden

log = logging.getLogger(__name__)

T = TypeVar("T")

UNSAFE_XML = (
    zeep.exceptions.DTDForbidden,
    zeep.exceptions.EntitiesForbidden,
    zeep.exceptions.ExternalReferenceForbidden,
)
MALFORMED = (
    zeep.exceptions.XMLSyntaxError,
    zeep.exceptions.XMLParseError,
    zeep.exceptions.ValidationError,
    zeep.exceptions.LookupError,
    AttributeError,
    KeyError,
    TypeError,
    ValueError,
)
NETWORK = (aiohttp.ClientError, OSError)
CALL_ERRORS = (
    OnvifError,
    ONVIFError,
    TimeoutError,
    ReplyTooLarge,
    zeep.exceptions.Error,
    *NETWORK,
    *MALFORMED,
)
"""What a SOAP call through the library raises that ``translate`` turns into an OnvifError."""
MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024
MAX_PRESETS = 256


def _is_auth_fault(fault: zeep.exceptions.Fault) -> bool:
    subcodes = getattr(fault, "subcodes", None) or []
    names = {getattr(code, "localname", str(code)).split(":")[-1] for code in subcodes}
    code = str(getattr(fault, "code", "") or "")
    return "NotAuthorized" in names or "NotAuthorized" in code or "FailedAuthentication" in code


def translate(exc: BaseException, where: str, operation: str) -> OnvifError:
    """The adapter's error for a library exception (message: camera address and what failed)."""
    if isinstance(exc, OnvifError):
        return exc
    if isinstance(exc, ONVIFError) and exc.__cause__ is not None:
        return translate(exc.__cause__, where, operation)
    prefix = f"ONVIF {operation} at {where}"
    if isinstance(exc, TimeoutError):
        return OnvifTimeout(f"{prefix}: the camera did not answer in time")
    if isinstance(exc, ReplyTooLarge):
        return OnvifUnsafeReply(f"{prefix}: {exc}; the reply was refused")
    if isinstance(exc, UNSAFE_XML):
        return OnvifUnsafeReply(
            f"{prefix}: the reply declares a DTD or entities (possible XML attack); refused"
        )
    if isinstance(exc, zeep.exceptions.Fault):
        if _is_auth_fault(exc):
            return OnvifAuthError(f"{prefix}: the camera refused the user name or password")
        message = str(getattr(exc, "message", "") or "no reason given")[:200]
        return OnvifFault(f"{prefix}: the camera answered with a SOAP fault: {message}")
    if isinstance(exc, zeep.exceptions.TransportError):
        status = getattr(exc, "status_code", 0)
        if status in (401, 403):
            return OnvifAuthError(f"{prefix}: the camera refused the user name or password "
                                  f"(HTTP {status})")
        if 300 <= status < 400:
            return OnvifProtocolError(f"{prefix}: the camera answered with a redirect (HTTP "
                                      f"{status}), which is not followed; configure the "
                                      "camera's ONVIF address itself")
        return OnvifProtocolError(f"{prefix}: HTTP {status} without a usable SOAP reply")
    if isinstance(exc, NETWORK):
        return OnvifUnreachable(f"{prefix}: cannot connect ({type(exc).__name__})")
    if isinstance(exc, MALFORMED):
        return OnvifProtocolError(f"{prefix}: the reply is not what ONVIF specifies "
                                  f"({type(exc).__name__})")
    if isinstance(exc, ONVIFError):
        return OnvifProtocolError(f"{prefix}: {str(exc)[:200]}")
    if isinstance(exc, zeep.exceptions.Error):
        return OnvifProtocolError(f"{prefix}: {type(exc).__name__}")
    raise exc


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if obj is None:
            return None
        obj = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return obj


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _text(value: Any, limit: int = 200) -> str:
    return "" if value is None else str(value).strip()[:limit]


class OnvifClient:
    """One ONVIF camera. ``async with OnvifClient(...) as camera:`` connects (reads the
    service addresses); every method raises an ``OnvifError`` subclass on failure."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 20.0,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        rules: AddressRules | None = None,
    ) -> None:
        """``host`` is the address to connect to (for the server: the one ``check_camera_url``
        returned). ``rules``: check what the camera announces (see ``ingest.onvif.addresses``);
        None on the owner's network (the agent), where addresses are used as given."""
        self.host = host
        self.port = port
        self.where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        self._username = username
        self._password = password
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._max_reply_bytes = max_reply_bytes
        self._rules = rules
        self._camera: ONVIFCamera | None = None
        self._http: aiohttp.ClientSession | None = None

    @classmethod
    def from_xaddr(cls, xaddr: str, username: str, password: str, **kwargs: Any) -> OnvifClient:
        """From a device service address such as ``http://192.0.2.10:80/onvif/device_service``."""
        parts = urlsplit(xaddr)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OnvifProtocolError("an ONVIF device address must be an http:// URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.hostname, port, username, password, **kwargs)

    def __repr__(self) -> str:
        return f"<OnvifClient {self.where}>"

    async def __aenter__(self) -> OnvifClient:
        await self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    # -- plumbing -----------------------------------------------------------------------------

    async def _call(self, operation: str, action: Callable[[], Awaitable[T]],
                    limit: float | None = None) -> T:
        try:
            async with asyncio.timeout(limit or self._timeout):
                return await action()
        except CALL_ERRORS as exc:
            raise translate(exc, self.where, operation) from None

    async def _service(self, name: str) -> Any:
        camera = self._require()
        service = await camera.create_onvif_service(name)
        harden(service, self._max_reply_bytes)
        return service

    def _require(self) -> ONVIFCamera:
        if self._camera is None:
            raise OnvifError(f"ONVIF camera {self.where} is not connected")
        return self._camera

    async def connect(self) -> None:
        if self._camera is not None:
            return
        # Empty strings, not None: the library always signs requests, and a camera without
        # authentication ignores the (empty) token.
        # nat_override: every service address the camera announces is rewritten to the host
        # and port given here, so SOAP requests only ever go where the caller checked.
        camera = ONVIFCamera(self.host, self.port, self._username, self._password,
                             no_cache=True, nat_override=self._rules is not None)
        self._camera = camera
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))

        async def discover_services() -> None:
            await self._service("devicemgmt")  # hardened before its first request
            await camera.update_xaddrs()

        try:
            await self._call("GetServices", discover_services, self._connect_timeout)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        camera, self._camera = self._camera, None
        http, self._http = self._http, None
        if camera is not None:
            try:
                await camera.close()
            except Exception as exc:  # noqa: BLE001 -- closing must not hide the error that led here
                log.debug("ONVIF camera %s: close failed: %s", self.where, exc)
        if http is not None:
            await http.close()

    # -- device -------------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        xaddrs = self._require().xaddrs
        return Capabilities(
            media="http://www.onvif.org/ver10/media/wsdl" in xaddrs,
            ptz="http://www.onvif.org/ver20/ptz/wsdl" in xaddrs,
        )

    async def device_info(self) -> DeviceInfo:
        async def run() -> DeviceInfo:
            reply = await (await self._service("devicemgmt")).GetDeviceInformation()
            return DeviceInfo(
                manufacturer=_text(_get(reply, "Manufacturer")),
                model=_text(_get(reply, "Model")),
                firmware=_text(_get(reply, "FirmwareVersion")),
                serial=_text(_get(reply, "SerialNumber")),
                hardware_id=_text(_get(reply, "HardwareId")),
            )

        return await self._call("GetDeviceInformation", run)

    # -- media --------------------------------------------------------------------------------

    async def profiles(self) -> tuple[VideoProfile, ...]:
        async def run() -> tuple[VideoProfile, ...]:
            reply = await (await self._service("media")).GetProfiles()
            found: list[VideoProfile] = []
            for item in list(reply or [])[:32]:
                encoder = _get(item, "VideoEncoderConfiguration")
                token = _text(_get(item, "token"), 64)
                if encoder is None or not token:
                    continue  # audio-only or metadata profiles
                found.append(VideoProfile(
                    token=token,
                    name=_text(_get(item, "Name"), 100) or token,
                    encoding=_text(_get(encoder, "Encoding"), 16),
                    width=_int(_get(encoder, "Resolution", "Width")),
                    height=_int(_get(encoder, "Resolution", "Height")),
                    fps=_float(_get(encoder, "RateControl", "FrameRateLimit")),
                    bitrate_kbps=_int(_get(encoder, "RateControl", "BitrateLimit")),
                    has_ptz=_get(item, "PTZConfiguration") is not None,
                ))
            return tuple(found)

        return await self._call("GetProfiles", run)

    async def stream_uri(self, profile_token: str) -> str:
        async def run() -> str:
            reply = await (await self._service("media")).GetStreamUri({
                "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                "ProfileToken": profile_token,
            })
            uri = _text(_get(reply, "Uri"), 2000)
            if not uri.lower().startswith(("rtsp://", "rtsps://")):
                raise OnvifProtocolError(
                    f"ONVIF GetStreamUri at {self.where}: the camera gave no rtsp:// address"
                )
            if self._rules is not None:
                await check_announced(uri, rules=self._rules, purpose="stream",
                                      camera=self.where, what="the stream address")
            return uri

        return await self._call("GetStreamUri", run)

    async def snapshot_uri(self, profile_token: str) -> str | None:
        async def run() -> str | None:
            reply = await (await self._service("media")).GetSnapshotUri(
                {"ProfileToken": profile_token}
            )
            uri = _text(_get(reply, "Uri"), 2000)
            if not uri.lower().startswith(("http://", "https://")):
                return None
            if self._rules is not None:
                await check_announced(uri, rules=self._rules, purpose="onvif",
                                      camera=self.where, what="the snapshot address")
            return uri

        return await self._call("GetSnapshotUri", run)

    async def set_synchronization_point(self, profile_token: str) -> None:
        """Ask the camera for a keyframe now (new viewers start sooner)."""
        async def run() -> None:
            await (await self._service("media")).SetSynchronizationPoint(
                {"ProfileToken": profile_token}
            )

        await self._call("SetSynchronizationPoint", run)

    async def snapshot(self, profile_token: str, max_bytes: int = MAX_SNAPSHOT_BYTES) -> bytes:
        """A JPEG from the camera's snapshot URI (HTTP digest or basic authentication)."""
        uri = await self.snapshot_uri(profile_token)
        if uri is None:
            raise OnvifFault(f"ONVIF camera {self.where} offers no snapshot for this profile")
        return await self._call("snapshot", lambda: self._fetch_snapshot(uri, max_bytes))

    async def _fetch_snapshot(self, uri: str, max_bytes: int) -> bytes:
        http = self._http
        if http is None:
            raise OnvifError(f"ONVIF camera {self.where} is not connected")
        if self._rules is not None:
            # Checked again and pinned: connect to the address just checked, not to a second
            # DNS answer.
            checked = await check_announced(uri, rules=self._rules, purpose="onvif",
                                            camera=self.where, what="the snapshot address")
            uri = checked.pinned_url
        response = await http.get(uri, allow_redirects=False)
        if response.status == 401 and self._username:
            challenge = response.headers.get("WWW-Authenticate", "").lower()
            response.release()
            if challenge.startswith("digest"):
                digest = aiohttp.DigestAuthMiddleware(self._username, self._password)
                response = await http.get(uri, allow_redirects=False, middlewares=(digest,))
            else:
                basic = {"Authorization": aiohttp.encode_basic_auth(self._username,
                                                                     self._password)}
                response = await http.get(uri, allow_redirects=False, headers=basic)
        async with response:
            if response.status in (401, 403):
                raise OnvifAuthError(f"snapshot at {self.where}: the camera refused the user "
                                     "name or password")
            if 300 <= response.status < 400:
                raise OnvifFault(f"snapshot at {self.where}: the camera answered with a "
                                 f"redirect (HTTP {response.status}), which is not followed")
            if response.status != 200:
                raise OnvifFault(f"snapshot at {self.where}: HTTP {response.status}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(65536):
                body += chunk
                if len(body) > max_bytes:
                    raise OnvifUnsafeReply(f"snapshot at {self.where} is larger than "
                                           f"{max_bytes} bytes")
        if not body.startswith(b"\xff\xd8"):
            raise OnvifProtocolError(f"snapshot at {self.where} is not a JPEG image")
        return bytes(body)

    # -- PTZ ----------------------------------------------------------------------------------

    async def ptz_move(self, profile_token: str, pan: float, tilt: float, zoom: float = 0.0,
                       duration: float | None = None) -> None:
        """Continuous move at the given velocities (-1..1); stops after ``duration`` seconds."""
        def clamp(value: float) -> float:
            return max(-1.0, min(1.0, float(value)))

        request: dict[str, Any] = {
            "ProfileToken": profile_token,
            "Velocity": {"PanTilt": {"x": clamp(pan), "y": clamp(tilt)},
                         "Zoom": {"x": clamp(zoom)}},
        }
        if duration is not None:
            request["Timeout"] = f"PT{max(0.1, min(60.0, duration)):.1f}S"

        async def run() -> None:
            await (await self._service("ptz")).ContinuousMove(request)

        await self._call("ContinuousMove", run)

    async def ptz_stop(self, profile_token: str) -> None:
        async def run() -> None:
            await (await self._service("ptz")).Stop(
                {"ProfileToken": profile_token, "PanTilt": True, "Zoom": True}
            )

        await self._call("Stop", run)

    async def ptz_presets(self, profile_token: str) -> list[PtzPreset]:
        """The presets the camera holds for this profile, in the camera's order (at most
        ``MAX_PRESETS``; the token is what ``ptz_goto_preset`` takes)."""
        async def run() -> list[PtzPreset]:
            reply = await (await self._service("ptz")).GetPresets({"ProfileToken": profile_token})
            items = reply if isinstance(reply, list) else (_get(reply, "Preset") or [])
            presets: list[PtzPreset] = []
            for item in list(items)[:MAX_PRESETS]:
                token = _text(_get(item, "token"), 64)
                if token:
                    presets.append(PtzPreset(token=token,
                                             name=_text(_get(item, "Name"), 100) or token))
            return presets

        return await self._call("GetPresets", run)

    async def ptz_goto_preset(self, profile_token: str, preset_token: str) -> None:
        async def run() -> None:
            await (await self._service("ptz")).GotoPreset(
                {"ProfileToken": profile_token, "PresetToken": preset_token})

        await self._call("GotoPreset", run)

    async def ptz_status(self, profile_token: str) -> PtzStatus:
        async def run() -> PtzStatus:
            reply = await (await self._service("ptz")).GetStatus({"ProfileToken": profile_token})
            move = _get(reply, "MoveStatus")
            moving = any(_text(_get(move, axis)).upper() == "MOVING"
                         for axis in ("PanTilt", "Zoom"))
            return PtzStatus(
                pan=_float(_get(reply, "Position", "PanTilt", "x")),
                tilt=_float(_get(reply, "Position", "PanTilt", "y")),
                zoom=_float(_get(reply, "Position", "Zoom", "x")),
                moving=moving,
            )

        return await self._call("GetStatus", run)
