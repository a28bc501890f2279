"""The node registry: every node's address and load in one Redis hash, stamped with Redis's clock.

Each node writes its entry every ``HEARTBEAT_S`` seconds; an entry older than ``DEAD_AFTER_S`` is a
dead node (crashed, cut off, or stopped without saying so). Ages are computed with Redis's own
``TIME`` on both sides, so the nodes' clocks never need to agree.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as aioredis

NODES_KEY = "rtcc:cluster:nodes"
SEEN_KEY = "rtcc:cluster:nodes:seen"
HEARTBEAT_S = 2.0
DEAD_AFTER_S = 6.0
FORGET_AFTER_S = 600.0
"""A dead node's entry is removed after this long (it stays listed as dead until then)."""

_ANNOUNCE = """
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ms)
return ms
"""


@dataclass(frozen=True, slots=True)
class NodeLoad:
    cameras: int
    """Cameras this node pulls now, or holds the lease of and is starting."""
    viewers: int
    cpu: float
    """Percent of one core this process used since its previous announcement."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: str
    url: str
    load: NodeLoad
    age_s: float
    """Seconds since the node last announced itself."""

    @property
    def alive(self) -> bool:
        return self.age_s <= DEAD_AFTER_S

    def as_json(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "url": self.url, **asdict(self.load),
                "age_s": round(self.age_s, 3), "alive": self.alive}


async def announce(client: aioredis.Redis, node_id: str, url: str, load: NodeLoad) -> None:
    entry = json.dumps({"url": url, **asdict(load)})
    await client.eval(_ANNOUNCE, 2, NODES_KEY, SEEN_KEY, node_id, entry)


async def forget(client: aioredis.Redis, node_id: str) -> None:
    async with client.pipeline(transaction=True) as pipe:
        pipe.hdel(NODES_KEY, node_id)
        pipe.hdel(SEEN_KEY, node_id)
        await pipe.execute()


async def nodes(client: aioredis.Redis) -> list[NodeInfo]:
    """Every node known, alive or dead, by id; dead entries older than ``FORGET_AFTER_S`` are
    removed."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.hgetall(NODES_KEY)
        pipe.hgetall(SEEN_KEY)
        pipe.time()
        entries, seen, now = await pipe.execute()
    now_ms = int(now[0]) * 1000 + int(now[1]) // 1000
    found: list[NodeInfo] = []
    stale: list[str] = []
    for raw_id, raw_entry in entries.items():
        node_id = _text(raw_id)
        seen_ms = seen.get(raw_id)
        age = (now_ms - int(seen_ms)) / 1000 if seen_ms is not None else FORGET_AFTER_S + 1
        if age > FORGET_AFTER_S:
            stale.append(node_id)
            continue
        try:
            data = json.loads(raw_entry)
            load = NodeLoad(int(data["cameras"]), int(data["viewers"]), float(data["cpu"]))
            found.append(NodeInfo(node_id, str(data["url"]), load, max(0.0, age)))
        except (ValueError, KeyError, TypeError):
            stale.append(node_id)  # written by something else: not a node
    if stale:
        await client.hdel(NODES_KEY, *stale)
        await client.hdel(SEEN_KEY, *stale)
    return sorted(found, key=lambda node: node.node_id)


def least_loaded(candidates: list[NodeInfo], prefer: str,
                 extra: dict[str, int] | None = None) -> NodeInfo | None:
    """The live node with the fewest cameras (plus ``extra``: cameras just placed on it), then
    viewers, then CPU; ``prefer`` (this node) wins a tie, which saves the hop."""
    alive = [node for node in candidates if node.alive]
    if not alive:
        return None
    added = extra or {}
    return min(alive, key=lambda node: (node.load.cameras + added.get(node.node_id, 0),
                                        node.load.viewers,
                                        round(node.load.cpu / 10), node.node_id != prefer,
                                        node.node_id))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
