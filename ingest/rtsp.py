"""Pulling a camera over RTSP: ``RtspSource`` chooses the client, ``FfmpegRtspSource`` is PyAV's.

``RtspSource`` uses the native asyncio client (``ingest.rtsp_native``) unless
``ingest.rtsp_client`` is ``ffmpeg``, and hands a camera the native client cannot pull (rtsps,
UDP, a redirect, a codec other than H.264/H.265) to the FFmpeg reader, logging why once.

The FFmpeg reader runs one demux thread per source and reconnects on its own.

The thread opens the camera (credentials go into the URL only there), hands every frame to the
event loop with ``loop.call_soon_threadsafe`` and, when the camera drops, stalls or refuses,
reports why to the sink and tries again after a capped, jittered backoff.

FFmpeg never connects to the camera itself: every session goes through an egress guard
(ingest.rtsp_guard) that connects to the checked address, keeps redirects and foreign RTP
destinations from FFmpeg, and verifies an ``rtsps`` camera's certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import av
import av.container

from ingest.backoff import Backoff
from ingest.handoff import HandoffClosed, LoopHandoff
from ingest.mediainfo import complete_from_sps, probe, with_b_frames
from ingest.normalizer import Normalizer
from ingest.rtsp_failures import Failure, describe_failure
from ingest.rtsp_guard import MAX_REDIRECTS, EgressRules, RtspGuard, first_hop, next_hop
from ingest.rtsp_native.source import NativeRtspSource
from rtcc.camera_url import (
    SafeUrl,
    parse_rtsp_url,
    redact_url,
    scrub,
    url_with_credentials,
)
from rtcc.config import IngestConfig
from rtcc.errors import UnsafeUrl
from rtcc.hub.source import FrameSink
from rtcc.media import EncodedFrame, MediaInfo, StreamState

log = logging.getLogger(__name__)

Transport = Literal["tcp", "udp"]
USER_AGENT = "rtcc-ingest"
PROBE_SIZE = 262_144
"""Bytes FFmpeg may read to learn the streams (a 720p keyframe fits)."""
ANALYZE_MICROSECONDS = 300_000
"""How long FFmpeg may read before the first packet is returned. Its default (5 s) delays every
start; what a short probe misses (picture size, frame rate) comes from the SPS instead."""


@dataclass(frozen=True, slots=True)
class RtspTarget:
    """Where a camera profile is pulled from. The password never appears in ``repr``."""

    url: str
    username: str = ""
    password: str = field(default="", repr=False)
    transport: Transport = "tcp"

    def __str__(self) -> str:
        return redact_url(self.url)


class _StallWatchdog:
    """Ends a TCP session when the camera has sent no byte for ``stall`` seconds.

    Progress is the arrival of bytes from the camera (the guard sees every one), not frames out
    of FFmpeg: after its read timeout FFmpeg may still hand back a frame from its buffer, which
    would look like progress and hide a hung camera for another timeout. Closing the guard
    makes FFmpeg's blocked read fail at once.
    """

    def __init__(self, name: str, guard: RtspGuard, stall: float) -> None:
        self._guard = guard
        self._stall = stall
        self._since = time.monotonic()
        self._stop = threading.Event()
        self.stalled = False
        self._thread = threading.Thread(target=self._run, name=f"rtsp-stall:{name}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poll = min(0.5, self._stall / 4)
        while not self._stop.wait(poll):
            last = max(self._guard.last_camera_data, self._since)
            if time.monotonic() - last > self._stall:
                self.stalled = True
                self._guard.close()
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()


class _LoopClosed(Exception):
    """The event loop that owns the sink is gone: the thread has nobody to deliver to."""


class FfmpegRtspSource:
    """An ``rtcc.hub.Source`` that pulls one RTSP URL with PyAV/FFmpeg.

    ``start`` returns at once; the demux thread then connects, and reconnects until ``aclose``.
    The first frame after every (re)connect is a keyframe marked ``discontinuity``.
    """

    def __init__(
        self,
        name: str,
        target: RtspTarget,
        settings: IngestConfig,
        *,
        handoff: LoopHandoff | None = None,
        join_timeout: float = 2.0,
        egress: EgressRules | None = None,
        checked: SafeUrl | None = None,
    ) -> None:
        """``handoff``: share one LoopHandoff between all sources of a process so that one
        event-loop wakeup carries frames of many cameras (see ingest.handoff); without it the
        source wakes the loop for every frame. ``join_timeout``: seconds ``aclose`` waits for
        the demux thread before it logs that the thread is still in a blocking read (it keeps
        waiting). ``egress``: the rules every hop of a session must pass (the server's
        allowlist decision); ``checked``: the checked, resolved URL to connect to. Without
        them (the owner's agent) the host is connected as given and redirects may only stay
        on it."""
        self.name = name
        self._address = parse_rtsp_url(target.url)  # raises UnsafeUrl: only rtsp/rtsps
        self._egress = egress or EgressRules()
        self._first = first_hop(target.url, checked)
        self._hop = self._first
        self._redirects = 0
        self._refused = ""
        if target.transport not in ("tcp", "udp"):
            raise ValueError(f"camera {name}: RTSP transport must be 'tcp' or 'udp'")
        self._target = target
        self._settings = settings
        self._join_timeout = join_timeout
        self._redacted = redact_url(target.url)
        self._stop = threading.Event()
        self._thread_done = asyncio.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handoff = handoff or LoopHandoff(min_interval=0)
        self._sink: FrameSink | None = None
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None
        self._reported: tuple[StreamState, str] | None = None
        # Counters written by the demux thread, read by stats() (single ints: GIL-atomic).
        self._state = "idle"
        self._connects = 0
        self._reconnects = 0
        self._packets = 0
        self._bytes = 0
        self._frames = 0
        self._keyframes = 0
        self._skipped = 0
        self._joined = 0
        self._inserted = 0
        self._last_error = ""
        self._last_packet = 0.0

    def __repr__(self) -> str:
        return f"<FfmpegRtspSource {self.name} {self._redacted}>"

    # -- Source -------------------------------------------------------------------------------

    async def start(self, sink: FrameSink) -> None:
        if self._thread is not None or self._closing:
            raise RuntimeError(f"camera {self.name}: an RTSP source can only be started once")
        self._loop = asyncio.get_running_loop()
        self._handoff.bind(self._loop)
        self._sink = sink
        self._state = "connecting"
        self._thread = threading.Thread(
            target=self._run, name=f"rtsp:{self.name}", daemon=True
        )
        self._thread.start()

    async def aclose(self) -> None:
        """Stop the thread and close the RTSP session. Idempotent, safe for concurrent callers."""
        if self._close_task is None:
            self._closing = True
            self._stop.set()
            self._close_task = asyncio.get_running_loop().create_task(
                self._join(), name=f"rtsp:{self.name}:close"
            )
        await asyncio.shield(self._close_task)

    def stats(self) -> dict[str, object]:
        thread = self._thread
        hop = self._hop
        stats: dict[str, object] = {
            "kind": "rtsp",
            "client": "ffmpeg",
            "url": self._redacted,
            "transport": self._target.transport,
            "connected_to": f"{hop.address}:{hop.port}",
            "tls": hop.tls,
            "redirects": self._redirects,
            "state": self._state,
            "connects": self._connects,
            "reconnects": self._reconnects,
            "packets": self._packets,
            "bytes": self._bytes,
            "frames": self._frames,
            "keyframes": self._keyframes,
            "skipped_before_keyframe": self._skipped,
            "keyframes_joined": self._joined,
            "parameter_sets_inserted": self._inserted,
            "last_error": self._last_error,
            "last_packet_age": (
                round(time.monotonic() - self._last_packet, 3) if self._last_packet else None
            ),
            "thread_alive": bool(thread and thread.is_alive()),
        }
        if self._refused:
            stats["refused"] = self._refused
        return stats

    async def _join(self) -> None:
        """Wait until the demux thread has ended, and with it the RTSP session (it sends
        TEARDOWN and closes the connection itself). Never gives up: a source that is closed is
        gone, so whatever starts next (a restart of the same camera) cannot open a second
        session while this one lives; cameras with a session limit would refuse it. A thread
        blocked in a read FFmpeg cannot interrupt from outside ends within the open or stall
        timeout, when it sees the stop flag."""
        thread = self._thread
        if thread is not None:
            try:
                async with asyncio.timeout(self._join_timeout):
                    await self._thread_done.wait()
            except TimeoutError:
                log.info("camera %s: waiting for the demux thread to finish a blocking read",
                         self.name)
                await self._thread_done.wait()
            # It has returned from _run (or is about to): this only reaps it.
            await asyncio.to_thread(thread.join)
        self._state = "closed"

    # -- event-loop side ----------------------------------------------------------------------

    def _deliver(self, frame: EncodedFrame) -> None:
        if not self._closing and self._sink is not None:
            self._sink.push_frame(frame)

    def _apply_state(self, state: StreamState, reason: str) -> None:
        if not self._closing and self._sink is not None:
            self._sink.set_state(state, reason)

    def _apply_media(self, info: MediaInfo) -> None:
        if not self._closing and self._sink is not None:
            self._sink.set_media_info(info)

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        try:
            self._handoff.post(callback, *args)
        except HandoffClosed:
            raise _LoopClosed from None

    def _report(self, state: StreamState, reason: str) -> None:
        if self._reported == (state, reason):
            return
        self._reported = (state, reason)
        self._call(self._apply_state, state, reason)

    # -- demux thread -------------------------------------------------------------------------

    def _run(self) -> None:
        settings = self._settings
        backoff = Backoff(
            settings.backoff_initial, settings.backoff_max, fatal=settings.fatal_retry
        )
        try:
            while not self._stop.is_set():
                failure, delivered = self._session()
                if failure is None or self._stop.is_set():
                    break
                if delivered:
                    backoff.reset()
                delay = backoff.next_delay(fatal=failure.fatal)
                self._fail(failure, delay)
                if self._stop.wait(delay):
                    break
                self._reconnects += 1
                self._state = "connecting"
        except _LoopClosed:
            pass
        except Exception as exc:  # a bug here must be visible, never with a secret in it
            text = "".join(traceback.format_exception(exc))
            log.error("camera %s: demux thread failed:\n%s", self.name,
                      scrub(text, self._target.password))
            with contextlib.suppress(_LoopClosed):
                reason = f"ingest failed unexpectedly ({type(exc).__name__})"
                self._report(StreamState.ERROR, reason)
        finally:
            self._state = "closed" if self._stop.is_set() else "stopped"
            loop = self._loop
            if loop is not None:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._thread_done.set)

    def _fail(self, failure: Failure, delay: float) -> None:
        if failure.refused:
            self._refused = failure.reason
        changed = failure.reason != self._last_error
        self._last_error = failure.reason
        self._state = "error" if failure.fatal else "retrying"
        level = logging.WARNING if changed else logging.DEBUG
        log.log(level, "camera %s: %s (%s); next attempt in %.1f s",
                self.name, failure.reason, self._redacted, delay)
        state = StreamState.ERROR if failure.fatal else StreamState.RECONNECTING
        self._report(state, failure.reason)

    def _options(self) -> dict[str, str]:
        return {
            "rtsp_transport": self._target.transport,
            "probesize": str(PROBE_SIZE),
            "analyzeduration": str(ANALYZE_MICROSECONDS),
            "user_agent": USER_AGENT,
        }

    def _session(self) -> tuple[Failure | None, bool]:
        """One connection, following checked redirects. Returns why it ended (None: asked to
        stop) and whether it delivered any frame."""
        hop = self._first
        for _ in range(MAX_REDIRECTS + 1):
            self._hop = hop
            guard = RtspGuard(self.name, hop, transport=self._target.transport,
                              verify_tls=self._egress.verify_tls,
                              connect_timeout=self._settings.open_timeout)
            try:
                outcome = self._through(guard)
            finally:
                guard.close()
            if not isinstance(outcome, str):
                return outcome
            try:
                hop = next_hop(outcome, hop, self._first, self._egress)
            except UnsafeUrl as exc:
                return Failure(str(exc), fatal=True, refused=True), False
            self._redirects += 1
            log.info("camera %s: redirected to %s", self.name, redact_url(hop.url))
        return Failure(f"the camera redirected more than {MAX_REDIRECTS} times: refused",
                       fatal=True, refused=True), False

    def _through(self, guard: RtspGuard) -> tuple[Failure | None, bool] | str:
        """One session through ``guard``: its outcome, or where the camera redirected to."""
        settings = self._settings
        hop = guard.hop
        local = guard.start()
        username, password = (
            (self._target.username, self._target.password) if hop.credentials else ("", "")
        )
        started = time.monotonic()
        try:
            container = av.open(
                url_with_credentials(local, username, password),
                mode="r",
                options=self._options(),
                timeout=(settings.open_timeout, settings.stall_timeout),
            )
        except Exception as exc:
            guard.close()
            if guard.location is not None:
                return guard.location
            return self._guarded(guard, exc, "open", time.monotonic() - started), False
        # With UDP the media bypasses the guard: only the packet check in _pump applies.
        watchdog = (_StallWatchdog(self.name, guard, settings.stall_timeout)
                    if self._target.transport == "tcp" else None)
        try:
            return self._pump(container, guard, watchdog)
        finally:
            if watchdog is not None:
                watchdog.stop()
            with contextlib.suppress(Exception):
                container.close()  # sends TEARDOWN

    def _guarded(self, guard: RtspGuard, exc: Exception, phase: Literal["open", "read"],
                 elapsed: float) -> Failure:
        """Why a session failed: the guard's refusal, what the camera connection raised, or
        FFmpeg's own error."""
        if guard.refusal is not None:
            return guard.refusal
        hop = guard.hop
        address = parse_rtsp_url(hop.url)
        cause: BaseException = guard.camera_error or exc
        return describe_failure(
            cause,
            phase,
            elapsed,
            address,
            has_credentials=hop.credentials and bool(self._target.username or
                                                     self._target.password),
            open_timeout=self._settings.open_timeout,
            stall_timeout=self._settings.stall_timeout,
            described=guard.described,
        )

    def _pump(
        self, container: av.container.InputContainer, guard: RtspGuard,
        watchdog: _StallWatchdog | None,
    ) -> tuple[Failure | None, bool]:
        track, info = probe(container)
        if track is None:
            return Failure("the camera's stream description (SDP) lists no video track",
                           fatal=True), False
        self._connects += 1
        self._state = "waiting for keyframe"
        self._call(self._apply_media, info)
        log.info("camera %s: connected to %s (%s %dx%d %.3g fps%s)", self.name, self._redacted,
                 info.video_codec, info.width, info.height, info.fps,
                 f", audio {info.audio_codec}" if info.audio_codec else "")
        if self._reported is not None:  # a failure was shown: say the camera is back
            self._report(StreamState.STARTING, "connected; waiting for a keyframe")
        normalizer = Normalizer.for_track(track, info.fps)
        stall = self._settings.stall_timeout
        stalled = Failure(f"no video for {stall:g} s: reconnecting")
        last_video = time.monotonic()
        delivered = False
        try:
            for packet in container.demux():
                if self._stop.is_set():
                    return None, delivered
                if watchdog is not None and watchdog.stalled:
                    return stalled, delivered  # a frame FFmpeg had buffered is not progress
                now = time.monotonic()
                if packet.stream_index != track.index or not packet.size:
                    if now - last_video > stall:
                        return stalled, delivered
                    continue
                last_video = now
                self._last_packet = now
                data = bytes(packet)
                self._packets += 1
                self._bytes += len(data)
                had_b_frames = normalizer.saw_b_frames
                frames = normalizer.push(
                    data, packet.pts, packet.dts, packet.is_keyframe, time.time()
                )
                if normalizer.saw_b_frames and not had_b_frames:
                    info = with_b_frames(info)
                    self._call(self._apply_media, info)
                for frame in frames:
                    self._call(self._deliver, frame)
                    self._frames += 1
                    if frame.keyframe:
                        self._keyframes += 1
                        self._state = "streaming"
                if frames:
                    if not delivered and not (info.width and info.fps):
                        info = complete_from_sps(info, normalizer.parameter_sets)
                        self._call(self._apply_media, info)
                    delivered = True
                    self._last_error = ""
                self._skipped = normalizer.skipped_before_keyframe
                self._joined = normalizer.keyframes_joined
                self._inserted = normalizer.parameter_sets_inserted
        except _LoopClosed:
            raise
        except Exception as exc:
            if self._stop.is_set():
                return None, delivered
            if watchdog is not None and watchdog.stalled:
                return stalled, delivered
            guard.close()
            return self._guarded(guard, exc, "read", time.monotonic() - last_video), delivered
        if self._stop.is_set():
            return None, delivered
        if watchdog is not None and watchdog.stalled:
            return stalled, delivered
        return Failure(
            f"the camera at {guard.hop.endpoint} ended the stream: reconnecting"
        ), delivered


def native_unsupported(target: RtspTarget) -> str:
    """Why the native client cannot pull ``target`` from the start ("" when it can)."""
    if target.transport != "tcp":
        return "the camera is configured for RTP over UDP"
    if target.url.lower().startswith("rtsps:"):
        return "the camera uses rtsps (TLS)"
    return ""


class RtspSource:
    """An ``rtcc.hub.Source`` that pulls one RTSP URL with the configured client (see the
    module's docstring). Same arguments as ``FfmpegRtspSource``; ``handoff`` and
    ``join_timeout`` only concern the FFmpeg reader."""

    def __init__(
        self,
        name: str,
        target: RtspTarget,
        settings: IngestConfig,
        *,
        handoff: LoopHandoff | None = None,
        join_timeout: float = 2.0,
        egress: EgressRules | None = None,
        checked: SafeUrl | None = None,
    ) -> None:
        self.name = name
        self._ffmpeg_args = (name, target, settings, handoff, join_timeout, egress, checked)
        self._fallback = ""
        self._sink: FrameSink | None = None
        self._closing = False
        self._switch: asyncio.Task[None] | None = None
        self._native: NativeRtspSource | None = None
        self._ffmpeg: FfmpegRtspSource | None = None
        reason = native_unsupported(target) if settings.rtsp_client == "native" else ""
        if settings.rtsp_client == "native" and not reason:
            self._native = NativeRtspSource(name, target, settings, egress=egress,
                                            checked=checked, unsupported=self._unsupported)
        else:
            self._ffmpeg = self._make_ffmpeg()
            if reason:
                self._note_fallback(reason)

    def __repr__(self) -> str:
        return f"<RtspSource {self.name} {self._ffmpeg_args[1]}>"

    def _make_ffmpeg(self) -> FfmpegRtspSource:
        name, target, settings, handoff, join_timeout, egress, checked = self._ffmpeg_args
        return FfmpegRtspSource(name, target, settings, handoff=handoff,
                                join_timeout=join_timeout, egress=egress, checked=checked)

    def _note_fallback(self, reason: str) -> None:
        self._fallback = reason
        log.info("camera %s: pulled with FFmpeg, not the native RTSP client: %s (%s)",
                 self.name, reason, self._ffmpeg_args[1])

    async def start(self, sink: FrameSink) -> None:
        self._sink = sink
        if self._native is not None:
            await self._native.start(sink)
        elif self._ffmpeg is not None:
            await self._ffmpeg.start(sink)

    def _unsupported(self, reason: str) -> None:
        """The native client gave up on this camera: the FFmpeg reader takes over."""
        if self._closing or self._switch is not None:
            return
        self._note_fallback(reason)
        self._ffmpeg = self._make_ffmpeg()
        self._switch = asyncio.get_running_loop().create_task(
            self._start_ffmpeg(self._ffmpeg), name=f"camera:{self.name}:rtsp-fallback")

    async def _start_ffmpeg(self, source: FfmpegRtspSource) -> None:
        if self._sink is not None and not self._closing:
            await source.start(self._sink)

    async def aclose(self) -> None:
        self._closing = True
        if self._native is not None:
            await self._native.aclose()
        if self._switch is not None:
            await asyncio.shield(self._switch)
        if self._ffmpeg is not None and (self._native is None or self._switch is not None):
            await self._ffmpeg.aclose()

    def stats(self) -> dict[str, object]:
        inner = self._ffmpeg if self._ffmpeg is not None else self._native
        assert inner is not None
        stats = inner.stats()
        if self._fallback:
            stats["native_unsupported"] = self._fallback
        return stats
