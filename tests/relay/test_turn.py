"""Viewers behind NAT: TURN credentials in WHEP ``Link`` headers, and a viewer that can only
reach the server through a real coturn relay decodes the camera."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from relay.settings import IceServer, RelaySettings
from relay.turn import link_headers, turn_credential
from rtcc.policy import Role
from rtcc.principal import PRINCIPAL, Principal
from tests.fixtures.coturn import TURN_SECRET, Coturn, coturn  # noqa: F401 -- fixture
from tests.relay.clip import Clip
from tests.relay.conftest import RelayServer, start_server
from tests.relay.whep_client import WhepViewer

_LINK = re.compile(r'<([^>]+)>; rel="ice-server"; username="([^"]+)"; credential="([^"]+)"; '
                   r'credential-type="password"')


def test_credential_follows_the_turn_rest_scheme() -> None:
    username, password = turn_credential("s3", "analyst:1", 3600, now=1_000_000)
    assert username == "1003600:analyst_1"  # the scheme's ':' separator cannot be forged
    expected = base64.b64encode(hmac.new(b"s3", username.encode(), hashlib.sha1).digest())
    assert password == expected.decode()


def test_link_header_quotes_what_it_carries() -> None:
    [plain, turn] = link_headers([IceServer("stun:stun.example.org:3478"),
                                  IceServer("turn:t.example.org:3478", 'a"b', "c\\d")])
    assert plain == '<stun:stun.example.org:3478>; rel="ice-server"'
    assert turn == ('<turn:t.example.org:3478>; rel="ice-server"; username="a\\"b"; '
                    'credential="c\\\\d"; credential-type="password"')


@web.middleware
async def _as_analyst(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
    """What the security middleware does for a logged-in analyst (the header stands in for
    the session cookie)."""
    if request.headers.get("X-Test-Analyst"):
        request[PRINCIPAL] = Principal(7, "analyst1", Role.ANALYST, None, "session")
    return await handler(request)


@pytest.fixture
async def turn_server(small_clip: Clip, coturn: Coturn  # noqa: F811 -- fixture
                      ) -> AsyncIterator[tuple[RelayServer, Coturn]]:
    settings = RelaySettings(ice_servers=(IceServer(coturn.url),), turn_secret=TURN_SECRET,
                             turn_ttl=600, host_addresses=("127.0.0.1",))
    srv, runner = await start_server({"cam1": {"main": small_clip}}, settings,
                                     middlewares=[_as_analyst])
    try:
        yield srv, coturn
    finally:
        await runner.cleanup()


async def test_options_hands_turn_credentials_only_to_those_who_may_watch(
    turn_server: tuple[RelayServer, Coturn], http: aiohttp.ClientSession
) -> None:
    srv, turn = turn_server
    async with http.options(f"{srv.url}/whep/cam1") as anonymous:
        assert anonymous.status == 204
        assert "Link" not in anonymous.headers
    async with http.options(f"{srv.url}/whep/cam1", headers={"X-Test-Analyst": "1"}) as r:
        assert r.status == 204
        [link] = r.headers.getall("Link")
    url, username, _credential = _LINK.fullmatch(link).groups()  # type: ignore[union-attr]
    assert url == turn.url
    expiry, user = username.split(":")
    assert user == "analyst1"
    assert 0 < int(expiry) - time.time() <= 600
    assert TURN_SECRET not in link


async def test_viewer_limited_to_relay_candidates_decodes_through_coturn(
    turn_server: tuple[RelayServer, Coturn], http: aiohttp.ClientSession
) -> None:
    srv, turn = turn_server
    async with http.options(f"{srv.url}/whep/cam1", headers={"X-Test-Analyst": "1"}) as r:
        url, username, credential = _LINK.fullmatch(r.headers["Link"]).groups()  # type: ignore[union-attr]
    viewer = WhepViewer(srv.url, "cam1", headers={"X-Test-Analyst": "1"})
    await viewer.pc.close()
    viewer.pc = RTCPeerConnection(RTCConfiguration(
        iceServers=[RTCIceServer(urls=url, username=username, credential=credential)],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
    ))
    try:
        offer = await viewer.offer()
        offered = re.findall(r"a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ (\w+)", offer)
        assert offered, offer
        assert {kind for _, _, kind in offered} == {"relay"}, offer
        await viewer.connect(http)
        # The server's answer offers its host candidates on the configured address only.
        answered = re.findall(r"a=candidate:\S+ \d+ udp \d+ (\S+) \d+ typ (\w+)", viewer.answer)
        assert answered, viewer.answer
        assert set(answered) == {("127.0.0.1", "host")}, viewer.answer
        assert len(viewer.response_headers.get("Link", "")) > 0
        await viewer.wait_frames(30, timeout=30)
        assert await viewer.delete(http) == 200
    finally:
        await viewer.close()
    log = turn.log()
    # coturn accepted the minted credential, allocated a relay and bound the server to it.
    assert f"user <{username}>: incoming packet ALLOCATE processed, success" in log, log[-3000:]
    assert f"user <{username}>: incoming packet CHANNEL_BIND processed, success" in log
    assert viewer.decoded.count >= 30
    async with asyncio.timeout(10):
        while srv.access.open_views:
            await asyncio.sleep(0.05)
