"""Standby peer connections for the analyst wall: ICE and DTLS done before a camera is chosen.

A console opens a few connections ahead (``POST /wall/links`` with an SDP offer of one
receive-only H.264 video section; ``201`` with the complete answer and ``Location:
/wall/links/{link}``). Each is negotiated and connected like a WHEP view but carries nothing.
Putting a camera on a tile binds it to one connection:
``POST /wall/links/{link}/view/{camera_id}?profile=main|sub&purpose=...&incident=...`` makes
exactly the decision a WHEP view makes (``MediaAccess.open_view``: role, the owner's consent or
the incident's grant, purpose, the ``view.start`` audit entry; the policy decision point checks
it again while it runs and ends it), then sends the cached GOP on the connection already up, so
the tile decodes one HTTP round trip and one frame later. It answers ``200`` with JSON
(``session_id``, ``camera_id``, ``profile``, ``warnings``) and refuses with the statuses and texts
of WHEP (400, 403, 404, 415, 429, 503). ``DELETE /wall/links/{link}/view`` ends the view (media
stops, ``view.stop``); the connection stays for the next camera. ``DELETE /wall/links/{link}``
closes the connection and its view.

A bound view is an ordinary ``relay.viewer.ViewerSession`` in the relay's registry (statistics,
the per-account share of live views, the shared live loop, a supervisor's WHEP ``DELETE``); only
its peer connection outlives it, and RTP sequence numbers and timestamps run on from one camera
to the next.

``POST /wall/links/prepare?cameras=a,b,c&count=4&profile=sub&purpose=...&incident=...`` starts
pulling, without a viewer, the first ``count`` of the listed cameras (the console's ranked list,
best first) that the caller may view live now (the decision of the console's access check:
owner's consent, role, purpose, the incidents' grants); it answers ``202`` at once with the ones
it starts. Nothing is sent to anyone and nothing is audited: the view, its decision and its
``view.start`` entry come with the bind, which then finds the RTSP connection up or under way. A
pull nobody binds lingers ``hub.close_after`` seconds and stops, as an on-demand camera does.

Bounds: a link answers only the account that opened it (anyone else's link id gets the 404 of an
unknown one); an account holds at most ``MAX_LINKS_PER_USER`` links; a link carries one camera at
a time (409 while it is bound or binding) and takes at most ``BIND_BURST`` bind attempts per
``BIND_WINDOW`` seconds, refused ones included (429: each refusal writes an audit entry). A link
whose connection fails or closes, or that does not connect within ``connect_timeout``, is closed
with its view.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable

from aiohttp import web
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport

from relay.engine import RtpSendEngine
from relay.negotiation import InvalidOffer, OfferedVideo, answer_offer, inspect_offer
from relay.sender import PassthroughSender
from relay.sessions import SESSIONS, RelaySessions
from relay.settings import RelaySettings
from relay.srtp import ScratchBuffer
from relay.timing import RtpClock
from relay.viewer import SharedConnection, ViewerSession, ice_configuration
from relay.whep import (
    PROFILES,
    VIEW_ROLES,
    WARNING_HEADER,
    _add_ice_links,
    _claim,
    _cors,
    _error,
    _failure_reason,
    _http_error,
    _read_offer,
    abandon_view,
    enforce_grant,
    subscribe_view,
    whep_options,
)
from rtcc.appkeys import (
    AUDIT,
    CAMERA_DIRECTORY,
    HUB,
    INCIDENTS,
    MEDIA_ACCESS,
    clock_of,
)
from rtcc.consent import decide
from rtcc.errors import (
    CameraNotFound,
    CodecNotSupported,
    SourceUnavailable,
    StoreUnavailable,
    StreamClosed,
)
from rtcc.hub import StreamHub, Subscription
from rtcc.policy import allow
from rtcc.principal import principal_of

log = logging.getLogger(__name__)

MAX_LINKS_PER_USER = 20
"""Standby connections one account may hold: a 4x4 wall, a pool of four spare."""
BIND_BURST = 40
BIND_WINDOW = 60.0
MAX_PREPARE = 16
"""Cameras one prepare call may name (a 4x4 wall)."""
_CLOSE_TIMEOUT = 5.0


class WallLink:
    """One console's standby peer connection and the view it carries, if any."""

    def __init__(self, link_id: str, user: str, settings: RelaySettings,
                 scratch: ScratchBuffer, on_closed: Callable[[WallLink], None]) -> None:
        self.link_id = link_id
        self._on_closed = on_closed
        self.user = user
        self.name = f"wall:{link_id[:8]}"
        self._settings = settings
        self._scratch = scratch
        self.pc = RTCPeerConnection(ice_configuration(settings))
        self.engine: RtpSendEngine | None = None
        self.offered = OfferedVideo(None)
        self.clock = RtpClock(random.getrandbits(31), settings.catchup_bitrate,
                              settings.catchup_min_step)
        self.view: ViewerSession | None = None
        self.binding = False
        """A bind is being decided (it holds the link until it succeeds or fails)."""
        self.binds = 0
        self._attempts: deque[float] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._close_task: asyncio.Task[None] | None = None
        self.created = time.time()
        self.connected_at: float | None = None
        self.bind_timing: dict[str, float] = {}
        """The last bind's steps, in ms from its request: ``grant`` (the access decision),
        ``subscribe`` (the stream holds the GOP), ``answered``; its view's ``first_packet``."""
        self.close_reason = ""

    @property
    def closing(self) -> bool:
        return self._close_task is not None

    async def negotiate(self, offer_sdp: str, offered: OfferedVideo) -> str:
        """The SDP answer: H.264 only (the camera is not known yet; an H.265 camera is bound
        through its transcoded profile)."""
        self.offered = OfferedVideo(offered.h264, (), offered.names)

        def make_sender(transport: RTCDtlsTransport) -> PassthroughSender:
            return PassthroughSender(
                transport, self.name, self._keyframe_requested,
                history_slots=self._settings.history_slots, gso=self._settings.udp_gso,
                scratch=self._scratch,
            )

        async with asyncio.timeout(self._settings.negotiate_timeout):
            answer, sender = await answer_offer(
                self.pc, offer_sdp, self.offered, "h264", make_sender,
                host_addresses=self._settings.host_addresses,
                public_addresses=self._settings.public_addresses,
            )
        self.engine = sender.engine
        return answer

    def start(self) -> None:
        self.pc.on("connectionstatechange", self._state_changed)
        task = asyncio.get_running_loop().create_task(self._await_connection(),
                                                      name=f"relay:{self.name}:connect")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def connection(self) -> SharedConnection:
        if self.engine is None:
            raise SourceUnavailable("the wall link is not negotiated")
        return SharedConnection(self.pc, self.engine, self.clock)

    def attempt(self, now: float) -> float | None:
        """Count a bind attempt; seconds to wait instead when the link has had its share."""
        attempts = self._attempts
        while attempts and now - attempts[0] >= BIND_WINDOW:
            attempts.popleft()
        if len(attempts) >= BIND_BURST:
            return BIND_WINDOW - (now - attempts[0])
        attempts.append(now)
        return None

    def view_ended(self, session: ViewerSession) -> None:
        if self.view is session:
            self.view = None

    async def unbind(self, reason: str) -> bool:
        view = self.view
        if view is None:
            return False
        await view.aclose(reason)
        return True

    def _keyframe_requested(self, kind: str) -> None:
        view = self.view
        if view is not None:
            view.keyframe_requested(kind)

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and self.connected_at is None:
            self.connected_at = time.time()
        elif state in ("failed", "closed"):
            self.request_close(f"WebRTC connection {state}")

    async def _await_connection(self) -> None:
        engine = self.engine
        if engine is None:
            return
        try:
            async with asyncio.timeout(self._settings.connect_timeout):
                await engine.negotiated.wait()
        except TimeoutError:
            self.request_close(f"the console did not connect within "
                               f"{self._settings.connect_timeout:g} s (ICE or DTLS did not "
                               "complete)")

    def request_close(self, reason: str) -> asyncio.Task[None]:
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(
                self._close(reason), name=f"relay:{self.name}:close")
        return self._close_task

    async def aclose(self, reason: str) -> None:
        await asyncio.shield(self.request_close(reason))

    async def _close(self, reason: str) -> None:
        self.close_reason = reason
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        log.info("wall link %s (%s) closes: %s", self.name, self.user, reason)
        try:
            await self.unbind(reason)
        finally:
            try:
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await self.pc.close()
            except Exception as exc:  # noqa: BLE001 -- a broken transport must not keep the link
                log.warning("wall link %s: closing the peer connection failed: %r", self.name,
                            exc)
            self._on_closed(self)

    def stats(self) -> dict[str, object]:
        view = self.view
        return {
            "link_id": self.link_id,
            "user": self.user,
            "state": self.pc.connectionState,
            "age": round(time.time() - self.created, 3),
            "connected_after": (round(self.connected_at - self.created, 3)
                                if self.connected_at is not None else None),
            "binds": self.binds,
            "bind_timing": self._bind_timing(view),
            "camera_id": view.camera_id if view is not None else None,
            "session_id": view.session_id if view is not None else None,
        }


    def _bind_timing(self, view: ViewerSession | None) -> dict[str, float]:
        timing = dict(self.bind_timing)
        received = timing.pop("received", None)
        if view is not None and view.first_frame_at is not None and received is not None:
            timing["first_packet"] = round((view.first_frame_at - received) * 1000, 1)
        return timing


