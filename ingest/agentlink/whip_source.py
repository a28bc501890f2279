"""Agent cameras in the hub: ``WhipSource`` asks the agent to publish and is fed by WHIP.

A Stream starts a WhipSource on its first viewer (on demand, as for RTSP). The source's
supervisor asks the camera's agent, over its control connection, to start publishing; the
agent's WHIP POST is matched to the waiting source (``WhipPublishers``) and its frames flow in
through the same normaliser as RTSP (``ingest.normalizer``: SPS/PPS before every keyframe, start
at a keyframe, RTP timestamps unwrapped). When the publish ends (agent restarted, network cut,
server asked to stop) the source reports RECONNECTING and asks again with a capped backoff; while
the agent is offline it reports ERROR so viewers are told at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from ingest.agentlink.registry import AgentCommandError, AgentOffline, AgentRegistry
from ingest.backoff import Backoff
from ingest.mediainfo import complete_from_sps
from ingest.normalizer import Normalizer
from ingest.whip_peer import WhipSession
from rtcc.hub.source import FrameSink
from rtcc.media import MediaInfo, StreamState

log = logging.getLogger(__name__)

OFFLINE_REASON = ("the owner's agent is offline; it reconnects on its own when its network is "
                  "back")


@dataclass(frozen=True, slots=True)
class AgentCameraRef:
    camera_id: str
    profile: str
    agent_id: str
    key: str
    """The camera's key on its agent (how the agent finds it)."""


@dataclass(frozen=True, slots=True)
class WhipTimings:
    command_timeout: float = 15.0
    """Seconds the agent may take to answer ``start_stream`` (RTSP open + WHIP POST)."""
    publish_timeout: float = 15.0
    """Seconds between the command and the agent's WHIP POST."""
    backoff_initial: float = 1.0
    backoff_max: float = 15.0


