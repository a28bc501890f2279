"""Simulated ONVIF cameras in front of the camsim RTSP streams.

Each device listens on its own HTTP port and answers the Device service (GetDeviceInformation,
GetSystemDateAndTime, GetCapabilities, GetServices), the Media service (GetProfiles,
GetStreamUri, GetSnapshotUri, SetSynchronizationPoint) and the PTZ service (ContinuousMove, Stop,
GetStatus, GetPresets, GotoPreset), with WS-Security UsernameToken authentication when the
device has a user. A WS-Discovery responder (``camsim.discovery_responder``) answers probes
for all of them.

Run as ``python -m camsim.onvif_server -`` with one JSON line on stdin::

    {"host": "127.0.0.1", "rtsp_base": "rtsp://127.0.0.1:8554",
     "discovery": {"port": 0, "multicast_group": "", "multicast_port": 3702},
     "devices": [{"name": "Lobby", "port": 0, "username": "admin", "password": "...",
                  "ptz": true, "profiles": [{"token": "main", "path": "open",
                  "width": 640, "height": 360, "fps": 15}]}]}

It prints ``READY discovery=PORT ports=P1,P2`` when listening, a line per PTZ command, and exits
when stdin closes or on SIGTERM.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hmac
import json
import logging
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from camsim.discovery_responder import DiscoveryResponder, DiscoveryTarget
from camsim.onvif_soap import (
    SoapError,
    SoapRequest,
    UsernameTokenVerifier,
    envelope,
    fault,
    parse_request,
    text,
)

log = logging.getLogger(__name__)

PRE_AUTH = frozenset({"GetSystemDateAndTime"})
"""Operations ONVIF lets anyone call (clients read the clock before signing tokens)."""


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    token: str
    path: str
    """The camsim RTSP path this profile streams."""
    name: str = ""
    width: int = 640
    height: int = 360
    fps: int = 15
    bitrate_kbps: int = 600
    encoding: str = "H264"


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    name: str
    profiles: tuple[ProfileSpec, ...]
    port: int = 0
    username: str = ""
    password: str = field(default="", repr=False)
    ptz: bool = False
    manufacturer: str = "RTCC Camsim"
    model: str = "Simulated IP Camera"
    firmware: str = "1.0.0"
    serial: str = ""
    endpoint: str = ""
    """WS-Discovery endpoint reference (``urn:uuid:...``); made up when empty."""
    announce: str = ""
    """Base URL (``http://host:port``) written into the service and snapshot addresses instead
    of the device's own: a camera behind NAT announcing its LAN address, or a hostile one."""


def _profile_from(raw: dict[str, Any]) -> ProfileSpec:
    return ProfileSpec(
        token=str(raw["token"]), path=str(raw["path"]), name=str(raw.get("name", raw["token"])),
        width=int(raw.get("width", 640)), height=int(raw.get("height", 360)),
        fps=int(raw.get("fps", 15)), bitrate_kbps=int(raw.get("bitrate_kbps", 600)),
        encoding=str(raw.get("encoding", "H264")),
    )


def device_from(raw: dict[str, Any]) -> DeviceSpec:
    profiles = tuple(_profile_from(item) for item in raw.get("profiles", []))
    if not profiles:
        raise ValueError(f"device {raw.get('name')!r} has no profiles")
    return DeviceSpec(
        name=str(raw.get("name", "camera")), profiles=profiles, port=int(raw.get("port", 0)),
        username=str(raw.get("username", "")), password=str(raw.get("password", "")),
        ptz=bool(raw.get("ptz", False)),
        manufacturer=str(raw.get("manufacturer", "RTCC Camsim")),
        model=str(raw.get("model", "Simulated IP Camera")),
        firmware=str(raw.get("firmware", "1.0.0")), serial=str(raw.get("serial", "")),
        endpoint=str(raw.get("endpoint", "")), announce=str(raw.get("announce", "")),
    )


class PtzState:
    """Continuous-move state: velocity in [-1, 1] per axis, position integrated over time."""

    def __init__(self) -> None:
        self.position = [0.0, 0.0, 0.0]
        self.velocity = [0.0, 0.0, 0.0]
        self._since = time.monotonic()
        self._until: float | None = None
        self.moves = 0
        self.stops = 0

    def _advance(self) -> None:
        now = time.monotonic()
        end = now if self._until is None else min(now, self._until)
        elapsed = max(0.0, end - self._since)
        for axis in range(3):
            moved = self.position[axis] + self.velocity[axis] * elapsed
            self.position[axis] = max(-1.0, min(1.0, moved))
        self._since = now
        if self._until is not None and now >= self._until:
            self.velocity = [0.0, 0.0, 0.0]
            self._until = None

    def move(self, pan: float, tilt: float, zoom: float, timeout: float | None) -> None:
        self._advance()
        self.velocity = [max(-1.0, min(1.0, v)) for v in (pan, tilt, zoom)]
        self._until = None if timeout is None else time.monotonic() + timeout
        self.moves += 1

    def stop(self) -> None:
        self._advance()
        self.velocity = [0.0, 0.0, 0.0]
        self._until = None
        self.stops += 1

    def status(self) -> tuple[list[float], bool]:
        self._advance()
        return list(self.position), any(v != 0.0 for v in self.velocity)

    def goto(self, position: tuple[float, float, float]) -> None:
        """Jump to a preset's position (a real camera travels there; the picture never moves
        here, so arriving at once shows the same thing to a client)."""
        self._advance()
        self.position = list(position)
        self.velocity = [0.0, 0.0, 0.0]
        self._until = None
        self.moves += 1


PRESETS: tuple[tuple[str, str, tuple[float, float, float]], ...] = (
    ("1", "Entrance", (-0.5, 0.0, 0.0)),
    ("2", "Parking lot", (0.5, -0.2, 0.3)),
    ("3", "Loading dock", (0.9, 0.1, 0.6)),
)
"""Every PTZ camera of the simulator has these presets: (token, name, pan/tilt/zoom)."""


def _duration_seconds(value: str) -> float | None:
    """``PT1.5S`` / ``PT2M`` (the subset ONVIF clients send) in seconds."""
    value = value.strip().upper()
    if not value.startswith("PT"):
        return None
    number, total = "", 0.0
    for char in value[2:]:
        if char.isdigit() or char == ".":
            number += char
            continue
        scale = {"H": 3600.0, "M": 60.0, "S": 1.0}.get(char)
        if scale is None or not number:
            return None
        total += float(number) * scale
        number = ""
    return total


class SimulatedDevice:
    """One ONVIF camera: its services, PTZ state and snapshot, served by one aiohttp app."""

    def __init__(self, spec: DeviceSpec, host: str, rtsp_base: str) -> None:
        self.spec = spec
        self.host = host
        self.rtsp_base = rtsp_base.rstrip("/")
        self.port = spec.port
        self.endpoint = spec.endpoint or f"urn:uuid:{uuid.uuid4()}"
        self.ptz = PtzState()
        self.sync_points = 0
        self._auth = UsernameTokenVerifier(spec.username, spec.password)
        self._snapshots: dict[str, bytes] = {}
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def announced_url(self) -> str:
        """What the device's replies name as its own base URL."""
        return self.spec.announce.rstrip("/") or self.base_url

    @property
    def device_xaddr(self) -> str:
        return f"{self.base_url}/onvif/device_service"

    async def start(self) -> None:
        app = web.Application(client_max_size=256 * 1024)
        app.router.add_post("/onvif/device_service", self._soap)
        app.router.add_post("/onvif/media_service", self._soap)
        app.router.add_post("/onvif/ptz_service", self._soap)
        app.router.add_get("/onvif/snapshot/{token}.jpg", self._snapshot)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.spec.port)
        await site.start()
        self._runner = runner
        if runner.addresses:
            self.port = int(runner.addresses[0][1])

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- HTTP ---------------------------------------------------------------------------------

    async def _soap(self, request: web.Request) -> web.Response:
        try:
            soap = parse_request(await request.read())
            if soap.operation not in PRE_AUTH:
                self._auth.check(soap)
            body = self._dispatch(soap)
        except SoapError as exc:
            return web.Response(status=exc.status, body=fault(exc),
                                content_type="application/soap+xml", charset="utf-8")
        return web.Response(body=envelope(body), content_type="application/soap+xml",
                            charset="utf-8")

    async def _snapshot(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        profile = self._profile(token)
        if self.spec.username and not self._basic_ok(request.headers.get("Authorization", "")):
            return web.Response(status=401, text="authentication required",
                                headers={"WWW-Authenticate": 'Basic realm="camsim"'})
        if profile.token not in self._snapshots:
            self._snapshots[profile.token] = await asyncio.to_thread(
                _make_jpeg, profile.width, profile.height, self.spec.name
            )
        return web.Response(body=self._snapshots[profile.token], content_type="image/jpeg")

    def _basic_ok(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(user, self.spec.username) and hmac.compare_digest(
            password, self.spec.password
        )

    # -- operations ---------------------------------------------------------------------------

    def _dispatch(self, soap: SoapRequest) -> str:
        handler = getattr(self, f"_op_{soap.operation}", None)
        if handler is None:
            raise SoapError("ter:ActionNotSupported",
                            f"{soap.operation} is not supported by this camera")
        result: str = handler(soap)
        return result

    def _profile(self, token: str) -> ProfileSpec:
        for profile in self.spec.profiles:
            if profile.token == token:
                return profile
        raise SoapError("ter:InvalidArgVal", f"no profile {token!r}")

    def _op_GetSystemDateAndTime(self, soap: SoapRequest) -> str:  # noqa: ARG002 -- operation handler signature
        now = dt.datetime.now(dt.UTC)
        return (
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
            "<tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone><tt:UTCDateTime>"
            f"<tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}</tt:Minute>"
            f"<tt:Second>{now.second}</tt:Second></tt:Time>"
            f"<tt:Date><tt:Year>{now.year}</tt:Year><tt:Month>{now.month}</tt:Month>"
            f"<tt:Day>{now.day}</tt:Day></tt:Date>"
            "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
        )

    def _op_GetDeviceInformation(self, soap: SoapRequest) -> str:  # noqa: ARG002 -- operation handler signature
        spec = self.spec
        serial = spec.serial or self.endpoint.rsplit(":", 1)[-1][:12]
        return (
            "<tds:GetDeviceInformationResponse>"
            f"<tds:Manufacturer>{text(spec.manufacturer)}</tds:Manufacturer>"
            f"<tds:Model>{text(spec.model)}</tds:Model>"
            f"<tds:FirmwareVersion>{text(spec.firmware)}</tds:FirmwareVersion>"
            f"<tds:SerialNumber>{text(serial)}</tds:SerialNumber>"
            f"<tds:HardwareId>{text(spec.name)}</tds:HardwareId>"
            "</tds:GetDeviceInformationResponse>"
        )

    def _services(self) -> list[tuple[str, str]]:
        services = [
            ("http://www.onvif.org/ver10/device/wsdl",
             f"{self.announced_url}/onvif/device_service"),
            ("http://www.onvif.org/ver10/media/wsdl", f"{self.announced_url}/onvif/media_service"),
        ]
        if self.spec.ptz:
            services.append(
                ("http://www.onvif.org/ver20/ptz/wsdl", f"{self.announced_url}/onvif/ptz_service")
            )
        return services

    def _op_GetServices(self, soap: SoapRequest) -> str:  # noqa: ARG002 -- operation handler signature
        items = "".join(
            f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{text(url)}</tds:XAddr>"
            "<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version>"
            "</tds:Service>"
            for ns, url in self._services()
        )
        return f"<tds:GetServicesResponse>{items}</tds:GetServicesResponse>"

    def _op_GetCapabilities(self, soap: SoapRequest) -> str:  # noqa: ARG002 -- operation handler signature
        base = self.announced_url
        ptz = (f"<tt:PTZ><tt:XAddr>{text(base)}/onvif/ptz_service</tt:XAddr></tt:PTZ>"
               if self.spec.ptz else "")
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities>"
            f"<tt:Device><tt:XAddr>{text(base)}/onvif/device_service</tt:XAddr></tt:Device>"
            f"<tt:Media><tt:XAddr>{text(base)}/onvif/media_service</tt:XAddr>"
            "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
            "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
            f"</tt:StreamingCapabilities></tt:Media>{ptz}"
            "</tds:Capabilities></tds:GetCapabilitiesResponse>"
        )

    def _profile_xml(self, profile: ProfileSpec) -> str:
        ptz = ""
        if self.spec.ptz:
            ptz = (
                '<tt:PTZConfiguration token="ptz0"><tt:Name>PTZ</tt:Name>'
                "<tt:UseCount>1</tt:UseCount><tt:NodeToken>ptznode0</tt:NodeToken>"
                "</tt:PTZConfiguration>"
            )
        gov = max(1, profile.fps)
        return (
            f'<trt:Profiles token="{text(profile.token)}" fixed="true">'
            f"<tt:Name>{text(profile.name or profile.token)}</tt:Name>"
            '<tt:VideoSourceConfiguration token="vsc0"><tt:Name>source</tt:Name>'
            "<tt:UseCount>2</tt:UseCount><tt:SourceToken>vs0</tt:SourceToken>"
            f'<tt:Bounds x="0" y="0" width="{profile.width}" height="{profile.height}"/>'
            "</tt:VideoSourceConfiguration>"
            f'<tt:VideoEncoderConfiguration token="vec-{text(profile.token)}">'
            f"<tt:Name>{text(profile.token)}</tt:Name><tt:UseCount>1</tt:UseCount>"
            f"<tt:Encoding>{text(profile.encoding)}</tt:Encoding>"
            f"<tt:Resolution><tt:Width>{profile.width}</tt:Width>"
            f"<tt:Height>{profile.height}</tt:Height></tt:Resolution>"
            "<tt:Quality>5</tt:Quality><tt:RateControl>"
            f"<tt:FrameRateLimit>{profile.fps}</tt:FrameRateLimit>"
            "<tt:EncodingInterval>1</tt:EncodingInterval>"
            f"<tt:BitrateLimit>{profile.bitrate_kbps}</tt:BitrateLimit></tt:RateControl>"
            f"<tt:H264><tt:GovLength>{gov}</tt:GovLength><tt:H264Profile>High</tt:H264Profile>"
            "</tt:H264><tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type>"
            "<tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address><tt:Port>0</tt:Port>"
            "<tt:TTL>1</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>"
            "<tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration>"
            f"{ptz}</trt:Profiles>"
        )

    def _op_GetProfiles(self, soap: SoapRequest) -> str:  # noqa: ARG002 -- operation handler signature
        profiles = "".join(self._profile_xml(profile) for profile in self.spec.profiles)
        return f"<trt:GetProfilesResponse>{profiles}</trt:GetProfilesResponse>"

    def _media_uri(self, element: str, uri: str) -> str:
        return (
            f"<trt:{element}Response><trt:MediaUri><tt:Uri>{text(uri)}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
            "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
            f"<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:{element}Response>"
        )

    def _op_GetStreamUri(self, soap: SoapRequest) -> str:
        profile = self._profile(soap.text("trt:ProfileToken"))
        return self._media_uri("GetStreamUri", f"{self.rtsp_base}/{profile.path}")

    def _op_GetSnapshotUri(self, soap: SoapRequest) -> str:
        profile = self._profile(soap.text("trt:ProfileToken"))
        return self._media_uri("GetSnapshotUri",
                               f"{self.announced_url}/onvif/snapshot/{profile.token}.jpg")

    def _op_SetSynchronizationPoint(self, soap: SoapRequest) -> str:
        self._profile(soap.text("trt:ProfileToken"))
        self.sync_points += 1
        _event("sync", device=self.spec.name, count=self.sync_points)
        return "<trt:SetSynchronizationPointResponse/>"

    def _require_ptz(self, soap: SoapRequest) -> None:
        if not self.spec.ptz:
            raise SoapError("ter:ActionNotSupported", "this camera has no PTZ")
        self._profile(soap.text("tptz:ProfileToken"))

    def _op_ContinuousMove(self, soap: SoapRequest) -> str:
        self._require_ptz(soap)

        def axis(path: str) -> float:
            try:
                return float(soap.text(path, "0") or 0)
            except ValueError:
                raise SoapError("ter:InvalidArgVal", "a velocity is not a number") from None

        pan = axis("tptz:Velocity/tt:PanTilt/@x")
        tilt = axis("tptz:Velocity/tt:PanTilt/@y")
        zoom = axis("tptz:Velocity/tt:Zoom/@x")
        given = soap.text("tptz:Timeout")
        timeout = _duration_seconds(given) if given else None
        self.ptz.move(pan, tilt, zoom, timeout)
        _event("ptz-move", device=self.spec.name, pan=pan, tilt=tilt, zoom=zoom, timeout=timeout)
        return "<tptz:ContinuousMoveResponse/>"

    def _op_Stop(self, soap: SoapRequest) -> str:
        self._require_ptz(soap)
        self.ptz.stop()
        _event("ptz-stop", device=self.spec.name)
        return "<tptz:StopResponse/>"

    def _op_GetPresets(self, soap: SoapRequest) -> str:
        self._require_ptz(soap)
        presets = "".join(
            f'<tptz:Preset token="{text(token)}"><tt:Name>{text(name)}</tt:Name>'
            f'<tt:PTZPosition><tt:PanTilt x="{pan:.4f}" y="{tilt:.4f}"/>'
            f'<tt:Zoom x="{zoom:.4f}"/></tt:PTZPosition></tptz:Preset>'
            for token, name, (pan, tilt, zoom) in PRESETS)
        return f"<tptz:GetPresetsResponse>{presets}</tptz:GetPresetsResponse>"

    def _op_GotoPreset(self, soap: SoapRequest) -> str:
        self._require_ptz(soap)
        token = soap.text("tptz:PresetToken")
        found = next((preset for preset in PRESETS if preset[0] == token), None)
        if found is None:
            raise SoapError("ter:InvalidArgVal", f"no preset {token[:40]!r} on this camera")
        self.ptz.goto(found[2])
        _event("ptz-preset", device=self.spec.name, preset=token, name=found[1])
        return "<tptz:GotoPresetResponse/>"

    def _op_GetStatus(self, soap: SoapRequest) -> str:
        self._require_ptz(soap)
        (pan, tilt, zoom), moving = self.ptz.status()
        state = "MOVING" if moving else "IDLE"
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            "<tptz:GetStatusResponse><tptz:PTZStatus><tt:Position>"
            f'<tt:PanTilt x="{pan:.4f}" y="{tilt:.4f}"/><tt:Zoom x="{zoom:.4f}"/>'
            f"</tt:Position><tt:MoveStatus><tt:PanTilt>{state}</tt:PanTilt>"
            f"<tt:Zoom>{state}</tt:Zoom></tt:MoveStatus><tt:UtcTime>{now}</tt:UtcTime>"
            "</tptz:PTZStatus></tptz:GetStatusResponse>"
        )


