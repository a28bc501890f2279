"""NENA STA-024 subscriber: receives EIDOs from a CAD's notifier over a WebSocket.

The server connects out to the notifier (``ws://`` or ``wss://``, subprotocol ``emergency-ent1.0``)
and sends ``subscribe`` (``requestType`` EIDO, every incident or one ``incidentId`` each, with
``expires``). The notifier answers ``subscribeResponse`` (``statusCode``, ``subscriptionId``, the
``expires`` it granted) and then sends ``event`` messages whose ``notification`` lists EIDOs. Each
event is answered with ``eventResponse`` only after the handler has returned for every EIDO in it
(the handler stores them): 200 when all were stored, 500 with what failed otherwise, 400 when the
event itself is malformed. Subscriptions are renewed (``subscribe`` naming the ``subscriptionId``)
at half their granted lifetime; a renewal the notifier no longer knows (481) subscribes anew.

A lost connection, a refused subscription or a notifier that stops answering is retried with a
capped, jittered exponential backoff; a successful subscription resets it. A malformed message is
logged with what was wrong and the connection kept; a message over the size limit closes the
connection (the WebSocket library enforces it) and the subscriber reconnects.

Events are handled one at a time in arrival order, so an incident's updates are stored in the
order the CAD sent them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp

from incidents.backoff import Backoff
from rtcc.errors import RtccError
from rtcc.tasks import TaskSupervisor

log = logging.getLogger(__name__)

SUBPROTOCOL = "emergency-ent1.0"
"""The WebSocket subprotocol STA-024 notifiers expect for EIDO conveyance."""

JsonObject = dict[str, Any]
EidoHandler = Callable[[JsonObject], Awaitable[None]]
"""Stores one EIDO; raising means it was not stored (the event is answered with an error)."""


class Sta024Error(RtccError):
    """The notifier refused, broke or stopped answering the subscription protocol."""


@dataclass(frozen=True, slots=True)
class Sta024Settings:
    url: str
    """The notifier's WebSocket URL, ``ws://`` or ``wss://``."""
    incident_ids: tuple[str, ...] = ()
    """Subscribe to these incidents only; empty: every incident."""
    expires: int = 3600
    """Subscription lifetime asked for, in seconds; renewed at half what the notifier grants."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra HTTP headers on the WebSocket handshake (e.g. an Authorization header)."""
    ssl_context: ssl.SSLContext | None = None
    """For ``wss://`` with a private CA or a client certificate; None: the system's defaults."""
    max_message_bytes: int = 4 << 20
    request_timeout: float = 10.0
    """How long to wait to connect and for each response to subscribe or renew."""
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    event_queue: int = 64
    """Events read ahead of the one being stored; the reader waits when it is full."""

    def __post_init__(self) -> None:
        if not self.url.startswith(("ws://", "wss://")):
            raise ValueError(f"the STA-024 notifier URL must start with ws:// or wss://, "
                             f"not {self.url!r}")
        if self.expires <= 0:
            raise ValueError("the STA-024 subscription lifetime (expires) must be positive")


@dataclass(frozen=True, slots=True)
class SubscriberState:
    connected: bool
    subscriptions: tuple[str, ...]
    """The notifier's ids of the live subscriptions on the current connection."""
    last_event_at: float | None
    """Wall-clock time (epoch seconds) of the last event received."""
    last_error: str | None
    last_error_at: float | None
    events: int
    """Events answered with 200."""
    failed_events: int
    """Events answered with an error status."""
    connects: int
    renewals: int
    """Subscriptions renewed (accepted by the notifier) since the start."""


