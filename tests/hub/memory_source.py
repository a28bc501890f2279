"""An in-memory Source the hub tests drive by hand."""

from __future__ import annotations

import time

from rtcc.hub import FrameSink
from rtcc.media import EncodedFrame, StreamState


class MemorySource:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.sink: FrameSink | None = None
        self.closed = False
        self.pts = 0

    async def start(self, sink: FrameSink) -> None:
        self.log.append("start")
        self.sink = sink

    async def aclose(self) -> None:
        self.log.append("close")
        self.closed = True

    def stats(self) -> dict[str, object]:
        return {"kind": "memory"}

    def frame(self, keyframe: bool, size: int = 100, discontinuity: bool = False) -> EncodedFrame:
        self.pts += 3000
        marker = b"\x00\x00\x00\x01" + (b"\x65" if keyframe else b"\x41")
        body = marker + self.pts.to_bytes(8, "big") + b"\x00" * max(0, size - 13)
        frame = EncodedFrame("h264", body, self.pts, keyframe, time.time(), discontinuity)
        assert self.sink is not None
        self.sink.push_frame(frame)
        return frame

    def state(self, state: StreamState, reason: str = "") -> None:
        assert self.sink is not None
        self.sink.set_state(state, reason)