def _make_jpeg(width: int, height: int, label: str) -> bytes:
    import cv2
    import numpy as np

    ramp = np.linspace(0, 255, width, dtype=np.uint8)
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:, :, 0] = ramp
    image[:, :, 1] = ramp[::-1]
    image[:, :, 2] = 96
    cv2.putText(image, label[:40], (10, max(20, height // 2)), cv2.FONT_HERSHEY_SIMPLEX,
                max(0.4, width / 900), (255, 255, 255), 2)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise RuntimeError("OpenCV could not encode the snapshot")
    return bytes(encoded.tobytes())


def _event(kind: str, **fields: object) -> None:
    """One line on stdout per observable action (tests and people read them)."""
    print(json.dumps({"event": kind, **fields}), flush=True)


async def serve(spec: dict[str, Any], stop: asyncio.Event) -> None:
    host = str(spec.get("host", "127.0.0.1"))
    rtsp_base = str(spec.get("rtsp_base", f"rtsp://{host}:8554"))
    devices = [SimulatedDevice(device_from(raw), host, rtsp_base) for raw in spec["devices"]]
    discovery_spec = spec.get("discovery") or {}
    responder = DiscoveryResponder(
        host=host,
        port=int(discovery_spec.get("port", 0)),
        multicast_group=str(discovery_spec.get("multicast_group", "")),
        multicast_port=int(discovery_spec.get("multicast_port", 3702)),
    )
    try:
        for device in devices:
            await device.start()
        responder.targets = [
            DiscoveryTarget(device.endpoint, device.device_xaddr, device.spec.name)
            for device in devices
        ]
        await responder.start()
        ports = ",".join(str(device.port) for device in devices)
        print(f"READY discovery={responder.port} ports={ports}", flush=True)
        await stop.wait()
    finally:
        responder.close()
        for device in devices:
            await device.aclose()


async def _main_async(spec: dict[str, Any], watch_stdin: bool) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    fd = sys.stdin.fileno()

    def stdin_readable() -> None:
        # The parent holds our stdin open; end of file means it is gone.
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            stop.set()

    if watch_stdin:
        loop.add_reader(fd, stdin_readable)
    try:
        await serve(spec, stop)
    finally:
        if watch_stdin:
            loop.remove_reader(fd)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m camsim.onvif_server SPEC.json|-", file=sys.stderr)
        return 2
    try:
        if argv[0] == "-":
            spec = json.loads(sys.stdin.readline())
        else:
            with open(argv[0], encoding="utf-8") as handle:
                spec = json.load(handle)
        if not isinstance(spec, dict) or not isinstance(spec.get("devices"), list):
            raise ValueError("the spec must be an object with a 'devices' list")
        for raw in spec["devices"]:
            device_from(raw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"ERROR cannot read the ONVIF simulator spec: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    try:
        asyncio.run(_main_async(spec, watch_stdin=argv[0] == "-"))
    except OSError as exc:
        print(f"ERROR cannot listen: {exc}", file=sys.stderr)
        return 6
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
