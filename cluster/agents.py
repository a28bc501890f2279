"""Which node each owner's agent is connected to: one Redis key per connected agent, written by
that node every third of a lease and expiring a lease after its last write, so a node that dies
stops claiming its agents by itself. Placement puts an agent's cameras on that node: the agent
publishes its cameras to the node it is connected to."""

from __future__ import annotations

import redis.asyncio as aioredis

AGENT_PREFIX = "rtcc:cluster:agent:"


async def announce(client: aioredis.Redis, node_id: str, agent_ids: list[str],
                   ttl_ms: int) -> None:
    if not agent_ids:
        return
    async with client.pipeline(transaction=False) as pipe:
        for agent_id in agent_ids:
            pipe.set(AGENT_PREFIX + agent_id, node_id, px=ttl_ms)
        await pipe.execute()


async def node_of(client: aioredis.Redis, agent_id: str) -> str | None:
    value = await client.get(AGENT_PREFIX + agent_id)
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
