"""Catalog events to consoles: a non-blocking fan-out and the buses that feed it.

``Broadcaster.publish`` hands an event to every connected console's bounded queue without
awaiting any of them; a console that falls ``queue_size`` events behind is disconnected (its
browser reconnects and reloads the state) instead of slowing the others.

With SQLite the bus is in-process (``LocalBus``). With Redis (``RedisBus``) every event goes
through a pub/sub channel, and with PostgreSQL (``PgBus``) through ``NOTIFY`` on a channel of the
database; each process's broadcaster is fed from its subscription, so a console connected to any
process hears changes made in every other. Neither replays what was published while a
subscription was down: when it is back, every feed is ended so that its reader re-reads the state
instead of trusting that it heard every change.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol

import psycopg
import redis.asyncio as aioredis
from psycopg import sql as pgsql
from redis.exceptions import RedisError

from rtcc.tasks import TaskSupervisor

log = logging.getLogger(__name__)

Event = Mapping[str, Any]
_PUBLISH_TIMEOUT_S = 2.0
_RETRY_MAX_S = 5.0
"""Longest pause between attempts to subscribe again: events published meanwhile are lost."""


class Feed:
    """One console's queue of encoded events."""

    def __init__(self, queue_size: int, types: frozenset[str], cameras: frozenset[str]) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(queue_size)
        self.types = types
        self.cameras = cameras
        self.overflowed = False
        self.closed = False

    def wants(self, event: Event) -> bool:
        if self.types and event.get("type") not in self.types:
            return False
        return not self.cameras or event.get("id") in self.cameras

    def offer(self, encoded: str) -> None:
        if self.closed:
            return
        try:
            self._queue.put_nowait(encoded)
        except asyncio.QueueFull:
            self.overflowed = True
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        while True:  # make room for the end marker
            try:
                self._queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self._queue.get_nowait()

    async def next(self, idle_s: float) -> str | None:
        """The next encoded event; None at the end of the feed; TimeoutError after ``idle_s``
        seconds without one."""
        async with asyncio.timeout(idle_s):
            return await self._queue.get()


class Broadcaster:
    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._feeds: set[Feed] = set()
        self.published = 0
        self.dropped_clients = 0
        self.resyncs = 0
        self._closed = False

    def subscribe(self, types: frozenset[str] = frozenset(),
                  cameras: frozenset[str] = frozenset()) -> Feed:
        feed = Feed(self.queue_size, types, cameras)
        if self._closed:
            feed.close()
        else:
            self._feeds.add(feed)
        return feed

    def unsubscribe(self, feed: Feed) -> None:
        self._feeds.discard(feed)
        feed.close()

    def publish(self, event: Event) -> None:
        encoded = json.dumps(event, separators=(",", ":"))
        self.published += 1
        for feed in list(self._feeds):
            if feed.wants(event):
                feed.offer(encoded)
                if feed.overflowed:
                    self._feeds.discard(feed)
                    self.dropped_clients += 1
                    log.warning("catalog events: a console fell %d events behind and was "
                                "disconnected", self.queue_size)

    def resync(self) -> None:
        """End every feed: events may have been missed (the Redis subscription was lost), so
        each reader re-reads the state (consoles reload, followers reconcile) and subscribes
        again."""
        self.resyncs += 1
        for feed in list(self._feeds):
            feed.close()
        self._feeds.clear()

    @property
    def clients(self) -> int:
        return len(self._feeds)

    def close(self) -> None:
        self._closed = True
        for feed in list(self._feeds):
            feed.close()
        self._feeds.clear()


class EventBus(Protocol):
    async def publish(self, event: Event) -> None: ...

    async def __aenter__(self) -> EventBus: ...

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None: ...


class LocalBus:
    """Events stay in this process."""

    def __init__(self, broadcaster: Broadcaster) -> None:
        self._broadcaster = broadcaster

    async def publish(self, event: Event) -> None:
        self._broadcaster.publish(event)

    async def __aenter__(self) -> LocalBus:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        return None


class _SharedBus(abc.ABC):
    """What the Redis and PostgreSQL buses share: a listening task started on entry (waited for
    briefly), warnings at most every 30 s, the task stopped on exit."""

    _listening = "subscribed to"

    def __init__(self, channel: str, broadcaster: Broadcaster) -> None:
        self._channel = channel
        self._broadcaster = broadcaster
        self._tasks: TaskSupervisor | None = None
        self._subscribed = asyncio.Event()
        self._last_warning = 0.0

    def _warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_warning > 30.0:
            self._last_warning = now
            log.warning(message, *args)

    @abc.abstractmethod
    async def _listen(self) -> None:
        """Receive the engine's notifications until cancelled (each engine its own way)."""

    async def _start(self) -> None:
        self._tasks = TaskSupervisor("catalog-events")
        self._tasks.start(f"catalog:events:{self._channel}", self._listen)
        try:
            async with asyncio.timeout(_PUBLISH_TIMEOUT_S * 2):
                await self._subscribed.wait()
        except TimeoutError:
            log.warning("catalog events: not yet %s %s; continuing", self._listening,
                        self._channel)

    async def _stop(self) -> None:
        tasks, self._tasks = self._tasks, None
        if tasks is not None:
            await tasks.aclose()


