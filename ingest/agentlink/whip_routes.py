"""WHIP (RFC 9725) ingest for agents: ``POST /whip/{camera_id}?profile=main|sub`` with an SDP
offer answers ``201 Created`` with the answer and ``Location: /whip/{camera_id}/{session_id}``;
``DELETE`` on that location ends the publish.

Only an enrolled, unrevoked agent may publish, only its own cameras, and only a stream the
server asked it for (a viewer is waiting): anything else is refused with a plain-text reason.
"""

from __future__ import annotations

import logging
import secrets

from aiohttp import web

from ingest.agentlink.service import AGENT_SERVICE, AgentService
from ingest.whip_peer import InvalidWhipOffer, WhipSession
from rtcc.errors import CodecNotSupported
from rtcc.policy import Role, allow
from rtcc.principal import require_principal

log = logging.getLogger(__name__)

MAX_OFFER_BYTES = 64 * 1024


def _service(request: web.Request) -> AgentService:
    service = request.config_dict.get(AGENT_SERVICE)
    if service is None:
        raise web.HTTPServiceUnavailable(text="agent ingest is not running")
    return service


async def _read_offer(request: web.Request) -> str:
    if request.content_type != "application/sdp":
        raise web.HTTPUnsupportedMediaType(
            text="send the SDP offer with Content-Type: application/sdp")
    body = await request.content.read(MAX_OFFER_BYTES + 1)
    if len(body) > MAX_OFFER_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_OFFER_BYTES, actual_size=len(body),
                                            text="the offer is too large")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise web.HTTPBadRequest(text="the offer is not UTF-8 text") from None


@allow(Role.AGENT)
async def whip_post(request: web.Request) -> web.Response:
    service = _service(request)
    agent = await service.agent_of(require_principal(request))
    if agent is None:
        raise web.HTTPForbidden(text="this credential belongs to no enrolled agent")
    camera_id = request.match_info["camera_id"]
    profile = request.query.get("profile", "main")
    if profile not in ("main", "sub"):
        raise web.HTTPBadRequest(text="profile must be 'main' or 'sub'")
    camera = await service.store.camera(camera_id)
    if camera is None or camera.agent_id != agent.id:
        raise web.HTTPForbidden(text=f"agent {agent.id} may not publish camera {camera_id!r}")
    offer = await _read_offer(request)
    source = service.publishers.waiting(camera_id, profile)
    if source is None:
        raise web.HTTPConflict(text=f"the server did not ask for {camera_id}/{profile}; "
                                    "publish only when asked")
    session = WhipSession(secrets.token_urlsafe(16), camera_id, profile, agent.id)
    try:
        answer = await session.negotiate(offer)
    except InvalidWhipOffer as exc:
        await session.aclose(str(exc))
        raise web.HTTPBadRequest(text=str(exc)) from None
    except CodecNotSupported as exc:
        await session.aclose(str(exc))
        raise web.HTTPUnsupportedMediaType(text=str(exc)) from None
    except BaseException:
        await session.aclose("negotiation failed")
        raise
    if not source.attach(session):
        await session.aclose("nobody waits for this stream any more")
        raise web.HTTPConflict(text="the server no longer needs this stream")
    log.info("agent %s publishes %s/%s (session %s)", agent.id, camera_id, profile,
             session.id[:8])
    return web.Response(status=201, text=answer, content_type="application/sdp",
                        headers={"Location": f"/whip/{camera_id}/{session.id}"})


@allow(Role.AGENT)
async def whip_delete(request: web.Request) -> web.Response:
    service = _service(request)
    agent = await service.agent_of(require_principal(request))
    session = service.publishers.get(request.match_info["session_id"])
    if (agent is None or session is None or session.agent_id != agent.id
            or session.camera_id != request.match_info["camera_id"]):
        raise web.HTTPNotFound(text="no such WHIP session (it may have ended)")
    service.publishers.remove(session)
    await session.aclose("the agent ended the publish")
    return web.Response(status=200, text="session ended")


@allow(Role.AGENT)
async def whip_patch(request: web.Request) -> web.Response:
    raise web.HTTPMethodNotAllowed(
        request.method, ["POST", "DELETE"],
        text="trickle ICE is not supported: send every candidate in the offer")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/whip/{camera_id}", whip_post)
    app.router.add_delete("/whip/{camera_id}/{session_id}", whip_delete)
    app.router.add_patch("/whip/{camera_id}/{session_id}", whip_patch)
