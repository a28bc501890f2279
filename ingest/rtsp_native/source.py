"""``NativeRtspSource``: an ``rtcc.hub.Source`` that pulls one camera on the event loop.

Same contract, frames, failure reasons and backoff as the FFmpeg reader (``ingest.rtsp``): the
first frame after every (re)connect is a keyframe marked ``discontinuity``; a camera that sends
no video RTP for ``stall_timeout`` seconds (keep-alive answers and RTCP do not count) is
reconnected. It connects only to the hop ``ingest.rtsp_guard.first_hop`` gives (the checked,
pinned address); control URLs from the SDP are only names inside that connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Protocol

from ingest.backoff import Backoff
from ingest.mediainfo import H265_WARNING, complete_from_sps, with_b_frames
from ingest.normalizer import Normalizer
from ingest.rtsp_failures import Failure, describe_failure
from ingest.rtsp_guard import EgressRules, first_hop
from ingest.rtsp_messages import Message, transports
from ingest.rtsp_native.auth import Authenticator, challenges
from ingest.rtsp_native.clock import ArrivalClock
from ingest.rtsp_native.connection import RtspConnection
from ingest.rtsp_native.depacketize import Codec, Depacketizer
from ingest.rtsp_native.errors import RtspProtocolError, Unsupported
from ingest.rtsp_native.sdp import SessionDescription, control_url, parameter_sets, parse_sdp
from rtcc import bitstream
from rtcc.camera_url import SafeUrl, parse_rtsp_url, redact_url
from rtcc.config import IngestConfig
from rtcc.hub.source import FrameSink
from rtcc.media import MediaInfo, StreamState


class RtspTarget(Protocol):
    """What is pulled (``ingest.rtsp.RtspTarget``)."""

    @property
    def url(self) -> str: ...

    @property
    def username(self) -> str: ...

    @property
    def password(self) -> str: ...

log = logging.getLogger(__name__)

DEFAULT_SESSION_TIMEOUT = 60.0
B_FRAME_STEPS = 3
"""Timestamps stepping back this often in a session mean B-frames."""
B_SLICE_CHECKS = 30
"""Pictures after a connect whose slice type is read to find B-frames at once."""
TEARDOWN_WAIT = 1.0
"""Seconds ``aclose`` waits for the camera to answer TEARDOWN before closing anyway."""


class _Refused(Exception):
    """The camera answered a request with an error status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"RTSP {status}")
        self.status = status


@dataclasses.dataclass(slots=True)
class _Playing:
    connection: RtspConnection
    url: str
    session: str
    timeout: float
    keepalive: str
    auth: Authenticator


