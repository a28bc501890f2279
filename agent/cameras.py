"""The agent's cameras: manual RTSP URLs, ONVIF devices given by address, and devices found
with WS-Discovery, each probed with the ONVIF adapter.

Credentials live only here, in memory: the inventory reported to the server
(``CameraReport``) carries names, models, profiles and status, never an address with
credentials or a password. One camera failing (wrong password, SOAP fault, hostile reply, no
answer) is reported as that camera's error and does not affect the others.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from ingest.onvif import discovery
from ingest.onvif.client import OnvifClient
from ingest.onvif.discovery import DiscoveryTarget
from ingest.onvif.models import OnvifError, VideoProfile
from ingest.rtsp import RtspTarget
from rtcc.agent_protocol import CameraReport, Profile, ProfileReport
from rtcc.camera_url import parse_rtsp_url, redact_url
from rtcc.errors import RtccError, UnsafeUrl

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str = ""
    password: str = field(default="", repr=False)


def split_credentials(url: str) -> tuple[str, Credentials | None]:
    """The URL without ``user:password@`` and the credentials it carried, if any."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return clean, Credentials(unquote(parts.username or ""), unquote(parts.password or ""))


def device_xaddr(text: str) -> str:
    """``HOST``, ``HOST:PORT`` or a URL to the device service address."""
    text = text.strip()
    if "://" not in text:
        text = f"http://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("an ONVIF address must be HOST[:PORT] or an http:// URL")
    if parts.username or parts.password:
        raise UnsafeUrl("give ONVIF credentials with --onvif-user and --onvif-password-env")
    path = parts.path if parts.path not in ("", "/") else "/onvif/device_service"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


@dataclass
class AgentCamera:
    """A camera as the agent knows it, secrets included."""

    key: str
    report: CameraReport
    rtsp: dict[Profile, RtspTarget] = field(default_factory=dict)
    tokens: dict[Profile, str] = field(default_factory=dict)
    onvif: OnvifClient | None = None


def _choose_profiles(profiles: tuple[VideoProfile, ...]) -> list[tuple[Profile, VideoProfile]]:
    usable = sorted((p for p in profiles if p.is_h264), key=lambda p: p.width * p.height,
                    reverse=True)
    names: tuple[Profile, Profile] = ("main", "sub")
    return list(zip(names, usable[:2], strict=False))


