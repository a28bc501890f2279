"""H.265 to H.264 for viewers that cannot decode H.265: a hub Source fed by another stream.

``TranscodeSource`` subscribes to a camera's own stream (so the camera is pulled once, and the
recorder keeps the original bytes), decodes it with PyAV in a worker thread, scales it down to at
most ``max_width`` x ``max_height`` and ``max_fps``, and encodes constrained-baseline H.264 with
libx264 (every keyframe carries SPS and PPS). Registered in the hub as its own stream, it is
started when its first viewer subscribes and stopped after the last one leaves, and all viewers
of it share one encoder.

Frames cross to the worker through a bounded queue: when the worker falls behind, the queue is
dropped until the next keyframe (a decoder cannot skip the frames a later one refers to).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from fractions import Fraction

import av

from rtcc.hub.source import FrameSink
from rtcc.hub.stream import Stream
from rtcc.hub.subscription import Subscription
from rtcc.media import EncodedFrame, MediaInfo, StreamState

log = logging.getLogger(__name__)

_DECODERS = {"h265": "hevc", "h264": "h264"}
_QUEUE_FRAMES = 30
_STOP = None


def transcoded_profile(profile: str) -> str:
    """The hub profile under which ``profile`` is offered transcoded to H.264."""
    return f"{profile}.h264"


@dataclass(frozen=True, slots=True)
class TranscodeLimits:
    """The most a transcoded stream may cost: its picture size, rate and bit rate."""

    max_width: int = 640
    max_height: int = 360
    max_fps: float = 15.0
    bitrate: int = 600_000
    gop_seconds: float = 2.0


def _scaled(width: int, height: int, limits: TranscodeLimits) -> tuple[int, int]:
    """The size within the limits that keeps the aspect ratio (even numbers, for 4:2:0)."""
    scale = min(1.0, limits.max_width / width, limits.max_height / height)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


class H264Transcoder:
    """Decodes H.265 (or H.264) access units and encodes H.264 within ``limits``. Not thread-safe:
    one thread feeds it. Also used on its own by the benchmark."""

    def __init__(self, codec: str, limits: TranscodeLimits) -> None:
        decoder = _DECODERS.get(codec)
        if decoder is None:
            raise ValueError(f"cannot transcode {codec!r} video (only H.265 or H.264)")
        self.limits = limits
        context = av.CodecContext.create(decoder, "r")
        assert isinstance(context, av.VideoCodecContext)
        context.thread_count = 1  # one core at most per transcoded stream
        self._decoder = context
        self._encoder: av.VideoCodecContext | None = None
        self._min_step = round(90000 / limits.max_fps) if limits.max_fps > 0 else 0
        self._last_pts: int | None = None
        self.size = (0, 0)
        self.frames_in = 0
        self.frames_out = 0

    def _open_encoder(self, width: int, height: int) -> av.VideoCodecContext:
        out_w, out_h = _scaled(width, height, self.limits)
        fps = self.limits.max_fps
        encoder = av.CodecContext.create("libx264", "w")
        assert isinstance(encoder, av.VideoCodecContext)
        encoder.width, encoder.height = out_w, out_h
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = Fraction(1, 90000)
        encoder.framerate = Fraction(round(fps * 1000), 1000)
        encoder.bit_rate = self.limits.bitrate
        encoder.gop_size = max(1, round(fps * self.limits.gop_seconds))
        encoder.max_b_frames = 0
        # Constrained baseline, no lookahead: what every browser decodes, with no added delay.
        encoder.options = {"preset": "veryfast", "tune": "zerolatency", "profile": "baseline",
                           "threads": "1"}
        encoder.open()
        self.size = (out_w, out_h)
        return encoder

    def transcode(self, frame: EncodedFrame) -> list[EncodedFrame]:
        """The H.264 access units this one yields (none when it is skipped for the rate cap)."""
        self.frames_in += 1
        out: list[EncodedFrame] = []
        for picture in self._decoder.decode(av.Packet(frame.data)):
            pts = frame.pts
            if (self._last_pts is not None and 0 <= pts - self._last_pts < self._min_step
                    and not frame.keyframe):
                continue
            self._last_pts = pts
            if self._encoder is None:
                self._encoder = self._open_encoder(picture.width, picture.height)
            encoder = self._encoder
            scaled = picture.reformat(width=encoder.width, height=encoder.height,
                                      format="yuv420p")
            scaled.pts = pts
            scaled.time_base = Fraction(1, 90000)
            for packet in encoder.encode(scaled):
                out.append(EncodedFrame(
                    codec="h264", data=bytes(packet), pts=packet.pts if packet.pts is not None
                    else pts, keyframe=packet.is_keyframe, capture_time=frame.capture_time,
                    discontinuity=self.frames_out == 0,
                ))
                self.frames_out += 1
        return out

    def media_info(self) -> MediaInfo:
        width, height = self.size
        return MediaInfo(video_codec="h264", width=width, height=height,
                         fps=self.limits.max_fps, profile="constrained baseline")


class TranscodeSource:
    """A hub Source: ``upstream`` transcoded to H.264, while this stream has viewers."""

    def __init__(self, upstream: Stream, limits: TranscodeLimits) -> None:
        self._upstream = upstream
        self._limits = limits
        self._queue: queue.Queue[EncodedFrame | None] = queue.Queue(_QUEUE_FRAMES)
        self._thread: threading.Thread | None = None
        self._pump: asyncio.Task[None] | None = None
        self._sub: Subscription | None = None
        self._busy_seconds = 0.0
        self._closing = False
        self.dropped = 0
        self.frames_out = 0
        self.error = ""

    async def start(self, sink: FrameSink) -> None:
        loop = asyncio.get_running_loop()
        key = self._upstream.key
        self._sub = await self._upstream.subscribe(f"transcode:{key.profile}", wait=False)
        self._thread = threading.Thread(target=self._work, args=(loop, sink),
                                        name=f"transcode:{key}", daemon=True)
        self._thread.start()
        self._pump = loop.create_task(self._feed(self._sub, sink),
                                      name=f"camera:{key.camera_id}:transcode")

    async def _feed(self, sub: Subscription, sink: FrameSink) -> None:
        """Hand the camera's frames to the worker; skip to the next keyframe when it lags."""
        skipping = True  # the decoder starts at a keyframe
        async for frame in sub:
            if skipping and not frame.keyframe:
                continue
            try:
                self._queue.put_nowait(frame)
                skipping = False
            except queue.Full:
                self.dropped += 1
                skipping = True
        if not self._closing:
            # Consent revoked or camera removed: the camera's stream ended this subscription
            # (a camera that reconnects keeps it). Fail waiting viewers now; the hub starts a
            # new transcode for the next viewer once this one has been stopped.
            sink.set_state(StreamState.ERROR,
                           f"the camera's stream ended ({sub.close_reason or 'closed'})")

    def _work(self, loop: asyncio.AbstractEventLoop, sink: FrameSink) -> None:
        transcoder: H264Transcoder | None = None
        announced = False
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            started = time.thread_time()
            try:
                if transcoder is None:
                    transcoder = H264Transcoder(frame.codec, self._limits)
                frames = transcoder.transcode(frame)
            except (av.FFmpegError, ValueError) as exc:
                self.error = f"transcoding {frame.codec} to H.264 failed: {exc}"
                log.warning("stream %s: %s", self._upstream.key, self.error)
                with contextlib.suppress(RuntimeError):  # the loop is closing
                    loop.call_soon_threadsafe(sink.set_state, StreamState.ERROR, self.error)
                return
            self._busy_seconds += time.thread_time() - started
            if not frames:
                continue
            self.frames_out += len(frames)
            with contextlib.suppress(RuntimeError):
                if not announced:
                    announced = True
                    loop.call_soon_threadsafe(sink.set_media_info, transcoder.media_info())
                for out in frames:
                    loop.call_soon_threadsafe(sink.push_frame, out)

    async def aclose(self) -> None:
        self._closing = True
        if self._sub is not None:
            self._sub.close("transcoding stopped")
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            if (current := asyncio.current_task()) is not None and current.cancelling():
                raise asyncio.CancelledError
        thread, self._thread = self._thread, None
        if thread is not None:
            while True:  # make room for the stop marker, then wait for the worker
                try:
                    self._queue.put_nowait(_STOP)
                    break
                except queue.Full:
                    with contextlib.suppress(queue.Empty):
                        self._queue.get_nowait()
            await asyncio.to_thread(thread.join)

    def stats(self) -> dict[str, object]:
        return {"transcode": {"frames_out": self.frames_out, "dropped": self.dropped,
                              "cpu_seconds": round(self._busy_seconds, 3),
                              "error": self.error}}
