"""A relay application over a hub fed by ffmpeg-made clips, with an allow-all MediaAccess."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Middleware

import relay
from relay.settings import IceServer, RelaySettings
from rtcc.access import ViewGrant
from rtcc.appkeys import HUB, MEDIA_ACCESS
from rtcc.hub import StreamHub, StreamSettings
from rtcc.policy import Role
from rtcc.principal import PRINCIPAL, Principal
from tests.fixtures.coturn import TURN_SECRET, Coturn
from tests.relay.clip import Clip, ClipSource, make_clip


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("relay-clips")


@pytest.fixture(scope="session")
def small_clip(clip_dir: Path) -> Clip:
    """320x240, 15 fps, a keyframe every 2 s."""
    return make_clip(clip_dir / "small.h264", fps=15, gop=30, seconds=4)


@pytest.fixture(scope="session")
def index_clip(clip_dir: Path) -> Clip:
    """Flat frames whose luma is the frame number, 15 fps, a keyframe every 4 s."""
    return make_clip(clip_dir / "index.h264", fps=15, gop=60, seconds=8, pattern="index")


class RecordingAccess:
    """Lets everyone watch everything and remembers what it was told."""

    def __init__(self) -> None:
        self.opened: list[ViewGrant] = []
        self.closed: list[tuple[ViewGrant, str]] = []
        self._ids = itertools.count(1)
        self.refuse: type[web.HTTPException] | None = None

    async def open_view(self, request: web.Request, camera_id: str, profile: str) -> ViewGrant:
        if self.refuse is not None:
            raise self.refuse(text=f"not allowed to watch {camera_id}")
        grant = ViewGrant(
            view_id=f"view-{next(self._ids)}", camera_id=camera_id, profile=profile,
            user="tester", role="analyst", purpose=request.query.get("purpose", "test"),
            incident="", source_address=request.remote or "", started=time.time(),
        )
        self.opened.append(grant)
        return grant

    async def open_view_as(self, principal: Principal, camera_id: str, profile: str, *,
                           purpose: str, incident: str, source: str) -> ViewGrant:
        if self.refuse is not None:
            raise self.refuse(text=f"not allowed to watch {camera_id}")
        grant = ViewGrant(
            view_id=f"view-{next(self._ids)}", camera_id=camera_id, profile=profile,
            user=principal.username, role=str(principal.role), purpose=purpose or "test",
            incident=incident, source_address=source, started=time.time(),
        )
        self.opened.append(grant)
        return grant

    async def close_view(self, grant: ViewGrant, reason: str) -> None:
        self.closed.append((grant, reason))

    @property
    def open_views(self) -> int:
        return len(self.opened) - len(self.closed)


@dataclass
class RelayServer:
    app: web.Application
    url: str
    hub: StreamHub
    access: RecordingAccess
    sources: dict[str, list[ClipSource]] = field(default_factory=dict)

    @property
    def registry(self) -> relay.RelaySessions:
        return self.app[relay.SESSIONS]


ServerFactory = Callable[..., "AsyncIterator[RelayServer]"]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def start_server(
    cameras: dict[str, dict[str, Clip]],
    settings: RelaySettings | None = None,
    stream_settings: StreamSettings | None = None,
    middlewares: Sequence[Middleware] = (),
) -> tuple[RelayServer, web.AppRunner]:
    app = web.Application(middlewares=middlewares)
    hub = StreamHub()
    access = RecordingAccess()
    app[HUB] = hub
    app[MEDIA_ACCESS] = access
    server_sources: dict[str, list[ClipSource]] = {}
    for camera, profiles in cameras.items():
        for profile, clip in profiles.items():
            key = f"{camera}/{profile}"
            server_sources[key] = []

            def factory(clip: Clip = clip, key: str = key) -> ClipSource:
                source = ClipSource(clip, key)
                server_sources[key].append(source)
                return source

            hub.register(camera, profile, factory,
                         stream_settings or StreamSettings(close_after=1.0, start_timeout=5.0))
    relay.add_routes(app, settings or RelaySettings())

    async def close_hub(app: web.Application) -> None:  # noqa: ARG001 -- aiohttp on_cleanup signal
        await hub.aclose()

    app.on_cleanup.append(close_hub)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return RelayServer(app, f"http://127.0.0.1:{port}", hub, access, server_sources), runner


@pytest.fixture
async def server(small_clip: Clip) -> AsyncIterator[RelayServer]:
    srv, runner = await start_server({"cam1": {"main": small_clip}})
    try:
        yield srv
    finally:
        await runner.cleanup()


@web.middleware
async def as_analyst(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
    """What the security middleware does for a logged-in analyst (the X-Test-Analyst header
    stands in for the session cookie): the relay hands TURN credentials only to viewers."""
    if request.headers.get("X-Test-Analyst"):
        request[PRINCIPAL] = Principal(7, "analyst1", Role.ANALYST, None, "session")
    return await handler(request)


@pytest.fixture
async def turn_server(small_clip: Clip, coturn: Coturn
                      ) -> AsyncIterator[tuple[RelayServer, Coturn]]:
    settings = RelaySettings(ice_servers=(IceServer(coturn.url),), turn_secret=TURN_SECRET,
                             turn_ttl=600, host_addresses=("127.0.0.1",))
    srv, runner = await start_server({"cam1": {"main": small_clip}}, settings,
                                     middlewares=[as_analyst])
    try:
        yield srv, coturn
    finally:
        await runner.cleanup()