class WallLinks:
    """Every wall link of the application, by opaque id (``app[WALL_LINKS]``)."""

    def __init__(self, sessions: RelaySessions) -> None:
        self.sessions = sessions
        self._links: dict[str, WallLink] = {}
        self.opened = 0
        self.prepared = 0
        """Pulls started ahead of a bind (``POST /wall/links/prepare``)."""
        self._pulls: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._links)

    def held_by(self, user: str) -> int:
        return sum(1 for link in self._links.values() if link.user == user)

    def open(self, user: str) -> WallLink:
        registry = self.sessions
        link = WallLink(registry.new_session_id(), user, registry.settings, registry.scratch,
                        self._closed)
        self._links[link.link_id] = link
        self.opened += 1
        return link

    def _closed(self, link: WallLink) -> None:
        if self._links.get(link.link_id) is link:
            del self._links[link.link_id]

    def get(self, link_id: str) -> WallLink | None:
        return self._links.get(link_id)

    def pull(self, hub: StreamHub, camera_id: str, profile: str) -> None:
        """Start the camera's source with no viewer; it lingers as an on-demand one does."""
        async def start() -> None:
            try:
                sub = await hub.get(camera_id, profile).subscribe(
                    "wall:prepare", wait=False, replay_gop=False)
            except (SourceUnavailable, StreamClosed, CameraNotFound) as exc:
                log.info("wall prepare: %s/%s did not start: %s", camera_id, profile, exc)
                return
            sub.close("started ahead of a wall view")  # the linger timer takes it from here

        self.prepared += 1
        task = asyncio.get_running_loop().create_task(start(),
                                                      name=f"relay:wall:prepare:{camera_id}")
        self._pulls.add(task)
        task.add_done_callback(self._pulls.discard)

    async def shutdown(self, app: web.Application | None = None) -> None:  # noqa: ARG002 -- aiohttp on_shutdown signal
        for task in list(self._pulls):
            task.cancel()
        await asyncio.gather(*self._pulls, return_exceptions=True)
        links = list(self._links.values())
        await asyncio.gather(*(link.aclose("server shutting down") for link in links),
                             return_exceptions=True)

    def stats(self, user: str | None = None) -> dict[str, object]:
        """Every link, or only ``user``'s."""
        links = [link.stats() for link in self._links.values()
                 if user is None or link.user == user]
        return {"links": len(links), "opened": self.opened, "prepared": self.prepared,
                "bound": sum(1 for item in links if item["camera_id"] is not None),
                "items": links}