class WhipPublishers:
    """Sources waiting for a publish, and the WHIP sessions that are open."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, str], WhipSource] = {}
        self._sessions: dict[str, WhipSession] = {}

    def expect(self, source: WhipSource) -> None:
        self._waiting[(source.camera.camera_id, source.camera.profile)] = source

    def withdraw(self, source: WhipSource) -> None:
        key = (source.camera.camera_id, source.camera.profile)
        if self._waiting.get(key) is source:
            del self._waiting[key]

    def waiting(self, camera_id: str, profile: str) -> WhipSource | None:
        return self._waiting.get((camera_id, profile))

    def add(self, session: WhipSession) -> None:
        self._sessions[session.id] = session

    def remove(self, session: WhipSession) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]

    def get(self, session_id: str) -> WhipSession | None:
        return self._sessions.get(session_id)

    def of_agent(self, agent_id: str) -> list[WhipSession]:
        return [s for s in self._sessions.values() if s.agent_id == agent_id]

    async def close_agent(self, agent_id: str, reason: str) -> int:
        sessions = self.of_agent(agent_id)
        for session in sessions:
            self.remove(session)
        await asyncio.gather(*(s.aclose(reason) for s in sessions), return_exceptions=True)
        return len(sessions)

    async def close_all(self, reason: str) -> None:
        sessions = list(self._sessions.values())
        self._sessions.clear()
        await asyncio.gather(*(s.aclose(reason) for s in sessions), return_exceptions=True)

    def stats(self) -> list[dict[str, object]]:
        return [session.stats() for session in self._sessions.values()]


def _for_people(exc: BaseException, agent_id: str) -> str:
    """The reason an analyst reads: the agent as "the owner's agent", never its id (the log
    line that reports the reason names the camera and the agent)."""
    if isinstance(exc, AgentOffline):
        return OFFLINE_REASON
    if isinstance(exc, TimeoutError):
        return "the owner's agent accepted the request but never published"
    text = str(exc)
    prefix = f"agent {agent_id}: "
    if text.startswith(prefix):
        text = "the owner's agent: " + text[len(prefix):]
    return text.replace(f"agent {agent_id}", "the owner's agent")


class WhipSource:
    """An ``rtcc.hub.Source`` for one profile of an agent camera."""

    def __init__(self, camera: AgentCameraRef, registry: AgentRegistry,
                 publishers: WhipPublishers, timings: WhipTimings | None = None) -> None:
        self.camera = camera
        self.name = f"{camera.camera_id}/{camera.profile}"
        self._registry = registry
        self._publishers = publishers
        self._timings = timings or WhipTimings()
        self._sink: FrameSink | None = None
        self._task: asyncio.Task[None] | None = None
        self._session: WhipSession | None = None
        self._offer: asyncio.Future[WhipSession] | None = None
        self._normalizer = Normalizer.for_rtp("h264")
        self._info_sps: tuple[bytes, ...] = ()
        self._reported: tuple[StreamState, str] | None = None
        self._closing = False
        self._close_lock = asyncio.Lock()
        self.requests = 0
        self.sessions = 0
        self.frames = 0
        self.keyframes = 0
        self.skipped_before_keyframe = 0
        self.last_error = ""
        self.state = "idle"

    def __repr__(self) -> str:
        return f"<WhipSource {self.name} agent={self.camera.agent_id}>"

    # -- Source -------------------------------------------------------------------------------

    async def start(self, sink: FrameSink) -> None:
        if self._task is not None or self._closing:
            raise RuntimeError(f"camera {self.name}: a WHIP source can only be started once")
        self._sink = sink
        self.state = "requesting"
        self._task = asyncio.get_running_loop().create_task(
            self._supervise(), name=f"whip:{self.name}:supervise"
        )

    async def aclose(self) -> None:
        """Stop asking, end the publish and tell the agent. Idempotent."""
        async with self._close_lock:
            if self._closing:
                return
            self._closing = True
            self._publishers.withdraw(self)
            task, self._task = self._task, None
            if task is not None:
                task.cancel()
                await asyncio.wait({task})
            session, self._session = self._session, None
            if session is not None:
                self._publishers.remove(session)
                await session.aclose("the server no longer needs this stream")
                await self._registry.notify(
                    self.camera.agent_id, "command", id=0, action="stop_stream",
                    key=self.camera.key, camera_id=self.camera.camera_id,
                    profile=self.camera.profile,
                )
            self.state = "closed"

    def stats(self) -> dict[str, object]:
        session = self._session
        return {
            "kind": "whip", "agent_id": self.camera.agent_id, "state": self.state,
            "requests": self.requests, "sessions": self.sessions, "frames": self.frames,
            "keyframes": self.keyframes, "skipped_before_keyframe": self.skipped_before_keyframe,
            "last_error": self.last_error,
            "session": session.stats() if session is not None else None,
        }

    # -- the WHIP side ------------------------------------------------------------------------

    def attach(self, session: WhipSession) -> bool:
        """Called by the WHIP endpoint for a publish this source asked for."""
        offer = self._offer
        if self._closing or offer is None or offer.done():
            return False
        self._session = session
        # A new publish is a new RTP session: new timestamps, and it starts at a keyframe.
        self._normalizer = Normalizer.for_rtp("h264")
        self.sessions += 1
        session.set_frame_handler(self._frame)
        offer.set_result(session)
        return True

    def _frame(self, data: bytes, timestamp: int) -> None:
        """One frame reassembled from RTP; ``timestamp`` is its raw 32-bit RTP timestamp."""
        sink = self._sink
        if sink is None or self._closing:
            return
        normalizer = self._normalizer
        started = normalizer.frames > 0
        skipped = normalizer.skipped_before_keyframe
        frames = normalizer.push(data, timestamp, None, False, time.time())
        self.skipped_before_keyframe += normalizer.skipped_before_keyframe - skipped
        for frame in frames:
            if not started:
                started = True
                self.state = "streaming"
                self._reported = None
            if frame.keyframe:
                self.keyframes += 1
                params = normalizer.parameter_sets
                if params.sps != self._info_sps:
                    self._info_sps = params.sps
                    sink.set_media_info(complete_from_sps(MediaInfo(video_codec="h264"), params))
            self.frames += 1
            sink.push_frame(frame)

    # -- supervisor ---------------------------------------------------------------------------

    def _report(self, state: StreamState, reason: str) -> None:
        if state is StreamState.ERROR:
            self.last_error = reason
        if self._reported == (state, reason) or self._sink is None or self._closing:
            return
        self._reported = (state, reason)
        log.log(logging.WARNING if state is StreamState.ERROR else logging.INFO,
                "camera %s (agent %s): %s", self.name, self.camera.agent_id, reason)
        self._sink.set_state(state, reason)

    async def _supervise(self) -> None:
        timings = self._timings
        backoff = Backoff(timings.backoff_initial, timings.backoff_max, flat=3)
        camera = self.camera
        while True:
            if self._registry.get(camera.agent_id) is None:
                self.state = "agent offline"
                # Analysts read this reason: the ids are in the log line, not in the text.
                self._report(StreamState.ERROR, OFFLINE_REASON)
                await self._registry.wait_connected(camera.agent_id, backoff.maximum)
                continue
            session = await self._request_publish(backoff)
            if session is None:
                continue
            self._publishers.add(session)
            await session.closed.wait()
            self._publishers.remove(session)
            if session.frames:
                backoff.reset()
            self._session = None
            self.state = "reconnecting"
            self._report(StreamState.RECONNECTING, f"the agent's stream ended ({session.reason})")
            await asyncio.sleep(backoff.next_delay())

    async def _request_publish(self, backoff: Backoff) -> WhipSession | None:
        camera = self.camera
        loop = asyncio.get_running_loop()
        self._offer = loop.create_future()
        self._publishers.expect(self)
        self.requests += 1
        self.state = "requesting"
        try:
            await self._registry.send_command(
                camera.agent_id, "start_stream", within=self._timings.command_timeout,
                key=camera.key, camera_id=camera.camera_id, profile=camera.profile,
                path=f"/whip/{camera.camera_id}?profile={camera.profile}",
            )
            async with asyncio.timeout(self._timings.publish_timeout):
                return await asyncio.shield(self._offer)
        except (AgentOffline, AgentCommandError, TimeoutError) as exc:
            offer = self._offer
            if offer is not None and offer.done() and not offer.cancelled():
                late = offer.result()  # published, but the agent then reported a failure
                self._session = None
                await late.aclose("the agent reported a failure")
            reason = _for_people(exc, camera.agent_id)
            self.state = "error"
            self._report(StreamState.ERROR, reason)
            await asyncio.sleep(backoff.next_delay())
            return None
        finally:
            self._publishers.withdraw(self)
            self._offer = None