class NativeRtspSource:
    """Pulls one RTSP URL over TCP with interleaved RTP, on the event loop. ``unsupported``
    is called (once, with the reason) when the camera needs the FFmpeg reader; the source
    has then ended."""

    def __init__(
        self,
        name: str,
        target: RtspTarget,
        settings: IngestConfig,
        *,
        egress: EgressRules | None = None,
        checked: SafeUrl | None = None,
        unsupported: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self._address = parse_rtsp_url(target.url)  # raises UnsafeUrl: only rtsp/rtsps
        self._hop = first_hop(target.url, checked)
        self._egress = egress or EgressRules()
        self._target = target
        self._settings = settings
        self._unsupported = unsupported
        self._redacted = redact_url(target.url)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sink: FrameSink | None = None
        self._closing = False
        self._reported: tuple[StreamState, str] | None = None
        self._connection: RtspConnection | None = None
        self._normalizer: Normalizer | None = None
        self._clock = ArrivalClock()
        self._info = MediaInfo()
        self._delivered = False
        self._last_pts: int | None = None
        self._steps_back = 0
        self._slices_checked = 0
        self._state = "idle"
        self._connects = 0
        self._reconnects = 0
        self._frames = 0
        self._keyframes = 0
        self._totals = [0, 0, 0, 0]  # packets, bytes, gaps, dropped units of ended sessions
        self._last_error = ""
        self._refused = ""
        self._keepalives = 0
        self._keepalives_answered = 0
        self._teardown_status = 0

    def __repr__(self) -> str:
        return f"<NativeRtspSource {self.name} {self._redacted}>"

    # -- Source -------------------------------------------------------------------------------

    async def start(self, sink: FrameSink) -> None:
        if self._task is not None or self._closing:
            raise RuntimeError(f"camera {self.name}: an RTSP source can only be started once")
        self._sink = sink
        self._state = "connecting"
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"camera:{self.name}:rtsp")

    async def aclose(self) -> None:
        """End the session (TEARDOWN) and the task. Idempotent, safe for concurrent callers."""
        self._closing = True
        self._stop.set()
        if self._task is not None:
            await asyncio.shield(self._task)
        self._state = "closed"

    def stats(self) -> dict[str, object]:
        connection = self._connection
        depacketizer = connection.depacketizer if connection else None
        packets, nbytes, gaps, dropped = self._totals
        if connection is not None:
            packets += connection.packets
            nbytes += connection.received_bytes
        if depacketizer is not None:
            gaps += depacketizer.gaps
            dropped += depacketizer.dropped_units
        normalizer = self._normalizer
        hop = self._hop
        stats: dict[str, object] = {
            "kind": "rtsp",
            "client": "native",
            "url": self._redacted,
            "transport": "tcp",
            "connected_to": f"{hop.address}:{hop.port}",
            "tls": hop.tls,
            "redirects": 0,
            "state": self._state,
            "connects": self._connects,
            "reconnects": self._reconnects,
            "packets": packets,
            "bytes": nbytes,
            "sequence_gaps": gaps,
            "units_dropped": dropped,
            "frames": self._frames,
            "keyframes": self._keyframes,
            "skipped_before_keyframe": normalizer.skipped_before_keyframe if normalizer else 0,
            "keyframes_joined": 0,
            "parameter_sets_inserted": normalizer.parameter_sets_inserted if normalizer else 0,
            "keepalives": self._keepalives,
            "keepalives_answered": self._keepalives_answered,
            "teardown_status": self._teardown_status,
            "last_error": self._last_error,
            "last_packet_age": (round(time.monotonic() - connection.last_progress, 3)
                                if connection is not None and connection.packets else None),
            "thread_alive": False,
        }
        if self._refused:
            stats["refused"] = self._refused
        return stats

    # -- reporting ----------------------------------------------------------------------------

    def _report(self, state: StreamState, reason: str) -> None:
        if self._reported == (state, reason) or self._closing or self._sink is None:
            return
        self._reported = (state, reason)
        self._sink.set_state(state, reason)

    def _media(self, info: MediaInfo) -> None:
        self._info = info
        if not self._closing and self._sink is not None:
            self._sink.set_media_info(info)

    def _fail(self, failure: Failure, delay: float) -> None:
        if failure.refused:
            self._refused = failure.reason
        changed = failure.reason != self._last_error
        self._last_error = failure.reason
        self._state = "error" if failure.fatal else "retrying"
        log.log(logging.WARNING if changed else logging.DEBUG,
                "camera %s: %s (%s); next attempt in %.1f s",
                self.name, failure.reason, self._redacted, delay)
        self._report(StreamState.ERROR if failure.fatal else StreamState.RECONNECTING,
                     failure.reason)

    # -- the task -----------------------------------------------------------------------------

    async def _run(self) -> None:
        settings = self._settings
        backoff = Backoff(settings.backoff_initial, settings.backoff_max,
                          fatal=settings.fatal_retry)
        try:
            while not self._stop.is_set():
                try:
                    failure = await self._session()
                except Unsupported as exc:
                    self._state = "handed to the FFmpeg reader"
                    if self._unsupported is not None and not self._closing:
                        self._unsupported(str(exc))
                    return
                if failure is None or self._stop.is_set():
                    break
                if self._delivered:
                    backoff.reset()
                delay = backoff.next_delay(fatal=failure.fatal)
                self._fail(failure, delay)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stop.wait()
                if self._stop.is_set():
                    break
                self._reconnects += 1
                self._state = "connecting"
        except Exception as exc:  # a bug here must be visible (the URL holds no credentials)
            log.exception("camera %s: the RTSP task failed", self.name)
            self._report(StreamState.ERROR,
                         f"ingest failed unexpectedly ({type(exc).__name__})")
        finally:
            if self._state != "handed to the FFmpeg reader":
                self._state = "closed" if self._stop.is_set() else "stopped"

    def _retire(self, connection: RtspConnection) -> None:
        """Keep an ended session's counters."""
        if self._connection is connection:
            self._connection = None
        depacketizer = connection.depacketizer
        if depacketizer is not None:
            self._totals[0] += depacketizer.packets
            self._totals[1] += depacketizer.bytes
            self._totals[2] += depacketizer.gaps
            self._totals[3] += depacketizer.dropped_units

    async def _session(self) -> Failure | None:
        """One connection: why it ended (None: asked to stop). Raises Unsupported."""
        self._delivered = False
        settings = self._settings
        hop = self._hop
        loop = asyncio.get_running_loop()
        connection = RtspConnection()
        started = time.monotonic()
        try:
            async with asyncio.timeout(settings.open_timeout):
                await loop.create_connection(lambda: connection, hop.address, hop.port)
                if self._stop.is_set():
                    connection.close()
                    return None
                playing = await self._handshake(connection)
        except TimeoutError:
            connection.abort()
            return Failure(f"camera did not answer within {settings.open_timeout:g} s")
        except RtspProtocolError as exc:
            connection.abort()
            where = hop.endpoint
            return Failure(f"the camera at {where} sent {exc}" if connection.answered
                           else f"not an RTSP server at {where}")
        except _Refused as exc:
            connection.abort()
            return self._refusal(exc.status)
        except _NoVideoError:
            connection.abort()
            return Failure("the camera's stream description (SDP) lists no video track",
                           fatal=True)
        except OSError as exc:
            connection.abort()
            # Classifying may resolve the host name (is it a DNS failure?): not on the loop.
            return await asyncio.to_thread(self._describe, exc, "open",
                                           time.monotonic() - started)
        except BaseException:
            connection.abort()
            raise
        self._connection = connection
        try:
            return await self._stream(playing)
        finally:
            connection.close()
            self._retire(connection)

    def _describe(self, exc: BaseException, phase: str, elapsed: float) -> Failure:
        target = self._target
        return describe_failure(
            exc, "open" if phase == "open" else "read", elapsed, self._address,
            has_credentials=self._hop.credentials and bool(target.username or target.password),
            open_timeout=self._settings.open_timeout,
            stall_timeout=self._settings.stall_timeout,
        )

    def _refusal(self, status: int) -> Failure:
        """The same reasons the FFmpeg reader gives for these statuses."""
        target = self._target
        where = self._hop.endpoint
        if status == 401:
            if target.username or target.password:
                return Failure("wrong user name or password (RTSP 401): check the camera's "
                               "credentials", True)
            return Failure("the camera asks for a user name and password (RTSP 401): add them "
                           "to its profile", True)
        if status == 403:
            return Failure("the camera refused this account (RTSP 403): check its rights", True)
        if status == 404:
            return Failure(f"the camera has no stream at path {self._address.path} (RTSP 404): "
                           "check the URL", True)
        if 400 <= status < 500:
            return Failure("the camera rejected the request (RTSP 4xx): check the URL", True)
        if 500 <= status < 600:
            return Failure(f"the camera at {where} reported an error (RTSP 5xx), it may be "
                           "busy: reconnecting")
        return Failure(f"the camera at {where} answered with status {status}: reconnecting")

    async def _request(self, connection: RtspConnection, auth: Authenticator, method: str,
                       url: str, headers: list[tuple[str, str]] | None = None) -> Message:
        """A request, answered; after a 401 with a challenge we can answer, once more signed.
        Raises _Refused for an error status."""
        extra = list(headers or [])
        for attempt in range(2):
            signed = list(extra)
            header = auth.header(method, url)
            if header is not None:
                signed.append(("Authorization", header))
            reply = await connection.send(method, url, signed)
            status = reply.status
            if status == 401 and attempt == 0 and auth.accept(challenges(reply.headers)):
                continue
            if 300 <= status < 400:
                raise Unsupported("the camera redirected to another URL")
            if status == 461 and method == "SETUP":
                raise Unsupported("the camera does not offer RTP over TCP (RTSP 461)")
            if not 200 <= status < 300:
                raise _Refused(status)
            return reply
        raise _Refused(401)

    async def _handshake(self, connection: RtspConnection) -> _Playing:
        hop = self._hop
        target = self._target
        auth = (Authenticator(target.username, target.password) if hop.credentials
                else Authenticator("", ""))
        url = hop.url
        options = await self._request(connection, auth, "OPTIONS", url)
        public = (options.header("Public") or "").upper()
        describe = await self._request(connection, auth, "DESCRIBE", url,
                                       [("Accept", "application/sdp")])
        base = describe.header("Content-Base") or describe.header("Content-Location") or url
        sdp = parse_sdp(describe.body.decode("utf-8", "replace"))
        video = sdp.video
        if video is None:
            raise _NoVideoError
        codec: Codec
        if video.encoding == "H264":
            codec = "h264"
        elif video.encoding in ("H265", "HEVC"):
            codec = "h265"
        else:
            raise Unsupported(f"the camera sends {video.encoding or 'unnamed'} video")
        if codec == "h265" and "sprop-max-don-diff" in video.fmtp and \
                video.fmtp["sprop-max-don-diff"] not in ("", "0"):
            raise Unsupported("the camera's H.265 packets carry decoding order numbers")
        session_base = base
        if sdp.control and sdp.control != "*":
            session_base = control_url(base, sdp.control)
        setup_url = control_url(session_base, video.control)
        setup = await self._request(connection, auth, "SETUP", setup_url,
                                    [("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")])
        chosen = transports(setup.header("Transport") or "")
        spec = chosen[0] if chosen else None
        if spec is None or spec.lower_transport != "TCP" or not spec.has("interleaved"):
            raise Unsupported("the camera answered SETUP without interleaved TCP")
        channel = _channel(dict(spec.params).get("interleaved"))
        session_header = setup.header("Session") or ""
        session, _, rest = session_header.partition(";")
        timeout = DEFAULT_SESSION_TIMEOUT
        for item in rest.split(";"):
            key, _, value = item.strip().partition("=")
            if key.lower() == "timeout":
                with contextlib.suppress(ValueError):
                    timeout = max(2.0, float(value))
        session = session.strip()
        self._prepare(connection, codec, sdp, channel)
        await self._request(connection, auth, "PLAY", session_base,
                            [("Session", session), ("Range", "npt=0.000-")])
        keepalive = "GET_PARAMETER" if "GET_PARAMETER" in public else "OPTIONS"
        return _Playing(connection, session_base, session, timeout, keepalive, auth)

    def _prepare(self, connection: RtspConnection, codec: Codec, sdp: SessionDescription,
                 channel: int) -> None:
        video = sdp.video
        assert video is not None
        params = parameter_sets(video)
        normalizer = Normalizer(codec, params=params, wrap_bits=32, join_keyframes=False)
        self._normalizer = normalizer
        self._clock = ArrivalClock()
        self._last_pts = None
        self._steps_back = 0
        self._slices_checked = 0
        sps = bitstream.first_sps_info(params) if codec == "h264" else None
        fps = (sps.fps if sps is not None else 0.0) or video.framerate
        profile = sps.profile if sps is not None else ""
        warnings: tuple[str, ...] = (H265_WARNING,) if codec == "h265" else ()
        if codec == "h264" and profile and profile not in ("baseline", "main", "high"):
            warnings = (f"H.264 {profile} profile may not decode in browsers: use baseline, "
                        "main or high",)
        info = MediaInfo(video_codec=codec, width=sps.width if sps else 0,
                         height=sps.height if sps else 0, fps=round(fps, 3), profile=profile,
                         audio_codec=sdp.audio_codec, warnings=warnings)
        if sps is not None and sps.max_num_reorder_frames:
            info = with_b_frames(info)  # the SPS's reorder depth says so before a B picture
        connection.play(channel, Depacketizer(codec, self._unit))
        self._connects += 1
        self._state = "waiting for keyframe"
        self._media(info)
        log.info("camera %s: connected to %s (%s %dx%d %.3g fps%s)", self.name, self._redacted,
                 codec, info.width, info.height, info.fps,
                 f", audio {info.audio_codec}" if info.audio_codec else "")
        if self._reported is not None:  # a failure was shown: say the camera is back
            self._report(StreamState.STARTING, "connected; waiting for a keyframe")

    def _unit(self, data: bytes, timestamp: int, keyframe: bool) -> None:
        """An access unit from the depacketizer (on the event loop, inside a read)."""
        normalizer = self._normalizer
        if normalizer is None or self._closing:
            return
        frames = normalizer.push(data, timestamp, timestamp, keyframe,
                                 self._clock.capture_time(timestamp, time.time()))
        if not frames:
            return
        sink = self._sink
        for frame in frames:
            if self._last_pts is not None and frame.pts < self._last_pts:
                # Presentation order differs from decode order: B-frames, once it repeats (a
                # single step back may be a camera's clock correction).
                self._steps_back += 1
                if self._steps_back == B_FRAME_STEPS and not self._info.has_b_frames:
                    self._media(with_b_frames(self._info))
            elif (self._slices_checked < B_SLICE_CHECKS and not frame.keyframe
                  and frame.codec == "h264" and not self._info.has_b_frames):
                # The first B picture says it at once (its slice type); checked on the first
                # pictures of a session only, so the cost stays off the steady state.
                self._slices_checked += 1
                if bitstream.has_b_slice(bitstream.split_annexb(frame.data)):
                    self._media(with_b_frames(self._info))
            self._last_pts = frame.pts
            if sink is not None:
                sink.push_frame(frame)
            self._frames += 1
            if frame.keyframe:
                self._keyframes += 1
        if not self._delivered:
            self._delivered = True
            self._state = "streaming"
            self._last_error = ""
            if not (self._info.width and self._info.fps):
                self._media(complete_from_sps(self._info, normalizer.parameter_sets))

    async def _stream(self, playing: _Playing) -> Failure | None:
        connection = playing.connection
        stall = self._settings.stall_timeout
        interval = playing.timeout / 2
        tick = min(1.0, stall / 4, interval / 2)
        next_keepalive = time.monotonic() + interval
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            while True:
                await asyncio.wait((connection.closed, stop), timeout=tick,
                                   return_when=asyncio.FIRST_COMPLETED)
                if self._stop.is_set():
                    await self._teardown(playing)
                    return None
                now = time.monotonic()
                if connection.closed.done():
                    return self._ended(connection, now)
                if now - connection.last_progress > stall:
                    return Failure(f"no video for {stall:g} s: reconnecting")
                if now >= next_keepalive:
                    next_keepalive = now + interval
                    self._keepalive(playing)
        finally:
            stop.cancel()

    def _ended(self, connection: RtspConnection, now: float) -> Failure:
        exc = connection.closed.exception()
        where = self._hop.endpoint
        if exc is None:
            return Failure(f"the camera at {where} ended the stream: reconnecting")
        if isinstance(exc, RtspProtocolError):
            return Failure(f"the camera at {where} sent data that could not be read: "
                           "reconnecting")
        return self._describe(exc, "read", now - connection.last_progress)

    def _keepalive(self, playing: _Playing) -> None:
        method = playing.keepalive
        headers = [("Session", playing.session)]
        header = playing.auth.header(method, playing.url)
        if header is not None:
            headers.append(("Authorization", header))
        future = playing.connection.send(method, playing.url, headers)
        future.add_done_callback(self._keepalive_done)
        self._keepalives += 1

    def _keepalive_done(self, future: asyncio.Future[Message]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        if 200 <= future.result().status < 300:
            self._keepalives_answered += 1

    async def _teardown(self, playing: _Playing) -> None:
        headers = [("Session", playing.session)]
        header = playing.auth.header("TEARDOWN", playing.url)
        if header is not None:
            headers.append(("Authorization", header))
        try:
            async with asyncio.timeout(TEARDOWN_WAIT):
                reply = await playing.connection.send("TEARDOWN", playing.url, headers)
            self._teardown_status = reply.status
        except (TimeoutError, OSError, RtspProtocolError):
            pass


class _NoVideoError(Exception):
    """The SDP lists no video."""


def _channel(value: str | None) -> int:
    first = (value or "0").split("-")[0].strip()
    return int(first) if first.isascii() and first.isdigit() and int(first) < 255 else 0
