"""Real peers for notification tests: an SMTP server (aiosmtpd, on its own thread) that keeps
every mail it accepts, and an aiohttp webhook receiver."""

from __future__ import annotations

import asyncio
import email
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from notify.cap import SCHEMA


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Mail:
    to: tuple[str, ...]
    message: Message

    @property
    def key(self) -> str:
        return str(self.message["X-Idempotency-Key"])

    @property
    def body(self) -> str:
        for part in self.message.walk():
            if part.get_content_type() == "text/plain":
                payload = part.get_payload(decode=True)
                return payload.decode() if isinstance(payload, bytes) else ""
        return ""

    @property
    def cap(self) -> str:
        for part in self.message.walk():
            if part.get_content_type() == "application/cap+xml":
                payload = part.get_payload(decode=True)
                return payload.decode() if isinstance(payload, bytes) else ""
        return ""


@dataclass
class MailSink:
    """Accepts every mail; ``delay`` seconds per mail make a send take a while."""

    delay: float = 0.0
    port: int = 0
    mails: list[Mail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session,  # noqa: ARG002 -- aiosmtpd's hook
                          envelope: Envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        with self.lock:
            self.mails.append(Mail(tuple(envelope.rcpt_tos), email.message_from_bytes(content)))
        return "250 OK"

    def received(self) -> list[Mail]:
        with self.lock:
            return list(self.mails)

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.received() if address in m.to]


class SmtpServer:
    def __init__(self, delay: float = 0.0) -> None:
        self.port = free_port()
        self.sink = MailSink(delay, self.port)
        self._controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> MailSink:
        self._controller.start()
        return self.sink

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


@dataclass
class Hook:
    key: str
    content_type: str
    body: bytes


class WebhookReceiver:
    """An aiohttp server answering 200 to ``POST /hook/{name}`` and keeping what it got."""

    def __init__(self) -> None:
        self.received: list[Hook] = []
        self.app = web.Application()
        self.app.router.add_post("/hook/{name}", self._post)
        self.app.router.add_post("/moved", self._moved)
        self.app.router.add_post("/flaky", self._flaky)
        self.flaky_failures = 1
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _post(self, request: web.Request) -> web.Response:
        self.received.append(Hook(request.headers.get("Idempotency-Key", ""),
                                  request.content_type, await request.read()))
        return web.Response(text="ok")

    async def _moved(self, request: web.Request) -> web.Response:
        await request.read()
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    async def _flaky(self, request: web.Request) -> web.Response:
        if self.flaky_failures > 0:
            self.flaky_failures -= 1
            return web.Response(status=503, text="busy")
        return await self._post(request)

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def validate_cap(document: str) -> None:
    SCHEMA.check(document)


async def until(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


class ThreadedWebhookReceiver:
    """``WebhookReceiver`` on its own thread and event loop, for tests that block (a server
    subprocess)."""

    def __init__(self) -> None:
        self.receiver = WebhookReceiver()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="webhook-receiver",
                                        daemon=True)
        self.url = ""

    def __enter__(self) -> ThreadedWebhookReceiver:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self.receiver.start(),
                                                    self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def received(self) -> list[Hook]:
        return list(self.receiver.received)