class Inventory:
    def __init__(
        self,
        *,
        rtsp_urls: list[str],
        onvif_addresses: list[str],
        onvif_credentials: Credentials,
        discover: bool,
        discovery_targets: tuple[DiscoveryTarget, ...] = (discovery.MULTICAST,),
        discovery_wait: float = 2.0,
    ) -> None:
        self._rtsp_urls = list(rtsp_urls)
        self._onvif_addresses = [device_xaddr(address) for address in onvif_addresses]
        self._credentials = onvif_credentials
        self._discover = discover
        self._targets = discovery_targets
        self._discovery_wait = discovery_wait
        self.cameras: dict[str, AgentCamera] = {}
        self.ready = asyncio.Event()
        self.refreshes = 0

    def get(self, key: str) -> AgentCamera | None:
        return self.cameras.get(key)

    def reports(self) -> list[CameraReport]:
        return [camera.report for camera in self.cameras.values()]

    def secrets(self) -> list[str]:
        """Every password this inventory holds (to scrub from messages)."""
        found = {self._credentials.password}
        for camera in self.cameras.values():
            found.update(target.password for target in camera.rtsp.values())
        return [secret for secret in found if secret]

    async def refresh(self) -> bool:
        """Discover and probe every camera again; True when the reported inventory changed."""
        names: dict[str, str] = {}
        addresses = list(self._onvif_addresses)
        if self._discover:
            try:
                for match in await discovery.probe(self._targets, wait=self._discovery_wait):
                    xaddr = match.xaddrs[0]
                    if xaddr not in addresses:
                        addresses.append(xaddr)
                    names[xaddr] = match.name
            except OSError as exc:
                log.warning("discovery failed: %s", exc)
        found: list[AgentCamera] = [self._rtsp_camera(url) for url in self._rtsp_urls]
        probes = [self._probe_onvif(xaddr, names.get(xaddr, "")) for xaddr in addresses]
        found.extend(await asyncio.gather(*probes))
        old, self.cameras = self.cameras, {camera.key: camera for camera in found}
        for camera in old.values():
            if camera.onvif is not None:
                await camera.onvif.aclose()
        self.refreshes += 1
        self.ready.set()
        before = [camera.report for camera in old.values()]
        return before != self.reports()

    def _rtsp_camera(self, url: str) -> AgentCamera:
        clean, credentials = split_credentials(url)
        credentials = credentials or Credentials()
        parts = urlsplit(clean)
        key = f"rtsp:{parts.hostname}:{parts.port or 554}{parts.path or '/'}"
        try:
            parse_rtsp_url(clean)
            target = RtspTarget(clean, credentials.username, credentials.password)
        except RtccError as exc:
            report = CameraReport(key=key[:200], name=redact_url(clean)[:200], source="rtsp",
                                  status="error", error=str(exc))
            return AgentCamera(key[:200], report)
        report = CameraReport(
            key=key[:200], name=f"{parts.hostname}{parts.path}"[:200], source="rtsp",
            profiles=(ProfileReport("main", "", 0, 0, 0.0),),
        )
        return AgentCamera(key[:200], report, rtsp={"main": target})

    async def _probe_onvif(self, xaddr: str, announced_name: str) -> AgentCamera:
        parts = urlsplit(xaddr)
        key = f"onvif:{parts.hostname}:{parts.port or 80}"
        creds = self._credentials
        client = OnvifClient.from_xaddr(xaddr, creds.username, creds.password)
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                return await self._describe(client, key, announced_name)
        except (OnvifError, TimeoutError) as exc:
            await client.aclose()
            reason = str(exc) if isinstance(exc, OnvifError) else "the camera took too long"
            log.warning("camera %s: %s", key, reason)
            report = CameraReport(key=key, name=announced_name or key, source="onvif",
                                  status="error", error=reason)
            return AgentCamera(key, report)

    async def _describe(self, client: OnvifClient, key: str, announced: str) -> AgentCamera:
        await client.connect()
        info = await client.device_info()
        name = announced or f"{info.manufacturer} {info.model}".strip() or client.where
        profiles = await client.profiles()
        chosen = _choose_profiles(profiles)
        camera = AgentCamera(key, CameraReport(key=key, name=name, source="onvif"),
                             onvif=client)
        if not chosen:
            camera.report = CameraReport(
                key=key, name=name, source="onvif", manufacturer=info.manufacturer,
                model=info.model, firmware=info.firmware, status="error",
                error="the camera offers no H.264 profile; set one of its streams to H.264",
            )
            return camera
        reports: list[ProfileReport] = []
        for profile_name, profile in chosen:
            uri, embedded = split_credentials(await client.stream_uri(profile.token))
            login = embedded or self._credentials
            camera.rtsp[profile_name] = RtspTarget(uri, login.username, login.password)
            camera.tokens[profile_name] = profile.token
            reports.append(ProfileReport(profile_name, profile.encoding, profile.width,
                                         profile.height, profile.fps))
        main = chosen[0][1]
        try:
            snapshot = await client.snapshot_uri(main.token) is not None
        except OnvifError:
            snapshot = False
        camera.report = CameraReport(
            key=key, name=name, source="onvif", manufacturer=info.manufacturer, model=info.model,
            firmware=info.firmware, profiles=tuple(reports),
            ptz=client.capabilities().ptz and main.has_ptz, snapshot=snapshot,
        )
        log.info("camera %s: %s %s, %d H.264 profiles%s", key, info.manufacturer, info.model,
                 len(reports), ", PTZ" if camera.report.ptz else "")
        return camera

    async def aclose(self) -> None:
        for camera in self.cameras.values():
            if camera.onvif is not None:
                await camera.onvif.aclose()
        self.cameras.clear()
