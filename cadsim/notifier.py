"""The NENA STA-024 notifier side: EIDO subscriptions over a WebSocket.

Subscriber -> notifier: ``subscribe`` (new, or a renewal naming its ``subscriptionId``),
``unsubscribe``, ``eventResponse``, ``terminateResponse``. Notifier -> subscriber:
``subscribeResponse``, ``unsubscribeResponse``, ``event`` (``notification``: a list of EIDOs),
``response`` (501 for anything else). Each message is one JSON object whose single key names it.

A subscription lasts ``expires`` seconds from its establishment or last renewal; one not renewed
in time is dropped and gets no more events. A new subscription first receives the current state of
the incidents it covers (every open incident, or the one it names) in one event.

Besides the WebSocket the same port serves a loopback-only control API for tests and the demo:
``POST /control/eido`` (one EIDO or a list) publishes, ``GET /control/stats`` reports the
subscriptions and the event responses received.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from cadsim.scenario import is_closed, tracking_id

log = logging.getLogger(__name__)

SUBPROTOCOL = "emergency-ent1.0"
WS_PATH = "/IncidentData/ent"
MAX_MESSAGE_BYTES = 1 << 20
SEND_TIMEOUT = 5.0


@dataclass
class Subscription:
    id: str
    ws: web.WebSocketResponse
    incident_id: str | None
    expires_at: float
    """Event-loop time after which the subscription is gone unless renewed."""


def _status_text(code: int) -> str:
    return {200: "OK", 400: "Bad request", 404: "Incident not found",
            481: "Subscription does not exist", 501: "Not implemented"}.get(code, "Error")


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


class Notifier:
    """Holds the incidents' latest EIDOs and the live subscriptions; ``publish`` fans out."""

    def __init__(self, *, default_expires: int = 3600, max_expires: int = 86400,
                 on_publish: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.default_expires = default_expires
        self.max_expires = max_expires
        self._on_publish = on_publish
        self.incidents: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.events_sent = 0
        self.published = 0
        self.responses: Counter[int] = Counter()
        self.expired = 0
        self._pending: dict[str, str] = {}  # transactionId -> subscriptionId

    # -- publishing ---------------------------------------------------------------------------

    def _live(self) -> list[Subscription]:
        now = asyncio.get_running_loop().time()
        for sub in list(self.subscriptions.values()):
            if now >= sub.expires_at:
                log.info("subscription %s expired without renewal; no more events for it", sub.id)
                del self.subscriptions[sub.id]
                self.expired += 1
        return list(self.subscriptions.values())

    async def publish(self, eido: dict[str, Any]) -> int:
        """Store ``eido`` as its incident's latest state and send it to every live subscription
        that covers it; returns how many subscriptions it was sent to."""
        tid = tracking_id(eido)
        if tid is None:
            raise ValueError("the EIDO has no incidentTrackingIdentifier or $id")
        self.incidents[tid] = eido
        self.published += 1
        if self._on_publish is not None:
            self._on_publish(eido)
        targets = [s for s in self._live() if s.incident_id in (None, tid)]
        sent = await asyncio.gather(*(self._send_event(s, [eido]) for s in targets))
        return sum(sent)

    async def _send_event(self, sub: Subscription, eidos: list[dict[str, Any]]) -> bool:
        transaction = str(uuid.uuid4())
        message = {"event": {"subscriptionId": sub.id, "transactionId": transaction,
                             "notification": eidos}}
        self._pending[transaction] = sub.id  # before sending: the answer may come back at once
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await sub.ws.send_json(message)
        except (ConnectionError, TimeoutError, RuntimeError) as exc:
            log.warning("could not send an event to subscription %s (%s); dropping it",
                        sub.id, exc)
            self._pending.pop(transaction, None)
            self.subscriptions.pop(sub.id, None)
            return False
        self.events_sent += 1
        return True

    # -- the WebSocket ------------------------------------------------------------------------

    async def handle_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), max_msg_size=MAX_MESSAGE_BYTES,
                                   heartbeat=30.0)
        await ws.prepare(request)
        if ws.ws_protocol != SUBPROTOCOL:
            log.warning("subscriber %s did not offer the %s subprotocol; serving it anyway",
                        request.remote, SUBPROTOCOL)
        log.info("subscriber connected from %s", request.remote)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    log.warning("ignored a non-text WebSocket message (%s)", msg.type.name)
                    continue
                await self._on_message(ws, msg.data)
        finally:
            for sub in [s for s in self.subscriptions.values() if s.ws is ws]:
                del self.subscriptions[sub.id]
            log.info("subscriber %s disconnected", request.remote)
        return ws

    async def _on_message(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError as exc:
            log.warning("subscriber sent a message that is not JSON (%s)", exc)
            return
        if not isinstance(message, dict) or len(message) != 1:
            log.warning("subscriber sent a message that is not an object with one key")
            return
        (kind, body), = message.items()
        if not isinstance(body, dict):
            log.warning("subscriber sent %r whose body is not an object", kind)
            return
        if kind == "subscribe":
            await self._subscribe(ws, body)
        elif kind == "unsubscribe":
            await self._unsubscribe(ws, body)
        elif kind == "eventResponse":
            self._event_response(body)
        elif kind == "terminateResponse":
            log.info("subscription %s acknowledged its termination", body.get("subscriptionId"))
        else:
            await ws.send_json({"response": {"requestId": str(body.get("requestId", "")),
                                             "statusCode": 501, "statusText": "Not implemented"}})

    async def _subscribe(self, ws: web.WebSocketResponse, body: dict[str, Any]) -> None:
        request_id = body.get("requestId")
        loop_now = asyncio.get_running_loop().time()

        async def answer(code: int, sub_id: str | None = None, expires: int | None = None,
                         text: str | None = None) -> None:
            reply: dict[str, Any] = {"requestId": str(request_id or ""), "statusCode": code,
                                     "statusText": text or _status_text(code)}
            if sub_id is not None:
                reply["subscriptionId"] = sub_id
            if expires is not None:
                reply["expires"] = expires
            await ws.send_json({"subscribeResponse": reply})

        if not isinstance(request_id, str) or not request_id:
            await answer(400, text="requestId is missing")
            return
        requested = body.get("expires", self.default_expires)
        if not isinstance(requested, int) or isinstance(requested, bool) or requested <= 0:
            await answer(400, text="expires must be a positive integer of seconds")
            return
        expires = min(requested, self.max_expires)
        sub_id = body.get("subscriptionId")
        if sub_id is not None:  # a renewal
            self._live()
            existing = self.subscriptions.get(str(sub_id))
            if existing is None or existing.ws is not ws:
                await answer(481)
                return
            existing.expires_at = loop_now + expires
            log.info("subscription %s renewed for %d s", existing.id, expires)
            await answer(200, existing.id, expires)
            return
        if body.get("requestType") != "EIDO":
            await answer(400, text="requestType must be EIDO")
            return
        incident_id = body.get("incidentId")
        if incident_id is not None and (not isinstance(incident_id, str) or not incident_id):
            await answer(400, text="incidentId must be a non-empty string")
            return
        if incident_id is not None and incident_id not in self.incidents:
            await answer(404)
            return
        sub = Subscription(str(uuid.uuid4()), ws, incident_id, loop_now + expires)
        self.subscriptions[sub.id] = sub
        log.info("subscription %s to %s for %d s", sub.id, incident_id or "all incidents",
                 expires)
        await answer(200, sub.id, expires)
        current = [e for tid, e in self.incidents.items()
                   if (incident_id is None and not is_closed(e)) or tid == incident_id]
        if current:
            await self._send_event(sub, current)

    async def _unsubscribe(self, ws: web.WebSocketResponse, body: dict[str, Any]) -> None:
        sub_id = str(body.get("subscriptionId", ""))
        existing = self.subscriptions.get(sub_id)
        code = 481
        if existing is not None and existing.ws is ws:
            del self.subscriptions[sub_id]
            code = 200
            log.info("subscription %s ended by the subscriber", sub_id)
        await ws.send_json({"unsubscribeResponse": {
            "requestId": str(body.get("requestId", "")), "subscriptionId": sub_id,
            "statusCode": code, "statusText": _status_text(code)}})

    def _event_response(self, body: dict[str, Any]) -> None:
        transaction = body.get("transactionId")
        code = body.get("statusCode")
        if not isinstance(transaction, str) or self._pending.pop(transaction, None) is None:
            log.warning("eventResponse for an unknown transaction %r", transaction)
            return
        if not isinstance(code, int):
            log.warning("eventResponse for %s has no integer statusCode", transaction)
            return
        self.responses[code] += 1
        if code != 200:
            log.warning("subscriber answered event %s with %d: %s", transaction, code,
                        body.get("statusText", ""))

    # -- the control API ----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        live = self._live()
        return {
            "published": self.published,
            "incidents": len(self.incidents),
            "subscriptions": [{"subscriptionId": s.id, "incidentId": s.incident_id}
                              for s in live],
            "expired": self.expired,
            "events_sent": self.events_sent,
            "responses": {str(code): n for code, n in sorted(self.responses.items())},
            "unanswered": len(self._pending),
        }

    async def handle_control_eido(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"the body is not JSON: {exc}") from None
        eidos = body if isinstance(body, list) else [body]
        if not all(isinstance(e, dict) for e in eidos):
            raise web.HTTPBadRequest(text="expected one EIDO object or a list of them")
        sent = 0
        for eido in eidos:
            try:
                sent += await self.publish(eido)
            except ValueError as exc:
                raise web.HTTPBadRequest(text=str(exc)) from None
        return web.json_response({"published": len(eidos), "sent": sent})

    async def handle_control_stats(self, request: web.Request) -> web.Response:  # noqa: ARG002
        return web.json_response(self.stats())


@web.middleware
async def _loopback_control(request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                            ) -> web.StreamResponse:
    if request.path.startswith("/control/") and not _is_loopback(request.remote):
        raise web.HTTPForbidden(text="the control API answers loopback clients only")
    return await handler(request)


def create_app(notifier: Notifier) -> web.Application:
    app = web.Application(middlewares=[_loopback_control], client_max_size=MAX_MESSAGE_BYTES)
    app.router.add_get(WS_PATH, notifier.handle_ws)
    app.router.add_post("/control/eido", notifier.handle_control_eido)
    app.router.add_get("/control/stats", notifier.handle_control_stats)
    return app
