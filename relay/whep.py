"""WHEP (WebRTC-HTTP egress protocol, RFC 9725) for live cameras, and a one-camera player page.

``POST /whep/{camera_id}?profile=main|sub`` with an SDP offer answers ``201 Created`` with the SDP
answer (every ICE candidate included: the server does not trickle, so ``PATCH`` answers 405) and
``Location: /whep/{camera_id}/{session_id}``; ``DELETE`` on that location ends the view. Errors
are plain text: 400 malformed offer, 403 not allowed, 404 unknown camera, 415 a codec the viewer
cannot play, 429 the account holds its share of live views already (``max_sessions_per_user``,
``max_sessions_per_owner``), 503 camera unreachable or relay full.

The ICE servers viewers should use (TURN with credentials minted per caller, ``relay.turn``) are
announced as ``Link: <turn:...>; rel="ice-server"`` headers on the answer and on ``OPTIONS``
(there only to a logged-in user who may watch), so a client can gather relay candidates for
its offer.

Consent is decided per camera by ``MediaAccess.open_view`` before any peer connection exists;
``close_view`` is called exactly once when the session ends, however it ends.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import NoReturn

from aiohttp import web

from relay.negotiation import InvalidOffer, OfferedVideo, inspect_offer
from relay.sessions import SESSIONS, RelaySessions
from relay.settings import RelaySettings
from relay.turn import link_headers, viewer_ice_servers
from relay.viewer import ViewerSession
from rtcc.access import ViewGrant
from rtcc.appkeys import AUDIT, HUB, MEDIA_ACCESS, VIEW_ENFORCEMENT
from rtcc.errors import (
    CameraNotFound,
    CodecNotSupported,
    ProfileNotFound,
    SourceUnavailable,
    StoreUnavailable,
    StreamClosed,
)
from rtcc.hub import Stream, StreamHub, Subscription
from rtcc.policy import Role, allow, public, staff
from rtcc.principal import principal_of
from rtcc.transcode import transcoded_profile

log = logging.getLogger(__name__)
_SUPERVISORS = frozenset({Role.ADMIN, Role.SUPERVISOR})

STATIC = Path(__file__).parent / "static"
VIEW_ROLES = (Role.ADMIN, Role.SUPERVISOR, Role.ANALYST, Role.INVESTIGATOR, Role.OWNER)
PROFILES = ("main", "sub")
WARNING_HEADER = "RTCC-Media-Warning"
_CAMERA_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_CORS_HEADERS = {
    "Access-Control-Allow-Methods": "OPTIONS, POST, DELETE, PATCH",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": f"Location, ETag, Link, {WARNING_HEADER}",
    "Access-Control-Max-Age": "600",
}


def _cors(request: web.Request, headers: dict[str, str]) -> dict[str, str]:
    """Add CORS headers when the caller's origin is one the configuration allows."""
    origin = request.headers.get("Origin")
    allowed = request.app[SESSIONS].settings.cors_origins
    if origin and ("*" in allowed or origin in allowed):
        headers["Access-Control-Allow-Origin"] = "*" if "*" in allowed else origin
        headers["Vary"] = "Origin"
        headers.update(_CORS_HEADERS)
    return headers


def _error(request: web.Request, kind: type[web.HTTPError], text: str,
           **headers: str) -> web.HTTPError:
    return kind(text=text, headers=_cors(request, dict(headers)))


async def _read_offer(request: web.Request, limit: int) -> str:
    if request.content_type != "application/sdp":
        raise _error(request, web.HTTPUnsupportedMediaType,
                     "send the SDP offer with Content-Type: application/sdp")
    def too_large(size: int) -> web.HTTPRequestEntityTooLarge:
        return web.HTTPRequestEntityTooLarge(
            max_size=limit, actual_size=size, text=f"the offer is larger than {limit} bytes",
            headers=_cors(request, {}),
        )

    if request.content_length is not None and request.content_length > limit:
        raise too_large(request.content_length)
    body = bytearray()
    async for chunk in request.content.iter_chunked(16384):
        body += chunk
        if len(body) > limit:
            raise too_large(len(body))
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise _error(request, web.HTTPBadRequest, "the offer is not UTF-8 text") from None


