"""The viewer sessions of one application, and the per-stream packet counters and live loops they
share."""

from __future__ import annotations

import asyncio
import logging
import secrets
import statistics
from typing import TYPE_CHECKING

from aiohttp import web

from relay.fanout import LiveFanout, LiveTicker
from relay.packets import StreamPackets
from relay.sender import new_scratch_buffer
from relay.settings import RelaySettings
from rtcc.hub import StreamKey
from rtcc.tasks import TaskSupervisor

if TYPE_CHECKING:
    from relay.viewer import ViewerSession

log = logging.getLogger(__name__)


class RelaySessions:
    """Every live viewer of this application, by opaque session id.

    Owned by the application (``app[SESSIONS]``), never a module global; ``shutdown`` (wired to
    ``on_shutdown``) ends every session and closes every peer connection.
    """

    def __init__(self, settings: RelaySettings) -> None:
        self.settings = settings
        self._sessions: dict[str, ViewerSession] = {}
        self._packets: dict[StreamKey, StreamPackets] = {}
        self._fanouts: dict[StreamKey, LiveFanout] = {}
        self._ticker = LiveTicker(settings.live_tick) if settings.live_tick > 0 else None
        self.scratch = new_scratch_buffer()
        """The buffer every viewer's packets are built in just before they are sent."""
        self._closing = TaskSupervisor("relay")
        self._shutting_down = False
        self.opened = 0
        self.ended = 0
        self.never_connected = 0
        """Sessions answered whose viewer never completed ICE and DTLS in time."""
        self.refused_per_user = 0
        self._holders: dict[str, str] = {}
        """User name by session id, from the moment a WHEP POST is accepted for negotiation:
        concurrent POSTs of one user count before any of them is answered."""

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def accepting(self) -> bool:
        return not self._shutting_down and len(self._sessions) < self.settings.max_sessions

    @staticmethod
    def new_session_id() -> str:
        return secrets.token_urlsafe(18)

    def cache_for(self, key: StreamKey) -> StreamPackets:
        """The RTP form of a stream's frames, shared by its viewers."""
        packets = self._packets.get(key)
        if packets is None:
            packets = self._packets[key] = StreamPackets()
        return packets

    def fanout_for(self, key: StreamKey) -> LiveFanout | None:
        """The shared live loop of a stream (None when ``shared_fanout`` is off)."""
        if not self.settings.shared_fanout:
            return None
        fanout = self._fanouts.get(key)
        if fanout is None:
            fanout = self._fanouts[key] = LiveFanout(str(key), self._ticker)
        return fanout

    def user_sessions(self, user: str) -> int:
        return sum(1 for holder in self._holders.values() if holder == user)

    def claim(self, session_id: str, user: str, limit: int) -> int | None:
        """Count a session against ``user``; their current count (and nothing counted) when it
        would exceed ``limit``. Undone by ``release`` or the end of the session."""
        held = self.user_sessions(user)
        if held >= limit:
            self.refused_per_user += 1
            return held
        self._holders[session_id] = user
        return None

    def release(self, session_id: str) -> None:
        self._holders.pop(session_id, None)

    def add(self, session: ViewerSession) -> None:
        self._sessions[session.session_id] = session
        self.opened += 1

    def get(self, session_id: str) -> ViewerSession | None:
        return self._sessions.get(session_id)

    def sessions(self) -> list[ViewerSession]:
        return list(self._sessions.values())

    def session_closed(self, session: ViewerSession) -> None:
        """Called by a session once it has fully ended (registered or not)."""
        if self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]
            self.ended += 1
            if session.connect_timed_out:
                self.never_connected += 1
        self.release(session.session_id)
        self.drop_unused_cache(session.stream.key)

    def drop_unused_cache(self, key: StreamKey) -> None:
        if not any(s.stream.key == key for s in self._sessions.values()):
            self._packets.pop(key, None)
            fanout = self._fanouts.pop(key, None)
            if fanout is not None and not len(fanout) and not self._closing.closed:
                self._closing.spawn(f"relay:{key}:fanout-close", fanout.aclose())

    async def close(self, session_id: str, reason: str) -> bool:
        session = self._sessions.get(session_id)
        if session is None:
            return False
        await session.aclose(reason)
        return True

    async def shutdown(self, app: web.Application | None = None) -> None:  # noqa: ARG002 -- aiohttp on_shutdown signal
        """End every session (application shutdown). Safe to call more than once."""
        self._shutting_down = True
        sessions = list(self._sessions.values())
        if sessions:
            log.info("closing %d viewer sessions", len(sessions))
        await asyncio.gather(
            *(session.aclose("server shutting down") for session in sessions),
            return_exceptions=True,
        )
        fanouts = list(self._fanouts.values())
        self._fanouts.clear()
        await asyncio.gather(*(fanout.aclose() for fanout in fanouts), return_exceptions=True)
        if self._ticker is not None:
            await self._ticker.aclose()
        await self._closing.aclose()

    def stats(self) -> dict[str, object]:
        sessions = [session.stats() for session in self._sessions.values()]
        per_stream: dict[StreamKey, dict[str, object]] = {}
        for session, item in zip(self._sessions.values(), sessions, strict=True):
            key = session.stream.key
            entry = per_stream.setdefault(key, {
                "camera_id": session.camera_id, "profile": session.profile, "viewers": 0,
                "packets": 0, "bytes": 0, "nacks": 0, "retransmitted": 0, "plis": 0,
                "resyncs": 0, "frames_caught_up": 0, "packets_dropped": 0,
                "subscription_drops": 0, "_first_frame": [],
            })
            entry["viewers"] = _int(entry["viewers"]) + 1
            rtp = item["rtp"] if isinstance(item["rtp"], dict) else {}
            for field in ("packets", "bytes", "nacks", "retransmitted", "plis",
                          "packets_dropped"):
                entry[field] = _int(entry[field]) + _int(rtp.get(field, 0))
            for field in ("resyncs", "frames_caught_up"):
                entry[field] = _int(entry[field]) + _int(item[field])
            sub = item["subscription"] if isinstance(item["subscription"], dict) else {}
            entry["subscription_drops"] = _int(entry["subscription_drops"]) + _int(
                sub.get("drops", 0)
            )
            first = item["first_frame_after"]
            if isinstance(first, float):
                firsts = entry["_first_frame"]
                assert isinstance(firsts, list)
                firsts.append(first)
        for key, entry in per_stream.items():
            firsts = entry.pop("_first_frame")
            assert isinstance(firsts, list)
            entry["first_frame_after_median"] = (
                round(statistics.median(firsts), 3) if firsts else None
            )
            packets = self._packets.get(key)
            entry["packetization"] = packets.stats() if packets is not None else {}
            fanout = self._fanouts.get(key)
            entry["shared_loop"] = fanout.stats() if fanout is not None else {}
        return {
            "viewers": len(sessions),
            "opened": self.opened,
            "ended": self.ended,
            "never_connected": self.never_connected,
            "refused_per_user": self.refused_per_user,
            "max_sessions": self.settings.max_sessions,
            "max_sessions_per_user": self.settings.max_sessions_per_user,
            "max_sessions_per_owner": self.settings.max_sessions_per_owner,
            "streams": list(per_stream.values()),
            "sessions": sessions,
        }


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


SESSIONS = web.AppKey("relay_sessions", RelaySessions)
