"""Viewers behind NAT: TURN credentials in WHEP ``Link`` headers, and a viewer that can only
reach the server through a real coturn relay decodes the camera."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import time

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from relay.aiortc_adapter import interface_addresses
from relay.settings import IceServer, RelaySettings
from relay.turn import link_headers, server_ice_servers, turn_credential, viewer_ice_servers
from rtcc.config import parse_settings
from rtcc.errors import ConfigError
from server.app import _relay_settings
from tests.fixtures.coturn import TURN_SECRET, Coturn
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


def test_configuration_reaches_the_relay_and_keeps_the_secret_out_of_reprs() -> None:
    config = {"relay": {"ice_servers": ["stun:127.0.0.1:3478", "turn:127.0.0.1:3478"],
                        "turn_secret": "${TURN_SECRET}", "turn_ttl": 900,
                        "host_addresses": ["127.0.0.1", "lo"]}}
    settings = _relay_settings(parse_settings(config, "rtcc.yaml", {"TURN_SECRET": TURN_SECRET}))
    assert settings.ice_servers == (IceServer("stun:127.0.0.1:3478"),
                                    IceServer("turn:127.0.0.1:3478"))
    assert settings.turn_secret == TURN_SECRET
    assert (settings.turn_ttl, settings.host_addresses) == (900, ("127.0.0.1", "lo"))
    assert TURN_SECRET not in repr(settings)
    assert server_ice_servers(settings) == [IceServer("stun:127.0.0.1:3478")]
    [_, turn] = viewer_ice_servers(settings, "analyst1")
    assert turn.username is not None
    assert turn.username.endswith(":analyst1")
    assert interface_addresses(["lo", "127.0.0.1"]) == ["127.0.0.1", "::1"]

    del config["relay"]["turn_secret"]
    with pytest.raises(ConfigError, match=r"relay\.turn_secret must be set"):
        parse_settings(config, "rtcc.yaml", {})


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
        assert r.headers["Cache-Control"] == "no-store"
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


async def test_public_address_is_offered_beside_each_host_candidate(
    small_clip: Clip, http: aiohttp.ClientSession
) -> None:
    # 127.0.0.2 stands for the public side of a 1:1 NAT (loopback: no packet leaves the host).
    settings = RelaySettings(host_addresses=("127.0.0.1",), public_addresses=("127.0.0.2",))
    srv, runner = await start_server({"cam1": {"main": small_clip}}, settings)
    viewer = WhepViewer(srv.url, "cam1")
    try:
        await viewer.connect(http)
        answered = re.findall(
            r"a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ (\w+)(?: raddr (\S+) rport (\d+))?",
            viewer.answer)
        hosts = [(address, port) for address, port, kind, _, _ in answered if kind == "host"]
        mapped = [(address, port, raddr, rport)
                  for address, port, kind, raddr, rport in answered if kind == "srflx"]
        assert len(hosts) == 1, viewer.answer
        [(host, port)] = hosts
        assert host == "127.0.0.1"
        assert mapped == [("127.0.0.2", port, host, port)], viewer.answer
        assert "Link" not in viewer.response_headers  # no ICE servers: nothing to announce
        await viewer.wait_frames(10)
    finally:
        await viewer.close()
        await runner.cleanup()