def _check_codec(stream: Stream, offered: OfferedVideo, transcoded: bool = False) -> list[str]:
    """Warnings about what cannot pass through; raises CodecNotSupported when the viewer cannot
    receive the stream's video (``transcoded``: an H.264 version of the stream exists)."""
    info = stream.media_info
    codec = info.video_codec.lower()
    camera = stream.key.camera_id
    if codec == "h265" and not offered.h265 and not transcoded:
        raise CodecNotSupported(
            f"camera {camera} sends {info.video_codec} (H.265) video and this viewer cannot "
            "receive H.265 over "
            f"WebRTC (it offered: {offered.describe()}); set transcode_h264: true on the "
            f"camera's {stream.key.profile} profile to have the server transcode it to H.264, "
            "or watch from a browser that receives H.265"
        )
    if codec not in ("", "h264", "h265"):
        raise CodecNotSupported(
            f"camera {camera} sends {info.video_codec} video, which the relay cannot send over "
            "WebRTC; configure the camera to send H.264 (or H.265)"
        )
    if codec == "h264" and offered.h264 is None:  # unknown until the camera is live
        raise CodecNotSupported(
            f"camera {camera} sends H.264 video and this viewer cannot receive H.264 "
            f"(packetization mode 1, baseline profile); it offered: {offered.describe()}"
        )
    warnings = []
    if info.has_b_frames:
        warnings.append("the camera sends B-frames: playback may stutter; "
                        "turn B-frames off in the camera's encoder settings")
    if info.audio_codec:
        warnings.append(f"the camera's {info.audio_codec} audio is not relayed")
    return warnings


async def subscribe_view(hub: StreamHub, camera_id: str, profile: str, offered: OfferedVideo,
                         name: str) -> tuple[Stream, Subscription, list[str]]:
    """Subscribe a viewer that can receive ``offered`` to the camera's stream (its H.264
    version when the camera sends H.265 the viewer cannot take and one exists); the
    subscription holds the cached GOP. Returns it with the warnings for the viewer; raises
    CodecNotSupported, CameraNotFound, SourceUnavailable..."""
    profiles = hub.profiles(camera_id)
    stream = hub.get(camera_id, profile)
    transcoded = (transcoded_profile(profile) in profiles and offered.h264 is not None
                  and not offered.h265)
    _check_codec(stream, offered, transcoded)
    gop = len(stream.gop_snapshot())
    subscription = await stream.subscribe(
        name, maxsize=stream.settings.subscriber_queue + gop, wait=True
    )
    try:
        warnings = _check_codec(stream, offered, transcoded)
        if transcoded and stream.media_info.video_codec.lower() == "h265":
            # This viewer takes the H.264 version, shared with every other viewer of it.
            subscription.close("switched to the transcoded stream")
            stream = hub.get(camera_id, transcoded_profile(profile))
            gop = len(stream.gop_snapshot())
            subscription = await stream.subscribe(
                name, maxsize=stream.settings.subscriber_queue + gop, wait=True,
            )
            warnings.append("the camera sends H.265: this view is transcoded to H.264 "
                            f"({stream.media_info.width}x{stream.media_info.height})")
    except BaseException as exc:
        subscription.close(_failure_reason(exc))
        raise
    return stream, subscription, warnings


@allow(*VIEW_ROLES)
async def whep_post(request: web.Request) -> web.Response:
    registry = request.app[SESSIONS]
    settings = registry.settings
    camera_id = request.match_info["camera_id"]
    requested = request.query.get("profile", "main")
    if requested not in PROFILES:
        raise _error(request, web.HTTPBadRequest, "profile must be 'main' or 'sub'")
    offer = await _read_offer(request, settings.max_offer_bytes)
    try:
        offered = inspect_offer(offer)
    except InvalidOffer as exc:
        raise _error(request, web.HTTPBadRequest, str(exc)) from None
    except CodecNotSupported as exc:
        raise _error(request, web.HTTPUnsupportedMediaType, str(exc)) from None
    if not registry.accepting:
        raise _error(request, web.HTTPServiceUnavailable,
                     "the relay is at its viewer limit; try again shortly", **{"Retry-After": "5"})
    session_id = registry.new_session_id()
    _claim(request, registry, session_id)
    try:
        return await _open(request, registry, camera_id, requested, offer, offered, session_id)
    finally:
        if registry.get(session_id) is None:  # refused or failed: it holds no place
            registry.release(session_id)


def _claim(request: web.Request, registry: RelaySessions, session_id: str) -> None:
    """Count the view against its user, or 429 when they hold their share already (one account
    must not take every place the relay has)."""
    principal = principal_of(request)
    if principal is None:  # the relay served on its own: its only limit is max_sessions
        return
    settings = registry.settings
    limit = (settings.max_sessions_per_owner if principal.role is Role.OWNER
             else settings.max_sessions_per_user)
    held = registry.claim(session_id, principal.username, limit)
    if held is not None:
        log.warning("refused a live view to %s %s: %d open (at most %d)", principal.role,
                    principal.username, held, limit)
        raise _error(request, web.HTTPTooManyRequests,
                     f"you already have {held} live views open (at most {limit} per account); "
                     "close one and try again", **{"Retry-After": "5"})


