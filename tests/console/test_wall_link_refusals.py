"""The wall link routes against aiortc peers: a link answers only its owner, a bind makes the
same access decision as a WHEP view (a camera without a grant is refused with its reason), one
camera at a time, and bind attempts on one link are bounded."""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCSessionDescription

from relay.wall_link import BIND_BURST
from rtcc.policy import Role
from tests.console.conftest import ConsoleServer
from tests.fixtures.auth import role_headers


async def _open_link(server: ConsoleServer, headers: dict[str, str]
                     ) -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    response = await server.client.post("/wall/links", data=pc.localDescription.sdp,
                                        headers={**headers, "Content-Type": "application/sdp"})
    assert response.status == 201, await response.text()
    await pc.setRemoteDescription(RTCSessionDescription(await response.text(), "answer"))
    return pc, response.headers["Location"]


async def test_binds_are_refused_for_others_links_ungranted_cameras_and_floods(
    console_server: ConsoleServer,
) -> None:
    server = console_server
    client = server.client
    _, mine = await role_headers(client, server.admin, Role.ANALYST)
    _, theirs = await role_headers(client, server.admin, Role.ANALYST)
    pc, link = await _open_link(server, mine)
    try:
        # Someone else's link id is an unknown link to them.
        other = await client.post(f"{link}/view/alpha?profile=sub&purpose=p", headers=theirs)
        assert other.status == 404
        assert "no such wall link" in await other.text()
        # A camera shared only in emergencies, no incident: the WHEP refusal and its reason.
        refused = await client.post(f"{link}/view/echo?profile=sub&purpose=p", headers=mine)
        assert refused.status == 403
        assert "emergenc" in (await refused.json())["error"]
        # Allowed: bound; a second camera on the same link waits for the first to end.
        bound = await client.post(f"{link}/view/alpha?profile=sub&purpose=p", headers=mine)
        assert bound.status == 200, await bound.text()
        assert (await bound.json())["camera_id"] == "alpha"
        busy = await client.post(f"{link}/view/bravo?profile=sub&purpose=p", headers=mine)
        assert busy.status == 409
        assert (await client.delete(f"{link}/view", headers=theirs)).status == 404
        assert (await client.delete(f"{link}/view", headers=mine)).status == 200
        # Flooding one link with binds (refused ones count) stops at its bound.
        statuses = [(await client.post(f"{link}/view/echo?profile=sub&purpose=p",
                                        headers=mine)).status for _ in range(BIND_BURST)]
        # Two attempts so far (echo refused, alpha bound): the rest of the share, then 429.
        assert statuses == [403] * (BIND_BURST - 2) + [429, 429]
    finally:
        await pc.close()
