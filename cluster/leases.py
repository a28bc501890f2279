"""Camera ownership: one Redis key per pulled camera, held by one node under a lease.

``acquire`` sets the key only when nobody holds it (or extends it when this node does); renewing
and releasing compare the holder first (in Lua, atomically), so a node whose lease expired and was
taken by another never extends or deletes the new holder's lease.
"""

from __future__ import annotations

import redis.asyncio as aioredis

LEASE_PREFIX = "rtcc:cluster:camera:"

_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return holder
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def lease_key(camera_id: str) -> str:
    return LEASE_PREFIX + camera_id


class Leases:
    def __init__(self, client: aioredis.Redis, node_id: str, lease_seconds: float) -> None:
        self._client = client
        self.node_id = node_id
        self._ttl_ms = str(int(lease_seconds * 1000))

    async def acquire(self, camera_id: str, for_node: str = "") -> str:
        """Take the camera for this node (or ``for_node``, which placement chose) unless
        another node holds it; returns the holder (the taker's id when it got or already had
        the lease)."""
        holder = await self._client.eval(
            _ACQUIRE, 1, lease_key(camera_id), for_node or self.node_id, self._ttl_ms)
        return _text(holder)

    async def renew(self, camera_id: str) -> bool:
        """Extend this node's lease; False when it has lost it."""
        renewed = await self._client.eval(
            _RENEW, 1, lease_key(camera_id), self.node_id, self._ttl_ms)
        return bool(renewed)

    async def release(self, camera_id: str) -> bool:
        released = await self._client.eval(
            RELEASE_SCRIPT, 1, lease_key(camera_id), self.node_id)
        return bool(released)

    async def holder(self, camera_id: str) -> str | None:
        value = await self._client.get(lease_key(camera_id))
        return None if value is None else _text(value)

    async def holders(self, camera_ids: list[str]) -> list[str | None]:
        """The holder of each camera, in order."""
        if not camera_ids:
            return []
        values = await self._client.mget([lease_key(camera_id) for camera_id in camera_ids])
        return [None if value is None else _text(value) for value in values]


async def all_leases(client: aioredis.Redis, limit: int = 100_000) -> dict[str, str]:
    """Every leased camera and its holder (a SCAN: for status pages, not the media path)."""
    keys: list[bytes | str] = []
    async for key in client.scan_iter(match=LEASE_PREFIX + "*", count=1000):
        keys.append(key)
        if len(keys) >= limit:
            break
    if not keys:
        return {}
    values = await client.mget(keys)
    return {_text(key)[len(LEASE_PREFIX):]: _text(value)
            for key, value in zip(keys, values, strict=True) if value is not None}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