WALL_LINKS = web.AppKey("relay_wall_links", WallLinks)


def _caller(request: web.Request) -> str:
    principal = principal_of(request)
    return principal.username if principal is not None else ""


def _own_link(request: web.Request, link_id: str | None = None) -> WallLink:
    link = request.app[WALL_LINKS].get(
        request.match_info["link_id"] if link_id is None else link_id)
    if link is None or link.closing or (
        AUDIT in request.config_dict and link.user != _caller(request)
    ):
        # Someone else's link looks exactly like one that does not exist.
        raise _error(request, web.HTTPNotFound, "no such wall link (it may have closed)")
    return link


@allow(*VIEW_ROLES)
async def link_post(request: web.Request) -> web.Response:
    links = request.app[WALL_LINKS]
    registry = links.sessions
    settings = registry.settings
    offer = await _read_offer(request, settings.max_offer_bytes)
    try:
        offered = inspect_offer(offer)
    except InvalidOffer as exc:
        raise _error(request, web.HTTPBadRequest, str(exc)) from None
    except CodecNotSupported as exc:
        raise _error(request, web.HTTPUnsupportedMediaType, str(exc)) from None
    if offered.h264 is None:
        raise _error(request, web.HTTPUnsupportedMediaType,
                     "a wall link carries H.264 (packetization mode 1, baseline profile) and "
                     f"this offer has none (it offered: {offered.describe()}); use WHEP")
    user = _caller(request)
    held = links.held_by(user)
    if held >= MAX_LINKS_PER_USER:
        raise _error(request, web.HTTPTooManyRequests,
                     f"you already hold {held} wall links (at most {MAX_LINKS_PER_USER}); "
                     "close one and try again", **{"Retry-After": "5"})
    if not registry.accepting or len(links) >= settings.max_sessions:
        raise _error(request, web.HTTPServiceUnavailable,
                     "the relay is at its viewer limit; try again shortly", **{"Retry-After": "5"})
    link = links.open(user)
    try:
        answer = await link.negotiate(offer, offered)
    except BaseException as exc:
        await link.aclose(_failure_reason(exc))
        if not isinstance(exc, Exception):
            raise
        raise _http_error(request, exc) from None
    link.start()
    response = web.Response(status=201, text=answer, content_type="application/sdp",
                            headers=_cors(request, {"Location": f"/wall/links/{link.link_id}"}))
    _add_ice_links(response, settings, user or "viewer")
    return response


