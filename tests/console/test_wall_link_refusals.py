"""The wall link routes against aiortc peers: a link answers only its owner, a bind makes the
same access decision as a WHEP view (a camera without a grant is refused with its reason), one
camera at a time, and bind attempts on one link are bounded."""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCSessionDescription

from relay.wall_link import BIND_BURST
from rtcc.policy import Role
from tests.console.conftest import ConsoleServer
from tests.fixtures.auth import role_headers
from tests.fixtures.browser import poll


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


def _rtsp_connections(port: int) -> int:
    """Established TCP connections the simulator listening on ``port`` has accepted."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as rows:
                lines = rows.readlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                count += 1
    return count


async def test_prepare_pulls_only_cameras_the_caller_may_view(
    console_server: ConsoleServer,
) -> None:
    server = console_server
    client = server.client
    _, mine = await role_headers(client, server.admin, Role.ANALYST)
    assert _rtsp_connections(server.alpha_sim.port) == 0
    assert _rtsp_connections(server.others_sim.port) == 0
    # echo is shared only in emergencies and no incident is open: it is skipped, and alpha (the
    # next allowed one) is pulled in its place.
    answer = await client.post("/wall/links/prepare?cameras=echo,alpha&count=1&purpose=p",
                               headers=mine)
    assert answer.status == 202, await answer.text()
    assert (await answer.json())["pulling"] == ["alpha"]

    async def alpha_pulled() -> bool:
        return _rtsp_connections(server.alpha_sim.port) > 0

    await poll(alpha_pulled, timeout=20, what="the pre-pull's RTSP connection to alpha")
    # Both would have been started together: echo's simulator was never contacted.
    assert _rtsp_connections(server.others_sim.port) == 0
    # Without a purpose nothing may be viewed, so nothing is pulled.
    none = await client.post("/wall/links/prepare?cameras=bravo,charlie&count=2", headers=mine)
    assert (await none.json())["pulling"] == []
    bad = await client.post("/wall/links/prepare?cameras=&count=2", headers=mine)
    assert bad.status == 400
    stats = await (await client.get("/wall/links", headers=mine)).json()
    assert stats["prepared"] == 1
    assert _rtsp_connections(server.others_sim.port) == 0
