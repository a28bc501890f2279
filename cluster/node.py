"""This process as a node of the cluster: its entry in the registry, its camera leases, its
subscription to the cluster's events.

The node is told what it pulls (``pulled``: cameras whose source runs here) and its load; it
announces itself every ``HEARTBEAT_S`` seconds and renews the lease of every camera it pulls
every third of ``lease_seconds``. A camera leased but not (yet) pulled keeps its lease for
``start_grace_s`` (the time a source takes to start), then the lease is released. A lease found
lost at renewal (Redis restarted, or the node was cut off so long that another node took the
camera) is taken again when free; when another node holds it, ``on_lost`` stops the camera here,
so a camera is never pulled by two nodes for longer than one renewal period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cluster import agents, events, registry
from cluster.leases import RELEASE_SCRIPT, Leases, all_leases
from cluster.registry import HEARTBEAT_S, NodeInfo, NodeLoad
from rtcc.tasks import TaskSupervisor

log = logging.getLogger(__name__)

REDIS_TIMEOUT_S = 2.0
PLACING_KEY = "rtcc:cluster:placing"
PLACING_TTL_S = 1.0
PLACING_WAIT_S = 0.5
"""How long a placement waits for the cluster's placement lock before it goes ahead without it
(the lease still keeps a camera on one node; only the spread by load may suffer)."""
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError, TimeoutError)
"""What a Redis call may raise when Redis is slow or away."""


@dataclass(frozen=True, slots=True)
class Placement:
    node_id: str
    url: str | None
    """Where the node answers; None when it holds the camera but has stopped announcing."""
    local: bool
    """This node: it holds the camera's lease."""


class CpuMeter:
    """Percent of one core this process used between two readings."""

    def __init__(self) -> None:
        self._last = (time.monotonic(), time.process_time())

    def read(self) -> float:
        now = (time.monotonic(), time.process_time())
        wall, cpu = now[0] - self._last[0], now[1] - self._last[1]
        self._last = now
        return 0.0 if wall <= 0 else round(100.0 * cpu / wall, 1)