@allow(*VIEW_ROLES)
async def link_delete(request: web.Request) -> web.Response:
    link = _own_link(request)
    await link.aclose("viewer ended the session")  # the words of a WHEP DELETE
    return web.Response(status=200, text="wall link closed", headers=_cors(request, {}))


@allow(*VIEW_ROLES)
async def view_post(request: web.Request) -> web.Response:
    view = await _bind_one(request, request.match_info["link_id"], request.match_info["camera_id"],
                           request.query.get("profile", "main"))
    headers = {WARNING_HEADER: "; ".join(view.warnings)} if view.warnings else {}
    # The page reads the server's steps beside its own clock (same origin: no allow header).
    headers["Server-Timing"] = view.server_timing
    return web.json_response(view.answer(), headers=_cors(request, headers))


class _Bound:
    """A view a bind started: what its answer says."""

    def __init__(self, session_id: str, camera_id: str, profile: str, warnings: list[str],
                 timing: dict[str, float], received: float) -> None:
        self.session_id = session_id
        self.camera_id = camera_id
        self.profile = profile
        self.warnings = warnings
        self.timing = {step: timing[step] for step in ("grant", "subscribe", "answered")}
        self.server_timing = ", ".join(
            [f"{step};dur={value}" for step, value in self.timing.items()]
            + [f'received;desc="{received * 1000:.1f}"'])

    def answer(self) -> dict[str, object]:
        return {"session_id": self.session_id, "camera_id": self.camera_id,
                "profile": self.profile, "warnings": self.warnings}


async def _bind_one(request: web.Request, link_id: str, camera_id: str, requested: str,
                    received: float | None = None) -> _Bound:
    """Bind one camera to one of the caller's links, or raise the refusal (an HTTP error)."""
    received = time.time() if received is None else received
    link = _own_link(request, link_id)
    registry = request.app[SESSIONS]
    if requested not in PROFILES:
        raise _error(request, web.HTTPBadRequest, "profile must be 'main' or 'sub'")
    if link.view is not None or link.binding:
        shown = link.view.camera_id if link.view is not None else "another camera"
        raise _error(request, web.HTTPConflict,
                     f"this wall link already carries {shown}; end that view first "
                     "(DELETE its view)")
    wait = link.attempt(time.monotonic())
    if wait is not None:
        raise _error(request, web.HTTPTooManyRequests,
                     f"too many views asked on this wall link (at most {BIND_BURST} per "
                     f"{BIND_WINDOW:g} s); wait and try again",
                     **{"Retry-After": str(max(1, round(wait)))})
    if not registry.accepting:
        raise _error(request, web.HTTPServiceUnavailable,
                     "the relay is at its viewer limit; try again shortly", **{"Retry-After": "5"})
    link.binding = True
    link.bind_timing = {"received": received}
    session_id = registry.new_session_id()
    try:
        _claim(request, registry, session_id)
        try:
            return await _bind(request, registry, link, camera_id, requested, session_id)
        finally:
            if registry.get(session_id) is None:  # refused or failed: it holds no place
                registry.release(session_id)
    finally:
        link.binding = False


