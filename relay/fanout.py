"""One loop per stream sends each new frame to all of its live viewers.

A viewer that has caught up (its cached GOP sent, its queue empty) stops running its own loop
and becomes a member of the stream's ``LiveFanout``: one task wakes once per frame, not once per
viewer, and drains every member's subscription in turn with synchronous sends. Each member keeps
its own ``Subscription`` (its own bounded queue, drops, close reason), so the hub's rules are
unchanged; only the wake-ups are shared. At 30 frames/s that saves every viewer thirty task
switches a second.

With a ``LiveTicker`` (``RelaySettings.live_tick``), one task serves the live loops of every
stream: every few milliseconds it drains each stream's members in turn. On a video wall of many
cameras with a few viewers each, the frames of several cameras then go out in one burst (the
send code stays warm in the processor's caches) instead of one wake-up per frame and camera;
a frame waits at most one tick.

A member leaves the loop, back to its own, when it must catch up again (a keyframe request or a
queue overflow answered from the GOP cache), when its path needs an awaited send (a TURN relay),
or with the error that ends it (connection lost, stream closed).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from rtcc.errors import StreamClosed
from rtcc.hub import Subscription
from rtcc.media import EncodedFrame
from rtcc.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class LeaveFanout(Exception):
    """Raised by a member's ``send_live`` when it must go back to its own loop."""


class Member(Protocol):
    @property
    def subscription(self) -> Subscription: ...

    def send_queued(self, first: EncodedFrame | None) -> int:
        """Send ``first`` (if any) and every frame queued in the subscription, now; returns how
        many. Raises LeaveFanout, or the error that ends the viewer."""


class LiveTicker:
    """One task that drains the live loops of every stream each ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        if interval <= 0:
            raise ValueError("the live tick interval is a positive number of seconds")
        self.interval = interval
        self._fanouts: dict[LiveFanout, None] = {}
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0

    def add(self, fanout: LiveFanout) -> None:
        """Serve ``fanout`` from the next tick on (until it has no member left)."""
        self._fanouts[fanout] = None
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="relay:live-ticker")

    async def _run(self) -> None:
        fanouts = self._fanouts
        while fanouts:
            await asyncio.sleep(self.interval)
            self.ticks += 1
            for fanout in list(fanouts):
                if not fanout.drain():
                    fanouts.pop(fanout, None)

    async def aclose(self) -> None:
        self._fanouts.clear()
        task, self._task = self._task, None
        await cancel_and_wait(task)


class LiveFanout:
    """The live viewers of one stream and the task that feeds them (or the relay's ticker)."""

    def __init__(self, name: str, ticker: LiveTicker | None = None) -> None:
        self.name = name
        self._ticker = ticker
        self._members: dict[Member, asyncio.Future[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self.wakeups = 0
        self.frames = 0

    def __len__(self) -> int:
        return len(self._members)

    async def serve(self, member: Member) -> None:
        """Feed ``member`` from the shared loop until it must leave it: returns when it should
        run its own loop again, raises the error that ends it."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._members[member] = done
        if self._ticker is not None:
            self._ticker.add(self)
        elif self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name=f"relay:{self.name}:fanout")
        try:
            await done
        finally:
            self._members.pop(member, None)

    def _release(self, member: Member, error: BaseException | None = None) -> None:
        done = self._members.pop(member, None)
        if done is not None and not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

    async def _run(self) -> None:
        members = self._members
        while members:
            anchor = next(iter(members))
            try:
                # Every member's subscription receives every frame at the same moment: waiting
                # on one of them wakes the loop once per frame for all.
                first: EncodedFrame | None = await anchor.subscription.get()
            except StreamClosed as exc:
                self._release(anchor, exc)
                continue
            self.wakeups += 1
            for member in list(members):
                try:
                    self.frames += member.send_queued(first if member is anchor else None)
                except LeaveFanout:
                    self._release(member)
                except Exception as exc:  # noqa: BLE001 -- StreamClosed, ConnectionError...: ends that viewer
                    self._release(member, exc)

    def drain(self) -> bool:
        """Send every member what its subscription holds (a tick of the ``LiveTicker``);
        False once no member is left."""
        members = self._members
        sent = 0
        for member in list(members):
            try:
                sent += member.send_queued(None)
            except LeaveFanout:
                self._release(member)
            except Exception as exc:  # noqa: BLE001 -- StreamClosed, ConnectionError...: ends that viewer
                self._release(member, exc)
        if sent:
            self.wakeups += 1
            self.frames += sent
        return bool(members)

    async def aclose(self) -> None:
        for member in list(self._members):
            self._release(member, StreamClosed("server shutting down"))
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def stats(self) -> dict[str, object]:
        return {"members": len(self._members), "wakeups": self.wakeups, "frames": self.frames}
