"""Messages to every node over Redis pub/sub.

Pub/sub keeps nothing for a subscriber that was away: when the subscription comes back the
handler gets a ``resync`` message, so the node re-reads whatever state it follows (the open views
are checked again) instead of trusting that it heard every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CHANNEL = "rtcc:cluster:events"
RESYNC = "resync"
_PUBLISH_TIMEOUT_S = 2.0
_RETRY_MAX_S = 5.0

Handler = Callable[[dict[str, Any]], None]


async def publish(client: aioredis.Redis, origin: str, kind: str, **data: Any) -> None:
    """Send ``kind`` to every node (this one included); raises RedisError or TimeoutError."""
    payload = json.dumps({"type": kind, "origin": origin, **data})
    async with asyncio.timeout(_PUBLISH_TIMEOUT_S):
        await client.publish(CHANNEL, payload)


async def listen(client: aioredis.Redis, handler: Handler) -> None:
    """Hand every message on the channel to ``handler``, forever; subscribes again after an
    outage and then sends the handler a ``resync``."""
    pause = 0.5
    first = True
    while True:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CHANNEL)
            if not first:
                log.info("cluster events: subscribed again; re-reading state")
                handler({"type": RESYNC, "origin": ""})
            first = False
            pause = 0.5
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is None or message.get("type") != "message":
                    continue
                try:
                    event = json.loads(message["data"])
                except ValueError:
                    log.warning("cluster events: ignored a message that is not JSON")
                    continue
                if isinstance(event, dict):
                    handler(event)
        except (RedisError, OSError) as exc:
            first = False
            log.warning("cluster events: Redis subscription lost (%s); retrying in %.1f s",
                        exc, pause)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        await asyncio.sleep(pause)
        pause = min(_RETRY_MAX_S, pause * 2)