async def _bind(request: web.Request, registry: RelaySessions, link: WallLink, camera_id: str,
                requested: str, session_id: str) -> _Bound:
    hub = request.app[HUB]
    profiles = hub.profiles(camera_id)
    profile = requested if requested in profiles or not profiles else "main"
    access = request.app[MEDIA_ACCESS]
    timing = link.bind_timing
    received = timing.get("received", time.time())

    def mark(step: str) -> None:
        timing[step] = round((time.time() - received) * 1000, 1)

    try:
        grant = await access.open_view(request, camera_id, profile)
    except StoreUnavailable as exc:
        raise _error(request, web.HTTPServiceUnavailable, str(exc), **{"Retry-After": "5"}
                     ) from None
    mark("grant")
    session: ViewerSession | None = None
    subscription: Subscription | None = None
    try:
        stream, subscription, warnings = await subscribe_view(
            hub, camera_id, profile, link.offered, f"wall:{session_id[:8]}")
        mark("subscribe")

        def closed(ended: ViewerSession) -> None:
            registry.session_closed(ended)
            link.view_ended(ended)

        session = ViewerSession(
            session_id=session_id, stream=stream, subscription=subscription, grant=grant,
            access=access, cache=registry.cache_for(stream.key), settings=registry.settings,
            on_closed=closed, scratch=registry.scratch, fanout=registry.fanout_for(stream.key),
            connection=link.connection(),
        )
        if not registry.accepting or link.closing:
            raise SourceUnavailable("the relay is shutting down or the wall link closed")
        registry.add(session)
        link.view = session
        link.binds += 1
        session.start()
        enforce_grant(request, grant, session)
    except BaseException as exc:  # noqa: BLE001 -- undone, then raised again by abandon_view
        await abandon_view(request, grant, session, subscription, exc)
    log.info("wall link %s (%s, %s) shows %s/%s", link.name, grant.user, grant.role,
             camera_id, stream.key.profile)
    mark("answered")
    return _Bound(session_id, camera_id, stream.key.profile, warnings, timing, received)


MAX_BATCH = MAX_LINKS_PER_USER
"""Views one batch may ask for (every link an account may hold)."""


