"""Building the Source of each camera profile: RTSP pulls whose URL passed the safety check.

The department's private-network allowlist (``security.allow_private_camera_hosts``) applies only
to addresses the department registered; an address an owner registered is pulled only when it is
public (a camera on the owner's own network is reached through the owner's agent instead)."""

from __future__ import annotations

from ingest.handoff import LoopHandoff
from ingest.rtsp import RtspSource, RtspTarget
from ingest.rtsp_guard import EgressRules
from rtcc.camera_url import check_camera_url
from rtcc.config import IngestConfig, SecurityConfig
from rtcc.errors import UnsafeUrl
from rtcc.hub import FrameSink, Source, SourceFactory


class CheckedRtspSource:
    """Checks and resolves the camera URL each time the stream starts (DNS may change), then
    pulls from the checked address, so a name cannot be re-pointed at a private host; the
    camera's redirects pass the same check (ingest.rtsp_guard)."""

    def __init__(
        self,
        name: str,
        target: RtspTarget,
        ingest: IngestConfig,
        security: SecurityConfig,
        handoff: LoopHandoff,
        *,
        allowlisted: bool,
    ) -> None:
        self._name = name
        self._allow = security.allow_private_camera_hosts if allowlisted else []
        self._target = target
        self._ingest = ingest
        self._security = security
        self._handoff = handoff
        self._inner: RtspSource | None = None
        self._refusal = ""

    async def start(self, sink: FrameSink) -> None:
        allow_networks = self._allow
        try:
            checked = await check_camera_url(self._target.url, allow_networks=allow_networks)
        except UnsafeUrl as exc:
            self._refusal = str(exc)
            raise
        # Every redirect the camera answers with is checked with the same decision.
        egress = EgressRules(allow_networks=tuple(allow_networks))
        self._inner = RtspSource(self._name, self._target, self._ingest, handoff=self._handoff,
                                 egress=egress, checked=checked)
        await self._inner.start(sink)

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()

    def stats(self) -> dict[str, object]:
        if self._inner is not None:
            return self._inner.stats()
        return {"refused": self._refusal} if self._refusal else {}


def rtsp_source_factory(
    name: str,
    target: RtspTarget,
    ingest: IngestConfig,
    security: SecurityConfig,
    handoff: LoopHandoff,
    *,
    allowlisted: bool,
) -> SourceFactory:
    """``allowlisted``: the department registered this address, so its allowlist applies."""

    def make() -> Source:
        return CheckedRtspSource(name, target, ingest, security, handoff,
                                 allowlisted=allowlisted)

    return make
