"""Cameras are pulled only from addresses that pass the URL check; the department's allowlist
applies only to addresses the department registered."""

from __future__ import annotations

import pytest

from ingest.handoff import LoopHandoff
from ingest.rtsp import RtspTarget
from rtcc.config import IngestConfig, SecurityConfig
from rtcc.errors import SourceUnavailable
from rtcc.hub import StreamHub, StreamSettings
from rtcc.media import StreamState
from server.camera_sources import rtsp_source_factory
from tests.fixtures.camsim import CamsimHandle


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("rtsp://10.1.2.3/stream", "10.1.2.3"),
        ("rtsp://169.254.169.254/latest", "169.254.169.254"),
        ("rtsp://localhost:6379/", "localhost"),
    ],
)
async def test_private_camera_host_is_refused_with_a_reason(url: str, why: str) -> None:
    target = RtspTarget(url=url, username="admin", password="canary-pw-7731", transport="tcp")
    factory = rtsp_source_factory("cam/main", target, IngestConfig(), SecurityConfig(),
                                  LoopHandoff(), allowlisted=True)
    async with StreamHub() as hub:
        stream = hub.register("cam", "main", factory, StreamSettings(start_timeout=2))
        with pytest.raises(SourceUnavailable) as error:
            await stream.subscribe("viewer")
        assert why in str(error.value)
        assert "refused" in str(error.value)
        assert stream.state is StreamState.ERROR
        assert "canary-pw-7731" not in str(stream.stats())


async def test_allowlisted_network_is_pulled(camsim: CamsimHandle) -> None:
    target = camsim.target("open")
    security = SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"])
    factory = rtsp_source_factory("cam/main", target, IngestConfig(), security, LoopHandoff(),
                                  allowlisted=True)
    async with StreamHub() as hub:
        stream = hub.register("cam", "main", factory, StreamSettings(start_timeout=10))
        subscription = await stream.subscribe("viewer")
        frame = await subscription.get()
        assert frame.keyframe
        assert stream.state is StreamState.LIVE


async def test_allowlist_does_not_apply_to_an_address_an_owner_registered(
    camsim: CamsimHandle,
) -> None:
    security = SecurityConfig(allow_private_camera_hosts=["127.0.0.0/8"])
    factory = rtsp_source_factory("cam/main", camsim.target("open"), IngestConfig(), security,
                                  LoopHandoff(), allowlisted=False)
    async with StreamHub() as hub:
        stream = hub.register("cam", "main", factory, StreamSettings(start_timeout=5))
        with pytest.raises(SourceUnavailable) as error:
            await stream.subscribe("viewer")
        assert "127.0.0.1 is a loopback address" in str(error.value)
        assert stream.state is StreamState.ERROR