@allow(*VIEW_ROLES)
async def views_post(request: web.Request) -> web.Response:
    """Bind several cameras at once (a wall filling itself): ``POST /wall/links/views?purpose=
    ...&incident=...`` with ``{"views": [{"link", "camera", "profile"}, ...]}``.

    Each item is decided exactly as its own ``POST /wall/links/{link}/view/{camera}`` would be
    (the same refusals, audit entries, per-account share and per-link bind attempts), all at
    once; the answer is ``200`` with ``{"views": [...]}`` in the order asked, each item either
    the single bind's answer with ``"status": 200`` or ``{"status", "error", "retry_after"}``.
    """
    received = time.time()
    try:
        body = await request.json()
    except ValueError:
        body = None
    items = body.get("views") if isinstance(body, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH or not all(
        isinstance(item, dict) and isinstance(item.get("link"), str)
        and isinstance(item.get("camera"), str) and isinstance(item.get("profile", "main"), str)
        for item in items
    ):
        raise _error(request, web.HTTPBadRequest,
                     f'send {{"views": [{{"link", "camera", "profile"}}, ...]}} with 1 to '
                     f"{MAX_BATCH} items as JSON")
    asked = {str(item["link"]) for item in items}
    if len(asked) != len(items):
        raise _error(request, web.HTTPBadRequest, "each wall link may appear once in a batch")

    async def one(item: dict[str, object]) -> dict[str, object]:
        try:
            view = await _bind_one(request, str(item["link"]), str(item["camera"]),
                                   str(item.get("profile", "main")), received)
        except web.HTTPException as exc:
            return {"status": exc.status, "error": exc.text or exc.reason,
                    "retry_after": int(exc.headers.get("Retry-After", "0") or 0)}
        return {"status": 200, **view.answer(), "timing": view.timing}

    # Each decision runs its own audit write; the audit store admits one writer at a time, so
    # the chain keeps a single head whatever order they land in.
    results = await asyncio.gather(*(one(item) for item in items))
    return web.json_response({"views": list(results), "received": round(received * 1000, 1)},
                             headers=_cors(request, {}))


@allow(*VIEW_ROLES)
async def close_post(request: web.Request) -> web.Response:
    """Close several of the caller's links in one request (``{"links": [id, ...]}``): a page
    that goes away ends its views with this one request, which needs one free HTTP connection
    where a DELETE per link would queue behind the page's event streams."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    ids = body.get("links") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_BATCH or not all(
            isinstance(item, str) for item in ids):
        raise _error(request, web.HTTPBadRequest,
                     f'send {{"links": [id, ...]}} with 1 to {MAX_BATCH} wall link ids as JSON')
    links = request.app[WALL_LINKS]
    caller = _caller(request)
    owned = [link for link in (links.get(str(link_id)) for link_id in dict.fromkeys(ids))
             if link is not None and not link.closing
             and (AUDIT not in request.config_dict or link.user == caller)]
    await asyncio.gather(*(link.aclose("viewer ended the session") for link in owned))
    return web.json_response({"closed": len(owned)}, headers=_cors(request, {}))


@allow(*VIEW_ROLES)
async def prepare_post(request: web.Request) -> web.Response:
    """Start pulling the best cameras the caller may view, so a bind finds them connecting."""
    ids = [item for item in request.query.get("cameras", "").split(",") if item]
    if not ids or len(ids) > MAX_PREPARE:
        raise _error(request, web.HTTPBadRequest,
                     f"cameras: give 1 to {MAX_PREPARE} camera ids, comma-separated, best first")
    try:
        count = int(request.query.get("count", "4"))
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_PREPARE:
        raise _error(request, web.HTTPBadRequest, f"count must be 1 to {MAX_PREPARE}")
    requested = request.query.get("profile", "sub")
    if requested not in PROFILES:
        raise _error(request, web.HTTPBadRequest, "profile must be 'main' or 'sub'")
    principal = principal_of(request)
    directory = request.config_dict.get(CAMERA_DIRECTORY)
    incidents = request.config_dict.get(INCIDENTS)
    if principal is None or directory is None or incidents is None:
        # Without the security core nothing can be decided, so nothing is pulled.
        return web.json_response({"pulling": []}, status=202, headers=_cors(request, {}))
    hub = request.app[HUB]
    links = request.app[WALL_LINKS]
    purpose = request.query.get("purpose", "")[:200]
    incident = request.query.get("incident", "")[:64]
    now = clock_of(request)()
    pulling: list[str] = []
    for camera_id in dict.fromkeys(ids):
        if len(pulling) >= count:
            break
        if not hub.has_camera(camera_id):
            continue
        consent = await directory.consent_of(camera_id)
        if consent is None:
            continue
        decision = decide(consent, role=principal.role, owner_id=principal.owner_id,
                          purpose=purpose, requested_incident=incident,
                          active_incidents=await incidents.active_for_camera(camera_id), now=now)
        if not decision.allowed:
            continue  # the bind would be refused: never touch this camera's source
        profiles = hub.profiles(camera_id)
        links.pull(hub, camera_id, requested if requested in profiles or not profiles
                   else "main")
        pulling.append(camera_id)
    return web.json_response({"pulling": pulling}, status=202, headers=_cors(request, {}))


@allow(*VIEW_ROLES)
async def links_get(request: web.Request) -> web.Response:
    """The caller's own wall links: their state and the camera each carries."""
    return web.json_response(request.app[WALL_LINKS].stats(_caller(request)),
                             headers=_cors(request, {}))


@allow(*VIEW_ROLES)
async def view_delete(request: web.Request) -> web.Response:
    link = _own_link(request)
    if not await link.unbind("viewer ended the session"):
        raise _error(request, web.HTTPNotFound, "this wall link carries no view")
    return web.Response(status=200, text="view ended", headers=_cors(request, {}))


def add_routes(app: web.Application, sessions: RelaySessions) -> WallLinks:
    """Register the wall link routes and their registry (closed on shutdown)."""
    links = WallLinks(sessions)
    app[WALL_LINKS] = links
    app.on_shutdown.append(links.shutdown)
    router = app.router
    router.add_post("/wall/links", link_post)
    router.add_get("/wall/links", links_get)
    router.add_post("/wall/links/prepare", prepare_post)
    router.add_post("/wall/links/views", views_post)
    router.add_post("/wall/links/close", close_post)
    router.add_route("OPTIONS", "/wall/links", whep_options)
    router.add_delete("/wall/links/{link_id}", link_delete)
    router.add_post("/wall/links/{link_id}/view/{camera_id}", view_post)
    router.add_delete("/wall/links/{link_id}/view", view_delete)
    return links