async def _open(request: web.Request, registry: RelaySessions, camera_id: str, requested: str,
                offer: str, offered: OfferedVideo, session_id: str) -> web.Response:
    settings = registry.settings
    hub = request.app[HUB]
    profiles = hub.profiles(camera_id)
    profile = requested if requested in profiles or not profiles else "main"

    access = request.app[MEDIA_ACCESS]
    try:
        grant = await access.open_view(request, camera_id, profile)
    except StoreUnavailable as exc:  # the catalog cannot say whether this view is allowed
        raise _error(request, web.HTTPServiceUnavailable, str(exc), **{"Retry-After": "5"}
                     ) from None
    session: ViewerSession | None = None
    subscription: Subscription | None = None
    try:
        stream, subscription, warnings = await subscribe_view(
            hub, camera_id, profile, offered, f"whep:{session_id[:8]}")
        session = ViewerSession(
            session_id=session_id,
            stream=stream,
            subscription=subscription,
            grant=grant,
            access=access,
            cache=registry.cache_for(stream.key),
            settings=settings,
            on_closed=registry.session_closed,
            scratch=registry.scratch,
            fanout=registry.fanout_for(stream.key),
        )
        answer = await session.negotiate(offer, offered)
        if not registry.accepting:
            raise SourceUnavailable("the relay is shutting down or full")
        registry.add(session)
        session.start()
        enforce_grant(request, grant, session)
    except BaseException as exc:  # noqa: BLE001 -- undone, then raised again by abandon_view
        await abandon_view(request, grant, session, subscription, exc)
    log.info("viewer %s (%s, %s) watches %s/%s", session.name, grant.user, grant.role,
             camera_id, profile)
    headers = {"Location": f"/whep/{camera_id}/{session_id}"}
    if warnings:
        headers[WARNING_HEADER] = "; ".join(warnings)
    response = web.Response(status=201, text=answer, content_type="application/sdp",
                            headers=_cors(request, headers))
    _add_ice_links(response, settings, grant.user or "viewer")
    return response


def _add_ice_links(response: web.Response, settings: RelaySettings, user: str) -> None:
    """Announce the ICE servers (TURN credentials minted for this caller) as ``Link`` headers."""
    servers = viewer_ice_servers(settings, user)
    for value in link_headers(servers):
        response.headers.add("Link", value)
    if any(server.credential for server in servers):
        response.headers["Cache-Control"] = "no-store"  # a credential for this caller alone


def enforce_grant(request: web.Request, grant: ViewGrant, session: ViewerSession) -> None:
    """Have the view's grant re-checked while it runs: the view ends once it is not allowed."""
    enforcement = request.config_dict.get(VIEW_ENFORCEMENT)
    if enforcement is not None:
        enforcement.attach(grant, session.aclose)


async def abandon_view(request: web.Request, grant: ViewGrant, session: ViewerSession | None,
                       subscription: Subscription | None, exc: BaseException) -> NoReturn:
    """Undo a view that failed to start (its session, or its subscription and grant) and raise
    the HTTP error that says why; a cancellation goes on as it came."""
    reason = _failure_reason(exc)
    if session is not None:
        await session.aclose(reason)
    else:
        if subscription is not None:
            subscription.close(reason)
        await _close_grant(request, grant, reason)
    if not isinstance(exc, Exception):
        raise exc
    raise _http_error(request, exc) from None


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, web.HTTPException):
        return exc.text or exc.reason
    if isinstance(exc, TimeoutError):
        return "negotiation timed out"
    return str(exc) or type(exc).__name__


def _http_error(request: web.Request, exc: Exception) -> Exception:
    if isinstance(exc, web.HTTPException):
        return exc
    if isinstance(exc, CameraNotFound | ProfileNotFound):
        return _error(request, web.HTTPNotFound, str(exc))
    if isinstance(exc, CodecNotSupported):
        return _error(request, web.HTTPUnsupportedMediaType, str(exc))
    if isinstance(exc, InvalidOffer):
        return _error(request, web.HTTPBadRequest, str(exc))
    if isinstance(exc, SourceUnavailable | StreamClosed):
        return _error(request, web.HTTPServiceUnavailable, str(exc), **{"Retry-After": "5"})
    if isinstance(exc, TimeoutError):
        return _error(request, web.HTTPServiceUnavailable,
                      "the server could not prepare its answer in time; try again")
    log.exception("WHEP request for %s failed", request.match_info.get("camera_id"),
                  exc_info=exc)
    return _error(request, web.HTTPInternalServerError, "the relay failed to start this view")


