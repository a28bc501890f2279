"""One loop per stream sends each new frame to all of its live viewers.

A viewer that has caught up (its cached GOP sent, its queue empty) stops running its own loop
and becomes a member of the stream's ``LiveFanout``: one task wakes once per frame, not once per
viewer, and drains every member's subscription in turn with synchronous sends. Each member keeps
its own ``Subscription`` (its own bounded queue, drops, close reason), so the hub's rules are
unchanged; only the wake-ups are shared. At 30 frames/s that saves every viewer thirty task
switches a second.

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


class LiveFanout:
    """The live viewers of one stream and the task that feeds them."""

    def __init__(self, name: str) -> None:
        self.name = name
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
        if self._task is None or self._task.done():
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

    async def aclose(self) -> None:
        for member in list(self._members):
            self._release(member, StreamClosed("server shutting down"))
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def stats(self) -> dict[str, object]:
        return {"members": len(self._members), "wakeups": self.wakeups, "frames": self.frames}
