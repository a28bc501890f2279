"""Running the application: sockets, TLS, signals and a clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import AsyncIterator

from aiohttp import web

from rtcc.config import Settings
from server.app import create_app

log = logging.getLogger(__name__)


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
async def serving(settings: Settings) -> AsyncIterator[str]:
    """Start the server and yield its base URL; stop it (streams, threads, peers) on exit."""
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        ssl_context = _ssl_context(settings)
        site = web.TCPSite(
            runner, settings.server.host, settings.server.port, ssl_context=ssl_context
        )
        await site.start()
        scheme = "https" if ssl_context else "http"
        port = settings.server.port
        if port == 0 and runner.addresses:  # the bound socket tells the real port
            port = runner.addresses[0][1]
        host = settings.server.host
        shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        yield settings.server.public_url.rstrip("/") or f"{scheme}://{shown_host}:{port}"
    finally:
        await runner.cleanup()


async def wait_for_stop_signal() -> None:
    """Return on SIGINT or SIGTERM (Ctrl-C included)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