class Sta024Subscriber:
    """Keeps EIDO subscriptions at one notifier and hands every EIDO to ``handler``.

    ``await subscriber.run()`` runs until cancelled; or ``async with subscriber:`` runs it as a
    supervised background task until the block ends. ``state()`` is for health checks.
    """

    def __init__(self, settings: Sta024Settings, handler: EidoHandler, *,
                 session: aiohttp.ClientSession | None = None,
                 backoff: Backoff | None = None) -> None:
        self.settings = settings
        self._handler = handler
        self._session = session
        self._backoff = backoff or Backoff(settings.backoff_initial, settings.backoff_max)
        self._pending: dict[str, asyncio.Future[JsonObject]] = {}
        self._subscriptions: dict[str | None, str] = {}  # incident id (None: all) -> sub id
        self._connected = False
        self._last_event_at: float | None = None
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._events = 0
        self._failed_events = 0
        self._connects = 0
        self._renewals = 0
        self._tasks: TaskSupervisor | None = None

    # -- observing ------------------------------------------------------------------------------

    def state(self) -> SubscriberState:
        return SubscriberState(
            connected=self._connected, subscriptions=tuple(self._subscriptions.values()),
            last_event_at=self._last_event_at, last_error=self._last_error,
            last_error_at=self._last_error_at, events=self._events,
            failed_events=self._failed_events, connects=self._connects,
            renewals=self._renewals)

    def _record_error(self, text: str) -> None:
        self._last_error = text
        self._last_error_at = time.time()

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Sta024Subscriber:
        self._tasks = TaskSupervisor("incidents.sta024")
        self._tasks.start("incidents:sta024", self.run)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._tasks is not None:
            await self._tasks.aclose()

    async def run(self) -> None:
        """Connect, subscribe and handle events; reconnect after each failure. Runs until
        cancelled."""
        if self._session is not None:
            await self._run(self._session)
            return
        async with aiohttp.ClientSession() as session:
            await self._run(session)

    async def _run(self, session: aiohttp.ClientSession) -> None:
        url = self.settings.url
        while True:
            problem = "the notifier closed the connection"
            try:
                await self._connection(session)
            except* (aiohttp.ClientError, OSError, TimeoutError, Sta024Error) as group:
                problem = "; ".join(_describe(exc) for exc in group.exceptions)
            except* Exception as group:  # a bug: recorded for health, raised to the supervisor
                self._record_error("; ".join(_describe(exc) for exc in group.exceptions))
                raise
            finally:
                self._connected = False
                self._subscriptions.clear()
                for future in self._pending.values():
                    future.cancel()
                self._pending.clear()
            self._record_error(problem)
            delay = self._backoff.next_delay()
            log.warning("STA-024 notifier %s: %s; reconnecting in %.1f s", url, problem, delay)
            await asyncio.sleep(delay)

    async def _connection(self, session: aiohttp.ClientSession) -> None:
        settings = self.settings
        async with asyncio.timeout(settings.request_timeout):
            ws = await session.ws_connect(
                settings.url, protocols=(SUBPROTOCOL,), headers=dict(settings.headers),
                max_msg_size=settings.max_message_bytes, heartbeat=30.0,
                ssl=settings.ssl_context if settings.ssl_context is not None else True)
        try:
            if ws.protocol != SUBPROTOCOL:
                log.warning("STA-024 notifier %s did not accept the %s subprotocol; continuing",
                            settings.url, SUBPROTOCOL)
            self._connected = True
            self._connects += 1
            log.info("connected to STA-024 notifier %s", settings.url)
            events: asyncio.Queue[JsonObject] = asyncio.Queue(settings.event_queue)
            targets: tuple[str | None, ...] = settings.incident_ids or (None,)
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read(ws, events), name="incidents:sta024:read")
                group.create_task(self._answer_events(ws, events), name="incidents:sta024:events")
                for target in targets:
                    group.create_task(self._keep_subscribed(ws, target),
                                      name=f"incidents:sta024:subscribe:{target or 'all'}")
        finally:
            await ws.close()

    # -- subscribing ----------------------------------------------------------------------------

    async def _request(self, ws: aiohttp.ClientWebSocketResponse, kind: str,
                       body: JsonObject) -> JsonObject:
        request_id = str(uuid.uuid4())
        future: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await ws.send_json({kind: {"requestId": request_id, **body}})
            try:
                async with asyncio.timeout(self.settings.request_timeout):
                    return await future
            except TimeoutError:
                raise Sta024Error(f"no answer to {kind} within "
                                  f"{self.settings.request_timeout:.0f} s") from None
        finally:
            self._pending.pop(request_id, None)

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse, target: str | None,
                         renew: str | None) -> tuple[str, int] | None:
        """Subscribe (or renew ``renew``); the subscription id and granted lifetime, or None
        when the notifier no longer knows the subscription being renewed."""
        body: JsonObject = {"expires": self.settings.expires}
        if renew is not None:
            body["subscriptionId"] = renew
        else:
            body["requestType"] = "EIDO"
            if target is not None:
                body["incidentId"] = target
        reply = await self._request(ws, "subscribe", body)
        code = reply.get("statusCode")
        what = f"incident {target}" if target else "all incidents"
        if code == 481 and renew is not None:
            return None
        if code != 200:
            raise Sta024Error(f"the subscription to {what} was refused: {code} "
                              f"{reply.get('statusText', '')}".rstrip())
        sub_id = reply.get("subscriptionId", renew)
        if not isinstance(sub_id, str) or not sub_id:
            raise Sta024Error(f"the subscribeResponse for {what} has no subscriptionId")
        granted = reply.get("expires", self.settings.expires)
        if not isinstance(granted, int) or isinstance(granted, bool) or granted <= 0:
            log.warning("STA-024 subscribeResponse for %s has an invalid expires %r; assuming "
                        "%d s", what, granted, self.settings.expires)
            granted = self.settings.expires
        return sub_id, granted

    async def _keep_subscribed(self, ws: aiohttp.ClientWebSocketResponse,
                               target: str | None) -> None:
        sub_id: str | None = None
        while True:
            result = await self._subscribe(ws, target, sub_id)
            if result is None:
                log.warning("STA-024 subscription %s was gone at renewal; subscribing again",
                            sub_id)
                sub_id = None
                self._subscriptions.pop(target, None)
                continue
            if sub_id is None:
                log.info("STA-024 subscription %s to %s for %d s", result[0],
                         target or "all incidents", result[1])
                self._backoff.reset()
            else:
                self._renewals += 1
            sub_id, granted = result
            self._subscriptions[target] = sub_id
            await asyncio.sleep(max(0.2, granted / 2))

    # -- receiving ------------------------------------------------------------------------------

    async def _read(self, ws: aiohttp.ClientWebSocketResponse,
                    events: asyncio.Queue[JsonObject]) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await self._on_text(ws, msg.data, events)
            elif msg.type == aiohttp.WSMsgType.ERROR:
                if ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
                    raise Sta024Error(
                        f"the notifier sent a message over the limit of "
                        f"{self.settings.max_message_bytes} bytes (max_message_bytes); the "
                        f"connection was closed")
                raise Sta024Error(f"WebSocket error: {ws.exception()}")
            else:
                log.warning("STA-024 notifier sent a %s message; only JSON text is expected",
                            msg.type.name)
        raise Sta024Error(f"the notifier closed the connection (code {ws.close_code})")

    async def _on_text(self, ws: aiohttp.ClientWebSocketResponse, text: str,
                       events: asyncio.Queue[JsonObject]) -> None:
        try:
            message = json.loads(text)
        except ValueError as exc:
            log.warning("STA-024 notifier sent a message that is not JSON (%s): %.120r",
                        exc, text)
            return
        if not isinstance(message, dict) or len(message) != 1:
            log.warning("STA-024 notifier sent a message that is not an object with exactly one "
                        "key (the message type): %.120r", text)
            return
        ((kind, body),) = message.items()
        if not isinstance(body, dict):
            log.warning("STA-024 %s message: the body is a %s, expected an object", kind,
                        type(body).__name__)
            return
        if kind in ("subscribeResponse", "unsubscribeResponse", "response"):
            request_id = body.get("requestId")
            future = self._pending.get(request_id) if isinstance(request_id, str) else None
            if future is None or future.done():
                log.warning("STA-024 %s for unknown requestId %r ignored", kind, request_id)
            else:
                future.set_result(body)
        elif kind == "event":
            if not isinstance(body.get("transactionId"), str) or not body["transactionId"]:
                log.warning("STA-024 event without a transactionId ignored (it cannot be "
                            "answered)")
                return
            await events.put(body)
        elif kind == "terminate":
            sub_id = body.get("subscriptionId")
            await ws.send_json({"terminateResponse": {
                "requestId": str(body.get("requestId", "")), "subscriptionId": str(sub_id),
                "statusCode": 200, "statusText": "OK"}})
            raise Sta024Error(f"the notifier terminated subscription {sub_id}")
        else:
            log.warning("STA-024 notifier sent an unknown message type %r; ignored", kind)

    async def _answer_events(self, ws: aiohttp.ClientWebSocketResponse,
                             events: asyncio.Queue[JsonObject]) -> None:
        while True:
            body = await events.get()
            code, text = await self._handle_event(body)
            await ws.send_json({"eventResponse": {"transactionId": body["transactionId"],
                                                  "statusCode": code, "statusText": text}})

    async def _handle_event(self, body: JsonObject) -> tuple[int, str]:
        transaction = body["transactionId"]
        self._last_event_at = time.time()
        notification = body.get("notification")
        if not isinstance(notification, list) or not all(isinstance(e, dict)
                                                          for e in notification):
            self._failed_events += 1
            log.warning("STA-024 event %s: notification must be a list of EIDO objects, got "
                        "%s", transaction, type(notification).__name__)
            return 400, "notification must be a list of EIDO objects"
        failures: list[str] = []
        for index, eido in enumerate(notification):
            try:
                await self._handler(eido)
            except Exception as exc:
                failures.append(f"EIDO {index}: {_describe(exc)}")
                log.error("STA-024 event %s: EIDO %d (%s) was not stored", transaction, index,
                          _eido_id(eido), exc_info=exc)
        if failures:
            self._failed_events += 1
            return 500, ("not stored: " + "; ".join(failures))[:500]
        self._events += 1
        return 200, "OK"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _eido_id(eido: JsonObject) -> str:
    for key in ("incidentTrackingIdentifier", "$id"):
        value = eido.get(key)
        if isinstance(value, str):
            return value[:200]
    return "no tracking id"
