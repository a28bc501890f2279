"""Location references are fetched from configured LIS hosts only, over https, to the checked
address, without following redirects; a real local https server plays the LIS."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from cadsim.scenario import pidf_point
from incidents.lis import LisError, fetch_reference
from incidents.model import PointLocation

LOOPBACK = ["127.0.0.0/8"]


async def localhost(host: str, port: int) -> list[str]:  # noqa: ARG001 -- the resolver's signature
    return ["127.0.0.1"] if host == "localhost" else []


class Lis:
    def __init__(self, port: int, client_ssl: ssl.SSLContext) -> None:
        self.port = port
        self.ssl = client_ssl

    def url(self, path: str) -> str:
        return f"https://localhost:{self.port}{path}"


@pytest.fixture
async def lis(tmp_path: Path) -> AsyncIterator[Lis]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ssl.load_cert_chain(cert, key)

    async def location(request: web.Request) -> web.Response:  # noqa: ARG001
        return web.Response(text=pidf_point(39.8, -89.65, "2026-05-04T15:00:00Z"),
                            content_type="application/pidf+xml")

    async def moved(request: web.Request) -> web.Response:  # noqa: ARG001
        raise web.HTTPFound("https://169.254.169.254/latest/meta-data")

    app = web.Application()
    app.router.add_get("/loc", location)
    app.router.add_get("/moved", moved)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl)
    await site.start()
    try:
        yield Lis(runner.addresses[0][1], ssl.create_default_context(cafile=str(cert)))
    finally:
        await runner.cleanup()


async def test_a_configured_lis_is_fetched(lis: Lis) -> None:
    found = await fetch_reference(lis.url("/loc"), ["localhost"], allow_networks=LOOPBACK,
                                  resolver=localhost, ssl=lis.ssl)
    assert found == PointLocation(39.8, -89.65)


async def test_anything_else_is_refused_with_the_reason(lis: Lis) -> None:
    with pytest.raises(LisError, match="redirects are not followed"):
        await fetch_reference(lis.url("/moved"), ["localhost"], allow_networks=LOOPBACK,
                              resolver=localhost, ssl=lis.ssl)
    with pytest.raises(LisError, match="not a configured LIS host"):
        await fetch_reference(lis.url("/loc"), ["lis.example.net"], allow_networks=LOOPBACK,
                              resolver=localhost, ssl=lis.ssl)
    with pytest.raises(LisError, match="not https"):
        await fetch_reference(f"http://localhost:{lis.port}/loc", ["localhost"],
                              allow_networks=LOOPBACK, resolver=localhost, ssl=lis.ssl)
    # Without an administrator's allowlist a loopback LIS breaks the server's URL rules.
    with pytest.raises(LisError, match="refused"):
        await fetch_reference(lis.url("/loc"), ["localhost"], resolver=localhost, ssl=lis.ssl)
