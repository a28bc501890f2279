"""The wall link routes against aiortc peers: a link answers only its owner, a bind makes the
same access decision as a WHEP view (a camera without a grant is refused with its reason), one
camera at a time, and bind attempts on one link are bounded; a batch of binds decides each item
as its own bind would."""

from __future__ import annotations

import asyncio

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


async def test_a_batch_of_binds_decides_each_item_as_a_single_bind(
    console_server: ConsoleServer,
) -> None:
    server = console_server
    client = server.client
    _, mine = await role_headers(client, server.admin, Role.ANALYST)
    _, theirs = await role_headers(client, server.admin, Role.ANALYST)
    allowed_pc, allowed = await _open_link(server, mine)
    ungranted_pc, ungranted = await _open_link(server, mine)
    other_pc, others = await _open_link(server, theirs)
    pcs = [allowed_pc, ungranted_pc, other_pc]
    try:
        before = await client.get("/api/audit?action=view.start&limit=500", headers=server.admin)
        seen = {entry["id"] for entry in (await before.json())["entries"]}
        answer = await client.post("/wall/links/views?purpose=p", headers=mine, json={"views": [
            {"link": allowed.rsplit("/", 1)[1], "camera": "alpha", "profile": "sub"},
            {"link": ungranted.rsplit("/", 1)[1], "camera": "echo", "profile": "sub"},
            {"link": others.rsplit("/", 1)[1], "camera": "bravo", "profile": "sub"},
        ]})
        assert answer.status == 200, await answer.text()
        views = (await answer.json())["views"]
        assert [view["status"] for view in views] == [200, 403, 404], views
        assert views[0]["camera_id"] == "alpha"
        assert "emergenc" in views[1]["error"]
        assert "no such wall link" in views[2]["error"]
        # Only the allowed item carries media: a frame arrives on its track.
        track = allowed_pc.getTransceivers()[0].receiver.track
        frame = await asyncio.wait_for(track.recv(), timeout=20)
        assert frame is not None
        stats = await (await client.get("/wall/links", headers=mine)).json()
        shown = {item["link_id"]: item["camera_id"] for item in stats["items"]}
        assert shown == {allowed.rsplit("/", 1)[1]: "alpha", ungranted.rsplit("/", 1)[1]: None}
        theirs_stats = await (await client.get("/wall/links", headers=theirs)).json()
        assert theirs_stats["bound"] == 0
        # And only it is audited as a view.
        after = await client.get("/api/audit?action=view.start&limit=500", headers=server.admin)
        entries = [entry for entry in (await after.json())["entries"] if entry["id"] not in seen]
        assert [e["camera_id"] for e in entries if e["outcome"] == "ok"] == ["alpha"], entries
        # The refusal is audited as a single bind's refusal is; someone else's link is not.
        assert [e["camera_id"] for e in entries if e["outcome"] != "ok"] == ["echo"], entries
        # Each item counts as a bind attempt on its link: the ungranted link has one fewer.
        statuses = [(await client.post(f"{ungranted}/view/echo?profile=sub&purpose=p",
                                        headers=mine)).status for _ in range(BIND_BURST)]
        assert statuses == [403] * (BIND_BURST - 1) + [429]
        # One request ends a leaving page's links (only the caller's own).
        closed = await client.post("/wall/links/close", headers=mine, json={"links": [
            allowed.rsplit("/", 1)[1], ungranted.rsplit("/", 1)[1], others.rsplit("/", 1)[1]]})
        assert (await closed.json())["closed"] == 2
        assert (await (await client.get("/wall/links", headers=mine)).json())["links"] == 0
        assert (await (await client.get("/wall/links", headers=theirs)).json())["links"] == 1
    finally:
        for pc in pcs:
            await pc.close()
