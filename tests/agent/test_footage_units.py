"""The footage parts of the agent protocol and of the server's request API, without processes:
``upload_footage`` orders are checked before anything reaches a URL; every approval (by hand or
by policy) is handed to the courier, a decline never is; a failure the agent reports shows in
the request with its reason (here: an agent that keeps no buffer) and closes the item to
uploads."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from agent.footage import FootageUploader
from agent.state import Credential
from evidence.requests import Item, overall_status
from rtcc import agent_protocol as proto
from rtcc.config import SharingLevel
from rtcc.footage import FOOTAGE_COURIER, ApprovedFootage
from rtcc.policy import Role
from tests.agent.harness import wait_for
from tests.evidence.helpers import evidence_app
from tests.fixtures.auth import MakeClient, bearer, role_headers, security_settings
from tests.security.harness import Directory


def test_footage_orders_are_checked() -> None:
    order = proto.FootageOrder.from_json({"request_id": "fr-0123456789ab",
                                          "camera_id": "a1b2c3d4-0123456789",
                                          "start": 1000.0, "end": 1010.0, "case": "24-1"})
    assert order == proto.FootageOrder("fr-0123456789ab", "a1b2c3d4-0123456789", 1000.0, 1010.0,
                                       "24-1")
    assert proto.FootageOrder.from_json({**order.to_json()}) == order
    assert "upload_footage" in proto.ACTIONS
    bad: list[dict[str, object]] = [
        {"request_id": "../../api/users"}, {"request_id": "fr-1/../x"},
        {"camera_id": "CAM1"}, {"camera_id": "cam1?x=1"}, {"start": "yesterday"},
        {"end": 999.0}, {"start": True},
    ]
    for change in bad:
        with pytest.raises(proto.ProtocolError):
            proto.FootageOrder.from_json({**order.to_json(), **change})


def _item(status: str) -> Item:
    return Item("cam1", "shop1", status, None, None, False, "", None)


def test_overall_status_follows_the_uploads() -> None:
    def status(*states: str) -> str:
        return overall_status([_item(state) for state in states])

    assert status("approved") == "approved"
    assert status("receiving") == "receiving"
    assert status("received") == "received"
    assert status("failed") == "failed"
    assert status("failed", "received") == "partly_received"
    assert status("failed", "receiving") == "receiving"
    assert status("failed", "approved") == "approved"
    assert status("failed", "declined") == "partly_approved"


class Courier:
    def __init__(self) -> None:
        self.approved: list[ApprovedFootage] = []

    def footage_approved(self, approved: ApprovedFootage) -> None:
        self.approved.append(approved)


async def test_approvals_reach_the_courier_and_failures_show(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    directory = Directory()
    directory.add("cam1", SharingLevel.ON_REQUEST, owner_id="shop1")
    directory.add("cam2", SharingLevel.ON_REQUEST, owner_id="shop2")
    courier = Courier()
    app = evidence_app(security_settings(tmp_path), directory)
    app[FOOTAGE_COURIER] = courier
    client = await make_client(app)
    admin = bearer(bootstrap_token)
    _, inv = await role_headers(client, admin, Role.INVESTIGATOR)
    _, own1 = await role_headers(client, admin, Role.OWNER, owner_id="shop1")
    _, own2 = await role_headers(client, admin, Role.OWNER, owner_id="shop2")
    _, agent1 = await role_headers(client, admin, Role.AGENT, owner_id="shop1")
    now = time.time()

    async def ask(camera: str) -> str:
        response = await client.post("/api/footage-requests", headers=inv, json={
            "cameras": [camera], "from": now - 60, "to": now - 50, "case": "24-7",
            "reason": "hit and run"})
        assert response.status == 201
        return str((await response.json())["id"])

    declined = await ask("cam1")
    assert (await client.post(f"/api/footage-requests/{declined}/decline",
                              headers=own1)).status == 200
    approved = await ask("cam1")
    assert (await client.post(f"/api/footage-requests/{approved}/approve",
                              headers=own1)).status == 200
    assert (await client.put("/api/footage-policy", headers=own2,
                             json={"mode": "auto_approve"})).status == 200
    automatic = await ask("cam2")
    assert [(a.request_id, a.camera_id, a.owner_id, a.case_number) for a in courier.approved] \
        == [(approved, "cam1", "shop1", "24-7"), (automatic, "cam2", "shop2", "24-7")]
    assert courier.approved[0].start == pytest.approx(now - 60)

    # An agent without a buffer finds the approved item and cannot deliver: the request says
    # so, and takes no more uploads.
    refused = await client.post(f"/api/footage-requests/{declined}/cameras/cam1/fail",
                                headers=agent1, json={"reason": "nothing there"})
    assert refused.status == 409  # a declined item cannot fail
    server = str(client.make_url("")).rstrip("/")
    token = agent1["Authorization"].removeprefix("Bearer ")
    uploader = FootageUploader(Credential(server, "a1", "shop1", token), None,
                               my_cameras=lambda: {"cam1"})
    worker = asyncio.get_running_loop().create_task(uploader.run(), name="test:uploader")
    try:
        assert await uploader.sync() == 1  # the declined one is not offered
        assert await uploader.sync() == 0  # known already

        async def failed() -> dict[str, Any] | None:
            body: dict[str, Any] = await (await client.get(
                f"/api/footage-requests/{approved}", headers=inv)).json()
            return body if body["status"] == "failed" else None

        shown = await wait_for(failed, 10, "the failure to be reported")
    finally:
        worker.cancel()
        await asyncio.wait({worker})
        await uploader.aclose()
    assert "keeps no footage buffer" in shown["cameras"][0]["failure"]
    upload = await client.post(f"/api/footage-requests/{approved}/uploads", headers=agent1,
                               json={"camera_id": "cam1", "sequence": 0, "codec": "h264",
                                     "size": 4, "sha256": "0" * 64,
                                     "frames": [[0, 4, 0, now - 55, 1]]})
    assert upload.status == 409
    other = await client.post(f"/api/footage-requests/{automatic}/cameras/cam2/fail",
                              headers=agent1, json={"reason": "x"})
    assert other.status == 404  # not this agent's owner's camera
