"""Addresses a camera names in its replies: the server (``AddressRules`` given) never connects
to a host the camera announces instead of the configured one. A listening socket on another
loopback address (127.0.0.2) counts connections: it must see none."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ingest.onvif.addresses import AddressRules
from ingest.onvif.client import OnvifClient
from ingest.onvif.models import OnvifError, OnvifUnsafeAddress
from tests.fixtures.onvif import LOBBY, ONVIF_PASSWORD, ONVIF_USER, OnvifSimFactory

ONLY_LOCALHOST = AddressRules(("127.0.0.1/32",))


class Trap:
    """A TCP listener on 127.0.0.2 that counts who connects."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    def accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


@pytest.fixture
async def trap() -> AsyncIterator[Trap]:
    found = Trap()
    server = await asyncio.start_server(found.accept, "127.0.0.2", 0)
    found.port = server.sockets[0].getsockname()[1]
    try:
        yield found
    finally:
        server.close()
        await server.wait_closed()


def _client(port: int, rules: AddressRules | None = ONLY_LOCALHOST) -> OnvifClient:
    return OnvifClient("127.0.0.1", port, ONVIF_USER, ONVIF_PASSWORD, rules=rules,
                       timeout=5, connect_timeout=5)


async def test_service_addresses_of_another_host_are_not_followed(
    onvif_sim_factory: OnvifSimFactory, trap: Trap
) -> None:
    announcing = type(LOBBY)(name="NAT PTZ", profiles=LOBBY.profiles, username=ONVIF_USER,
                             password=ONVIF_PASSWORD, ptz=True,
                             announce=f"http://127.0.0.2:{trap.port}")
    sim = await onvif_sim_factory([announcing])
    async with _client(sim.ports[0]) as camera:
        # GetServices named 127.0.0.2 for every service: the requests went to the
        # configured host and port, with the announced paths.
        assert [p.token for p in await camera.profiles()] == ["main", "sub"]
        await camera.ptz_move("main", 0.5, 0.0, duration=2)
        assert (await camera.ptz_status("main")).moving
        await camera.ptz_stop("main")
        with pytest.raises(OnvifUnsafeAddress) as refused:
            await camera.snapshot("main")
    text = str(refused.value)
    assert f"127.0.0.2:{trap.port}/onvif/snapshot/main.jpg" in text
    assert "127.0.0.2 is a loopback address" in text
    assert "127.0.0.1:" in text  # the camera, by its configured address
    assert "security.allow_private_camera_hosts" in text
    assert trap.connections == 0


@pytest.mark.parametrize(("rtsp_base", "why"), [
    ("rtsp://127.0.0.2:{trap}", "127.0.0.2 is a loopback address"),
    ("rtsp://10.20.30.40:554", "10.20.30.40 is a private network address"),
    ("rtsp://169.254.169.254:{trap}", "169.254.169.254 is a cloud metadata address"),
])
async def test_stream_address_on_a_host_not_allowed_is_refused(
    onvif_sim_factory: OnvifSimFactory, trap: Trap, rtsp_base: str, why: str
) -> None:
    sim = await onvif_sim_factory(rtsp_base=rtsp_base.format(trap=trap.port))
    async with _client(sim.ports[0]) as camera:
        with pytest.raises(OnvifUnsafeAddress) as refused:
            await camera.stream_uri("main")
    text = str(refused.value)
    assert "the stream address" in text
    assert why in text
    assert "Nothing was sent there" in text
    assert ONVIF_PASSWORD not in text
    assert trap.connections == 0


async def test_metadata_snapshot_address_is_refused_even_when_allowlisted(
    onvif_sim_factory: OnvifSimFactory,
) -> None:
    hostile = type(LOBBY)(name="Hostile", profiles=LOBBY.profiles, username=ONVIF_USER,
                          password=ONVIF_PASSWORD, announce="http://169.254.169.254")
    sim = await onvif_sim_factory([hostile])
    rules = AddressRules(("127.0.0.1/32", "169.254.0.0/16"))
    async with _client(sim.ports[0], rules) as camera:
        with pytest.raises(OnvifUnsafeAddress) as refused:
            await camera.snapshot_uri("main")
    assert "169.254.169.254 is a cloud metadata address" in str(refused.value)


async def test_allowed_camera_still_works_under_the_rules(
    onvif_sim_factory: OnvifSimFactory,
) -> None:
    sim = await onvif_sim_factory(rtsp_base="rtsp://127.0.0.1:8554")
    async with _client(sim.ports[0]) as camera:
        assert await camera.stream_uri("main") == "rtsp://127.0.0.1:8554/open"
        assert (await camera.snapshot("sub")).startswith(b"\xff\xd8")
        await camera.ptz_goto_preset("main", "1")


async def test_redirect_to_another_host_is_not_followed(trap: Trap) -> None:
    async def redirect(request: web.Request) -> web.Response:
        await request.read()
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.2:{trap.port}/onvif/device_service")

    app = web.Application()
    app.router.add_post("/onvif/{service}", redirect)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        for rules in (ONLY_LOCALHOST, None):
            with pytest.raises(OnvifError) as refused:
                async with _client(port, rules):
                    pass
            assert "HTTP 307" in str(refused.value)
    finally:
        await runner.cleanup()
    assert trap.connections == 0


FIRST_CONNECT = """
import asyncio, json, sys, threading
from ingest.onvif.client import OnvifClient
from ingest.onvif.addresses import AddressRules

loop_thread = None
opened = []

def hook(event, args):
    if event == "open" and threading.current_thread() is loop_thread:
        path = str(args[0])
        if not path.endswith((".py", ".pyc")):
            opened.append(path)

sys.addaudithook(hook)

async def main(port, user, password):
    global loop_thread
    loop_thread = threading.current_thread()
    client = OnvifClient("127.0.0.1", port, user, password,
                         rules=AddressRules(("127.0.0.1/32",)))
    async with client:
        await client.profiles()
        await client.ptz_status("main")
    loop_thread = None

asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
print(json.dumps(opened))
"""


async def test_first_connect_reads_no_file_on_the_event_loop(
    onvif_sim_factory: OnvifSimFactory,
) -> None:
    # A fresh process: the WSDLs of the device, media and PTZ services are loaded for the
    # first time during this connect, on a thread.
    sim = await onvif_sim_factory()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FIRST_CONNECT, str(sim.ports[0]), ONVIF_USER, ONVIF_PASSWORD,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-2000:]
    assert json.loads(out.decode().strip().splitlines()[-1]) == []
