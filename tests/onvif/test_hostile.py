"""Hostile or broken cameras fail alone: an external entity, an entity bomb, a SOAP fault, a
reply too large, a camera that never answers, garbage. A good camera queried at the same time
keeps working, and nothing from the hostile reply leaks into the error."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ingest.onvif.client import OnvifClient
from ingest.onvif.models import (
    OnvifError,
    OnvifFault,
    OnvifProtocolError,
    OnvifTimeout,
    OnvifUnsafeReply,
)
from tests.fixtures.onvif import ONVIF_PASSWORD, ONVIF_USER, HostileOnvif, OnvifSimFactory

EXPECTED: dict[str, type[OnvifError]] = {
    "xxe": OnvifUnsafeReply,
    "bomb": OnvifUnsafeReply,
    "huge": OnvifUnsafeReply,
    "fault": OnvifFault,
    "slow": OnvifTimeout,
    "garbage": OnvifProtocolError,
}


async def _probe(xaddr: str, timeout: float = 10.0) -> str:
    async with OnvifClient.from_xaddr(xaddr, ONVIF_USER, ONVIF_PASSWORD, timeout=timeout,
                                      connect_timeout=timeout, max_reply_bytes=256 * 1024) as c:
        return (await c.device_info()).manufacturer


@pytest.mark.parametrize("kind", sorted(EXPECTED))
async def test_hostile_reply_fails_its_camera_only(
    kind: str, hostile_onvif: HostileOnvif, onvif_sim_factory: OnvifSimFactory
) -> None:
    sim = await onvif_sim_factory()
    bad = await hostile_onvif(kind)
    results = await asyncio.gather(
        _probe(bad, timeout=1.5), _probe(sim.xaddr(0)), return_exceptions=True
    )
    failure, good = results
    assert good == "RTCC Camsim"
    assert isinstance(failure, EXPECTED[kind]), repr(failure)
    text = str(failure)
    assert "127.0.0.1" in text
    assert ONVIF_PASSWORD not in text
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    if hostname:
        assert hostname not in text  # the external entity was never resolved
