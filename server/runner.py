"""Running the application: sockets, TLS, slow clients, signals and a clean shutdown.

aiohttp waits for a request's headers and body as long as the client keeps the connection open:
a client sending one header byte every few seconds would hold a connection (and its memory)
forever, and enough of them exhaust the server. Each connection therefore gets two timers, at
the protocol level where aiohttp parses bytes: the request line and headers must be complete
within ``server.header_timeout`` seconds of their first byte (or of the connection opening), and
a body must keep arriving (at least ``_BODY_PROGRESS`` bytes every ``server.body_timeout``
seconds, or its end). A connection that misses either is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler

from rtcc import heap
from rtcc.config import Settings
from server import cluster
from server.app import create_app
from tips import ANONYMOUS_PREFIX

log = logging.getLogger(__name__)

KEEPALIVE_TIMEOUT = 75.0
"""Seconds an idle keep-alive connection stays open (aiohttp's own default is an hour)."""
_BODY_PROGRESS = 1024


@dataclass(frozen=True, slots=True)
class ReadTimeouts:
    header: float
    body: float


@dataclass(slots=True)
class SlowClientCounts:
    header_timeouts: int = 0
    body_timeouts: int = 0


class _GuardedHandler(RequestHandler):
    """aiohttp's connection protocol with the header and body read timers."""

    def __init__(self, manager: _GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body: Any = None
        self._body_progress = 0
        self._anonymous = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        idle = self._waiter is not None and not self._waiter.done()
        if idle and self._header_timer is None:
            self._arm_header_timer()  # the first bytes of the next request on this connection
        parsed = self._request_count
        super().data_received(data)
        self._body_progress += len(data)
        if self._request_count != parsed and self._messages:
            self._cancel(self._header_timer)
            self._header_timer = None
            message, payload = self._messages[-1]
            self._anonymous = str(getattr(message, "path", "")).startswith(ANONYMOUS_PREFIX)
            if payload is not EMPTY_PAYLOAD and not getattr(message, "upgrade", False) \
                    and not payload.is_eof():
                self._body = payload
                self._body_progress = 0
                self._arm_body_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel(self._header_timer)
        self._cancel(self._body_timer)
        self._header_timer = self._body_timer = None
        self._body = None
        super().connection_lost(exc)

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()

    def _arm_header_timer(self) -> None:
        self._header_timer = self._loop.call_later(self._guard.timeouts.header,
                                                   self._headers_late)

    def _arm_body_timer(self) -> None:
        self._cancel(self._body_timer)
        self._body_timer = self._loop.call_later(self._guard.timeouts.body, self._body_check)

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport is None:
            return
        self._guard.counts.header_timeouts += 1
        log.info("closed a connection from %s: no complete request headers within %g s",
                 self._peer(), self._guard.timeouts.header)
        self.force_close()

    def _body_check(self) -> None:
        self._body_timer = None
        body = self._body
        if body is None or body.is_eof() or self.transport is None:
            self._body = None
            return
        # Paused: the server is not reading (a busy handler), so the client cannot be blamed.
        if self._body_progress >= _BODY_PROGRESS or self._reading_paused or self._buffer_paused:
            self._body_progress = 0
            self._arm_body_timer()
            return
        self._guard.counts.body_timeouts += 1
        log.info("closed a connection from %s: its request body stalled for %g s",
                 self._peer(), self._guard.timeouts.body)
        self.force_close()

    def _peer(self) -> str:
        if self._anonymous:
            return "a tip-line client"  # the tip line never logs who calls it
        transport = self.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else "an unknown address"


class _GuardedServer(web.Server):
    def __init__(self, made: web.Server, timeouts: ReadTimeouts,
                 counts: SlowClientCounts) -> None:
        super().__init__(made.request_handler, request_factory=made.request_factory,
                         handler_cancellation=made.handler_cancellation,
                         loop=made._loop,  # noqa: SLF001 -- aiohttp keeps these only privately
                         **made._kwargs)  # noqa: SLF001 -- the handler settings made by AppRunner
        self.timeouts = timeouts
        self.counts = counts

    def __call__(self) -> RequestHandler:
        return _GuardedHandler(self, loop=self._loop, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    """An AppRunner whose connections close when a client is too slow to send a request."""

    def __init__(self, app: web.Application, timeouts: ReadTimeouts, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", KEEPALIVE_TIMEOUT)
        super().__init__(app, **kwargs)
        self.timeouts = timeouts
        self.counts = SlowClientCounts()

    async def _make_server(self) -> web.Server:
        return _GuardedServer(await super()._make_server(), self.timeouts, self.counts)


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    cert, key = settings.server.tls_cert, settings.server.tls_key
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise SystemExit("TLS needs both --tls-cert and --tls-key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


@contextlib.asynccontextmanager
async def serving(settings: Settings, worker: int | None = None) -> AsyncIterator[str]:
    """Start the server and yield its base URL; stop it (streams, threads, peers) on exit.

    As worker ``worker`` of ``rtcc serve --workers N`` it shares its port with the other workers
    (SO_REUSEPORT) and listens on a port of its own too, which it advertises to the cluster."""
    app = create_app(settings)
    timeouts = ReadTimeouts(settings.server.header_timeout, settings.server.body_timeout)
    runner = GuardedAppRunner(app, timeouts, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        ssl_context = _ssl_context(settings)
        site = web.TCPSite(
            runner, settings.server.host, settings.server.port, ssl_context=ssl_context,
            reuse_port=worker is not None,
        )
        await site.start()
        own_port: int | None = None
        if worker is not None:  # the address of this worker alone, for the other nodes
            own = web.TCPSite(runner, settings.server.host, 0, ssl_context=ssl_context)
            await own.start()
            own_port = int(runner.addresses[-1][1])  # the last site started
        scheme = "https" if ssl_context else "http"
        port = settings.server.port
        if port == 0 and runner.addresses:  # the bound socket tells the real port
            port = runner.addresses[0][1]
        host = settings.server.host
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        if own_port is None:
            await cluster.join(app, f"{scheme}://{shown_host}:{port}", port)
        else:
            await cluster.join(app, f"{scheme}://{shown_host}:{own_port}", port,
                               worker=worker, own_port=own_port)
        heap.settle_after_start()
        yield settings.server.public_url.rstrip("/") or f"{scheme}://{shown_host}:{port}"
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """An event set on SIGINT or SIGTERM (Ctrl-C included). Enter it before announcing that the
    server listens, so a signal sent right after the announcement stops it cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