async def _close_grant(request: web.Request, grant: ViewGrant, reason: str) -> None:
    try:
        await request.app[MEDIA_ACCESS].close_view(grant, reason)
    except Exception:
        log.exception("recording the end of view %s failed", grant.view_id)


@allow(*VIEW_ROLES)
async def whep_delete(request: web.Request) -> web.Response:
    registry = request.app[SESSIONS]
    session = registry.get(request.match_info["session_id"])
    principal = principal_of(request)
    supervising = principal is not None and principal.role in _SUPERVISORS
    own = session is not None and (
        # Without the accounts layer (the relay served on its own) the caller is the viewer.
        AUDIT not in request.config_dict
        or (principal is not None and session.grant.user == principal.username)
    )
    if session is None or session.camera_id != request.match_info["camera_id"] or not (
        own or supervising
    ):
        # Someone else's session looks exactly like one that does not exist.
        raise _error(request, web.HTTPNotFound, "no such WHEP session (it may have ended)")
    if own:
        await session.aclose("viewer ended the session")
    else:
        assert principal is not None
        await session.aclose(f"ended by {principal.role} {principal.username}")
    return web.Response(status=200, text="session ended", headers=_cors(request, {}))


@allow(*VIEW_ROLES)
async def whep_patch(request: web.Request) -> web.Response:
    raise web.HTTPMethodNotAllowed(
        request.method, ["OPTIONS", "DELETE"], headers=_cors(request, {}),
        text="trickle ICE is not supported: the answer already carries every candidate",
    )


@public()
async def whep_options(request: web.Request) -> web.Response:
    if "session_id" in request.match_info:
        headers = {"Allow": "OPTIONS, DELETE"}
    else:
        headers = {"Allow": "OPTIONS, POST", "Accept-Post": "application/sdp"}
    response = web.Response(status=204, headers=_cors(request, headers))
    principal = principal_of(request)
    if ("session_id" not in request.match_info and principal is not None
            and principal.role in VIEW_ROLES):
        # A client gathers its candidates before it POSTs, so it asks here which ICE servers
        # to use. TURN credentials go only to those who may watch (a CORS preflight carries no
        # cookie and gets none).
        _add_ice_links(response, request.app[SESSIONS].settings, principal.username)
    return response


@staff()
async def sessions_stats(request: web.Request) -> web.Response:
    stats = request.app[SESSIONS].stats()
    principal = principal_of(request)
    if AUDIT in request.config_dict and (
        principal is None or principal.role not in _SUPERVISORS
    ):
        # Session ids end sessions: staff see only their own; supervisors see everyone's.
        mine = principal.username if principal is not None else None
        sessions = stats.get("sessions")
        if isinstance(sessions, list):
            stats["sessions"] = [item for item in sessions
                                 if isinstance(item, dict) and item.get("user") == mine]
    return web.json_response(stats)


@public()
async def play_page(request: web.Request) -> web.StreamResponse:
    # The page holds no data: the WHEP request it makes is what checks the viewer and consent.
    if not _CAMERA_ID.match(request.match_info["camera_id"]):
        raise web.HTTPNotFound(text="no such camera")
    return web.FileResponse(STATIC / "play.html")


@public()
async def play_asset(request: web.Request) -> web.StreamResponse:
    allowed = {"play.js": STATIC / "play.js", "play.css": STATIC / "play.css"}
    path = allowed.get(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound(text="no such file")
    return web.FileResponse(path)


def add_routes(app: web.Application, settings: RelaySettings | None = None) -> RelaySessions:
    """Register the WHEP endpoint, the player page and the session statistics, and the
    application's session registry (closed on shutdown)."""
    registry = RelaySessions(settings or RelaySettings())
    app[SESSIONS] = registry
    app.on_shutdown.append(registry.shutdown)
    router = app.router
    router.add_post("/whep/{camera_id}", whep_post)
    router.add_route("OPTIONS", "/whep/{camera_id}", whep_options)
    router.add_delete("/whep/{camera_id}/{session_id}", whep_delete)
    router.add_patch("/whep/{camera_id}/{session_id}", whep_patch)
    router.add_route("OPTIONS", "/whep/{camera_id}/{session_id}", whep_options)
    router.add_get("/api/relay/sessions", sessions_stats)
    router.add_get("/play/{camera_id}", play_page)
    router.add_get("/relay/static/{name}", play_asset)
    return registry
