from __future__ import annotations
import asyncio, time
from tests.relay.conftest import RelayServer
from tests.relay.whep_client import WhepViewer

async def test_smoke(server: RelayServer, http) -> None:
    v = WhepViewer(server.url, "cam1")
    await v.connect(http)
    print(v.answer)
    await v.wait_frames(20)
    print("decoded", v.decoded.count, "first after", v.decoded.first_at - v.posted_at)
    print(server.registry.stats())
    assert await v.delete(http) == 200
    await v.close()
    print(server.access.closed)