class ClusterNode:
    def __init__(self, client: aioredis.Redis, node_id: str, lease_seconds: float, *,
                 pulled: Callable[[], set[str]], viewers: Callable[[], int],
                 on_event: events.Handler, on_lost: Callable[[str, str], None],
                 start_grace_s: float = 15.0) -> None:
        self.client = client
        self.node_id = node_id
        self.url = ""
        self.lease_seconds = lease_seconds
        self.leases = Leases(client, node_id, lease_seconds)
        self._pulled = pulled
        self._viewers = viewers
        self._on_event = on_event
        self._on_lost = on_lost
        self._grace = start_grace_s
        self._held: dict[str, float] = {}
        self._place_lock = asyncio.Lock()
        self._unheld: dict[str, float] = {}
        """Cameras to run with no viewer found without a holder, and since when."""
        """Cameras this node holds the lease of, and when it took each."""
        self._cpu = CpuMeter()
        self._tasks = TaskSupervisor(f"cluster node {node_id}")
        self._closed = False
        self.joined = False
        self.lost_leases = 0
        self.forwarded = 0
        """Viewer requests this node passed on to the node serving their camera."""

    # -- membership -----------------------------------------------------------------------------

    async def join(self, url: str, node_id: str = "") -> None:
        """Announce this node at ``url`` (as ``node_id`` when given) and start its heartbeat,
        lease renewal and event subscription. A Redis that does not answer is retried by the
        heartbeat."""
        self.url = url
        if node_id:
            self.node_id = node_id
            self.leases = Leases(self.client, node_id, self.lease_seconds)
        try:
            await self._announce()
        except REDIS_ERRORS as exc:
            log.error("cluster: cannot reach Redis to join as %s (%s); retrying every %.0f s",
                      self.node_id, exc, HEARTBEAT_S)
        self._tasks.start(f"cluster:{self.node_id}:heartbeat", self._heartbeat)
        self._tasks.start(f"cluster:{self.node_id}:leases", self._keep_leases)
        self._tasks.start(f"cluster:{self.node_id}:events",
                          lambda: events.listen(self.client, self._on_event))
        self.joined = True
        log.info("cluster: node %s joined at %s", self.node_id, url)

    def load(self) -> NodeLoad:
        # Cameras leased and starting count already: placement must see them at once.
        cameras = len(self._pulled() | set(self._held))
        return NodeLoad(cameras, self._viewers(), self._cpu.read())

    async def _announce(self) -> None:
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            await registry.announce(self.client, self.node_id, self.url, self.load())

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self._announce()
            except REDIS_ERRORS as exc:
                log.warning("cluster: announcing node %s failed (%s)", self.node_id, exc)

    async def nodes(self) -> list[NodeInfo]:
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            return await registry.nodes(self.client)

    async def leased(self) -> dict[str, str]:
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            return await all_leases(self.client)

    # -- placement ------------------------------------------------------------------------------

    async def place(self, camera_id: str,
                    prefer: Callable[[], Awaitable[str | None]] | None = None) -> Placement:
        """Where ``camera_id`` is served now: its lease holder; with no holder, the node
        ``prefer`` names when it is alive (the node its owner's agent is connected to), else the
        least loaded live node (this one on a tie), chosen under the cluster's placement lock
        and leased to it at once, so placements made at the same moment see each other (the
        chosen node renews the lease when the viewer's request reaches it). Raises REDIS_ERRORS
        when Redis does not answer."""
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            holder = await self.leases.holder(camera_id)
        preferred = await prefer() if holder is None and prefer is not None else None
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            if holder is None:
                async with self._placing():
                    holder = await self.leases.holder(camera_id)
                    if holder is None:
                        known = await registry.nodes(self.client)
                        choice = next((node for node in known
                                       if node.node_id == preferred and node.alive), None)
                        if choice is None:
                            choice = registry.least_loaded(
                                known, prefer=self.node_id, extra=await self._leased_more(known))
                        if choice is None or choice.node_id == self.node_id:
                            holder = await self.take(camera_id)
                        else:
                            holder = await self.leases.acquire(camera_id, choice.node_id)
            if holder == self.node_id:
                holder = await self.take(camera_id)
            if holder == self.node_id:
                return Placement(self.node_id, self.url, local=True)
            known = await registry.nodes(self.client)
        # A holder that stopped announcing is dead: its lease runs out by itself (url None).
        return Placement(holder, self.url_of(known, holder), local=False)

    @contextlib.asynccontextmanager
    async def _placing(self) -> AsyncIterator[None]:
        """One placement at a time in this process, and (for up to ``PLACING_WAIT_S``) in the
        cluster: a short Redis lock, released by its taker only."""
        async with self._place_lock:
            token = f"{self.node_id}:{time.monotonic_ns()}"
            locked = False
            deadline = time.monotonic() + PLACING_WAIT_S
            while not locked and time.monotonic() < deadline:
                locked = bool(await self.client.set(PLACING_KEY, token, nx=True,
                                                    px=int(PLACING_TTL_S * 1000)))
                if not locked:
                    await asyncio.sleep(0.01)
            try:
                yield
            finally:
                if locked:
                    await self.client.eval(RELEASE_SCRIPT, 1, PLACING_KEY, token)

    async def _leased_more(self, known: list[NodeInfo]) -> dict[str, int]:
        """Per node, the cameras leased to it beyond those it announced (taken or placed on it
        since its last announcement)."""
        held: dict[str, int] = {}
        for holder in (await all_leases(self.client)).values():
            held[holder] = held.get(holder, 0) + 1
        return {node.node_id: max(0, held.get(node.node_id, 0) - node.load.cameras)
                for node in known}

    async def take(self, camera_id: str) -> str:
        """Lease the camera for this node unless another holds it; returns the holder. A new
        camera is announced at once, so the other nodes place the next one knowing it."""
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            holder = await self.leases.acquire(camera_id)
        if holder == self.node_id and camera_id not in self._held:
            self._held[camera_id] = time.monotonic()
            if self.joined:
                try:
                    await self._announce()
                except REDIS_ERRORS as exc:  # the heartbeat announces it a moment later
                    log.debug("cluster: announcing camera %s at once failed (%s)", camera_id,
                              exc)
        return holder

    async def claim(self, camera_ids: frozenset[str]) -> frozenset[str]:
        """Of these cameras, which must run with no viewer (recorded, preloaded), the ones this
        node pulls: those it holds, and unheld ones (their node died or never took them) that
        placement by load gives it; it takes their leases. Every node computes the same
        placement from the same registry; a camera left unheld longer than a lease (the nodes'
        views of the load disagreed) goes to whichever node asks first. When Redis does not
        answer: the ones it held."""
        if not self.joined or not camera_ids:
            return frozenset()
        wanted = sorted(camera_ids)
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                holders = await self.leases.holders(wanted)
                known = await registry.nodes(self.client)
        except REDIS_ERRORS as exc:
            log.warning("cluster: cannot read the leases of cameras without viewers (%s)", exc)
            return frozenset(camera for camera in wanted if camera in self._held)
        now = time.monotonic()
        for camera_id in list(self._unheld):
            if camera_id not in camera_ids:
                del self._unheld[camera_id]
        # Spread the unheld cameras: each one placed adds to its node's count.
        extra = await self._leased_more(known) if None in holders else {}
        mine: set[str] = set()
        for camera_id, holder in zip(wanted, holders, strict=True):
            if holder == self.node_id:
                mine.add(camera_id)
                self._unheld.pop(camera_id, None)
                continue
            if holder is not None:
                self._unheld.pop(camera_id, None)
                continue
            since = self._unheld.setdefault(camera_id, now)
            choice = registry.least_loaded(known, prefer=self.node_id, extra=extra)
            if choice is not None:
                extra[choice.node_id] = extra.get(choice.node_id, 0) + 1
            if (choice is None or choice.node_id == self.node_id
                    or now - since > self.lease_seconds):
                try:
                    taken = await self.take(camera_id)
                except REDIS_ERRORS as exc:
                    log.warning("cluster: cannot take camera %s (%s)", camera_id, exc)
                    continue
                if taken == self.node_id:
                    self._unheld.pop(camera_id, None)
                    mine.add(camera_id)
                    log.info("cluster: node %s took camera %s (no viewer needed)",
                             self.node_id, camera_id)
        return frozenset(mine)

    def url_of(self, nodes: list[NodeInfo], node_id: str) -> str | None:
        for node in nodes:
            if node.node_id == node_id and node.alive:
                return node.url
        return None

    def held(self) -> list[str]:
        return sorted(self._held)

    # -- leases ---------------------------------------------------------------------------------

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.renew_once()
            except REDIS_ERRORS as exc:
                log.warning("cluster: renewing camera leases failed (%s)", exc)

    async def renew_once(self) -> None:
        pulled = self._pulled()
        now = time.monotonic()
        for camera_id in pulled - set(self._held):
            self._held[camera_id] = now  # pulled without asking (a preloaded camera)
        for camera_id, since in list(self._held.items()):
            if camera_id not in pulled and now - since > self._grace:
                self._held.pop(camera_id, None)
                async with asyncio.timeout(REDIS_TIMEOUT_S):
                    await self.leases.release(camera_id)
                continue
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                if await self.leases.renew(camera_id):
                    continue
                holder = await self.leases.acquire(camera_id)
            if holder != self.node_id:
                self.lost_leases += 1
                self._held.pop(camera_id, None)
                log.error("cluster: node %s lost camera %s to node %s; stopping it here",
                          self.node_id, camera_id, holder)
                self._on_lost(camera_id, holder)

    async def release(self, camera_id: str) -> None:
        self._held.pop(camera_id, None)
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            await self.leases.release(camera_id)

    # -- agents ---------------------------------------------------------------------------------

    async def announce_agents(self, agent_ids: list[str]) -> None:
        """The owners' agents connected to this node now (called every third of a lease)."""
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            await agents.announce(self.client, self.node_id, agent_ids,
                                  int(self.lease_seconds * 1000))

    async def agent_node(self, agent_id: str) -> str | None:
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            return await agents.node_of(self.client, agent_id)

    # -- events ---------------------------------------------------------------------------------

    async def publish(self, kind: str, **data: Any) -> None:
        await events.publish(self.client, self.node_id, kind, **data)

    # -- lifecycle ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop the tasks, release every lease and leave the registry (a clean stop hands the
        cameras over at once instead of after the lease runs out)."""
        if self._closed:
            return
        self._closed = True
        await self._tasks.aclose()
        try:
            for camera_id in list(self._held):
                await self.release(camera_id)
            if self.joined:
                async with asyncio.timeout(REDIS_TIMEOUT_S):
                    await registry.forget(self.client, self.node_id)
        except REDIS_ERRORS as exc:
            log.warning("cluster: leaving cleanly failed (%s); the leases run out by themselves",
                        exc)
        finally:
            await self.client.aclose()

    async def __aenter__(self) -> ClusterNode:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


def default_node_id(port: int) -> str:
    return f"{os.uname().nodename}:{port}"