class RedisBus(_SharedBus):
    """Events go through a Redis pub/sub channel, heard by every process subscribed to it."""

    def __init__(self, client: aioredis.Redis, channel: str, broadcaster: Broadcaster) -> None:
        super().__init__(channel, broadcaster)
        self._client = client

    async def publish(self, event: Event) -> None:
        try:
            async with asyncio.timeout(_PUBLISH_TIMEOUT_S):
                await self._client.publish(self._channel, json.dumps(event))
        except (RedisError, OSError, TimeoutError) as exc:
            # Consoles of this process still hear it; others miss this one event.
            self._broadcaster.publish(event)
            self._warn("catalog events: cannot publish to Redis (%s); delivered locally only", exc)

    async def _listen(self) -> None:
        delay = 1.0
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                async with asyncio.timeout(_PUBLISH_TIMEOUT_S * 2):
                    await pubsub.subscribe(self._channel)
                if self._subscribed.is_set():
                    # Events published while the subscription was down are lost for good.
                    log.info("catalog events: subscribed to %s again; readers re-read the "
                             "catalog", self._channel)
                    self._broadcaster.resync()
                self._subscribed.set()
                delay = 1.0
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        event = json.loads(message["data"])
                    except (TypeError, ValueError):
                        log.warning("catalog events: ignored a malformed message on %s",
                                    self._channel)
                        continue
                    if isinstance(event, dict):
                        self._broadcaster.publish(event)
            except (RedisError, OSError, TimeoutError) as exc:
                self._warn("catalog events: Redis subscription lost (%s); retrying in %.0f s",
                           exc, delay)
                await asyncio.sleep(delay)
                delay = min(_RETRY_MAX_S, delay * 2)
            finally:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    async with asyncio.timeout(_PUBLISH_TIMEOUT_S):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def __aenter__(self) -> RedisBus:
        await self._start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._stop()


_NOTIFY_MAX_BYTES = 7900
"""PostgreSQL refuses a NOTIFY payload of 8000 bytes or more."""


class PgBus(_SharedBus):
    """Events go through PostgreSQL ``NOTIFY`` on ``channel``, heard by every process that
    listens on the same database. Publishing and listening use two connections of their own
    (asynchronous psycopg: nothing blocks the event loop), outside the stores' pools."""

    _listening = "listening on"

    def __init__(self, url: str, channel: str, broadcaster: Broadcaster,
                 connect_timeout: float = 5.0) -> None:
        super().__init__(channel, broadcaster)
        self._url = url
        self._connect_timeout = connect_timeout
        self._publisher: psycopg.AsyncConnection[Any] | None = None

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, connect_timeout=max(1, round(self._connect_timeout)),
            application_name="rtcc-catalog-events")

    async def publish(self, event: Event) -> None:
        payload = json.dumps(event, separators=(",", ":"))
        if len(payload.encode()) > _NOTIFY_MAX_BYTES:
            self._broadcaster.publish(event)
            self._warn("catalog events: a %s event is too large for NOTIFY; delivered locally "
                       "only", event.get("type"))
            return
        try:
            async with asyncio.timeout(_PUBLISH_TIMEOUT_S):
                if self._publisher is None or self._publisher.closed:
                    self._publisher = await self._connect()
                await self._publisher.execute("SELECT pg_notify(%s, %s)",
                                              (self._channel, payload))
        except (psycopg.Error, OSError, TimeoutError) as exc:
            # Consoles of this process still hear it; others miss this one event.
            self._broadcaster.publish(event)
            self._warn("catalog events: cannot NOTIFY PostgreSQL (%s); delivered locally only",
                       exc)
            await self._drop_publisher()

    async def _drop_publisher(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await publisher.close()

    async def _listen(self) -> None:
        delay = 1.0
        while True:
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                async with asyncio.timeout(_PUBLISH_TIMEOUT_S * 2):
                    conn = await self._connect()
                    await conn.execute(
                        pgsql.SQL("LISTEN {}").format(pgsql.Identifier(self._channel)))
                if self._subscribed.is_set():
                    # Events published while the subscription was down are lost for good.
                    log.info("catalog events: listening on %s again; readers re-read the "
                             "catalog", self._channel)
                    self._broadcaster.resync()
                self._subscribed.set()
                delay = 1.0
                async for notify in conn.notifies():
                    try:
                        event = json.loads(notify.payload)
                    except ValueError:
                        log.warning("catalog events: ignored a malformed message on %s",
                                    self._channel)
                        continue
                    if isinstance(event, dict):
                        self._broadcaster.publish(event)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                self._warn("catalog events: PostgreSQL LISTEN lost (%s); retrying in %.0f s",
                           exc, delay)
                await asyncio.sleep(delay)
                delay = min(_RETRY_MAX_S, delay * 2)
            finally:
                if conn is not None:
                    with contextlib.suppress(psycopg.Error, OSError):
                        await conn.close()

    async def __aenter__(self) -> PgBus:
        await self._start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._stop()
        await self._drop_publisher()
