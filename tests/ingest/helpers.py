"""Small tools shared by the ingest integration tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import av

from ingest.handoff import LoopHandoff
from ingest.rtsp import RtspSource, RtspTarget
from rtcc.config import IngestConfig
from rtcc.hub import Stream, StreamHub, StreamSettings
from rtcc.media import EncodedFrame, StreamState

FAST = IngestConfig(open_timeout=2.0, stall_timeout=2.0, backoff_initial=0.2, backoff_max=1.0)


def register(
    hub: StreamHub,
    target: RtspTarget,
    settings: IngestConfig = FAST,
    *,
    camera_id: str = "cam",
    start_timeout: float = 10.0,
    handoff: LoopHandoff | None = None,
) -> Stream:
    def make() -> RtspSource:
        return RtspSource(f"{camera_id}/main", target, settings, handoff=handoff)

    return hub.register(camera_id, "main", make, StreamSettings(start_timeout=start_timeout))


def record_states(hub: StreamHub) -> list[tuple[StreamState, str]]:
    states: list[tuple[StreamState, str]] = []
    hub.add_state_listener(lambda stream: states.append((stream.state, stream.reason)))
    return states


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


def decode_keyframe(frame: EncodedFrame) -> tuple[int, int]:
    """Decode one keyframe with no extradata: the frame alone must be enough."""
    assert frame.keyframe
    decoder = av.CodecContext.create("hevc" if frame.codec == "h265" else frame.codec, "r")
    pictures = list(decoder.decode(av.Packet(frame.data))) + list(decoder.decode(None))
    assert pictures, "the keyframe did not decode to a picture"
    return pictures[0].width, pictures[0].height
