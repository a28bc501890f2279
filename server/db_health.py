"""Is the database answering? For ``/api/health`` and ``/metrics``.

The check runs off the event loop (``Database.ping`` opens a connection), waits a short time at
most, and its answer is kept for a few seconds: a storm of health polls costs the database one
connection every few seconds, and a database that hangs never holds up a poll for long. While one
ping is still running, the next check waits for it instead of starting another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from rtcc.db import Database, DatabaseUnavailable

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
"""How long one check's answer serves every poll."""
PING_TIMEOUT_SECONDS = 2.0
"""How long a poll waits for the database before reporting it unreachable."""


@dataclass(frozen=True)
class DatabaseHealth:
    engine: str
    reachable: bool
    checked_at: float
    """Monotonic clock reading of the check."""
    pools: dict[str, dict[str, int]] = field(default_factory=dict)
    """PostgreSQL only: each store's pool counters (psycopg_pool ``get_stats()``)."""

    def as_json(self) -> dict[str, object]:
        """What the public health check shows: the pools' counters are for staff (``/metrics``)."""
        return {"engine": self.engine, "reachable": self.reachable}


class DatabaseProbe:
    def __init__(self, database: Database, *, cache_seconds: float = CACHE_SECONDS,
                 timeout: float = PING_TIMEOUT_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._database = database
        self._cache_seconds = cache_seconds
        self._timeout = timeout
        self._clock = clock
        self._last: DatabaseHealth | None = None
        self._lock = asyncio.Lock()
        self._ping: asyncio.Future[None] | None = None

    def _fresh(self) -> DatabaseHealth | None:
        last = self._last
        if last is not None and self._clock() - last.checked_at < self._cache_seconds:
            return last
        return None

    async def check(self) -> DatabaseHealth:
        cached = self._fresh()
        if cached is not None:
            return cached
        async with self._lock:
            cached = self._fresh()  # another poll checked while this one waited
            if cached is not None:
                return cached
            reachable = await self._reachable()
            pools = await asyncio.to_thread(self._database.pool_stats)
            health = DatabaseHealth(self._database.dialect, reachable, self._clock(), pools)
            if self._last is not None and self._last.reachable != reachable:
                if reachable:
                    log.warning("the database answers again: %s", self._database.describe())
                else:
                    log.warning("the database does not answer: %s", self._database.describe())
            self._last = health
            return health

    async def _reachable(self) -> bool:
        if self._ping is None or self._ping.done():
            self._ping = asyncio.ensure_future(asyncio.to_thread(self._database.ping))
            self._ping.add_done_callback(_read_outcome)
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.shield(self._ping)
        except TimeoutError:
            return False
        except DatabaseUnavailable as exc:
            log.debug("database ping: %s", exc)
            return False
        return True


def _read_outcome(ping: asyncio.Future[None]) -> None:
    # A ping that outlived its poll is read here, so its error is not reported as unhandled.
    if not ping.cancelled():
        ping.exception()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_POOL_GAUGES = (
    ("pool_size", "rtcc_database_pool_connections",
     "Connections the store's pool holds open (in use or idle)"),
    ("pool_available", "rtcc_database_pool_idle_connections",
     "Idle connections in the store's pool"),
    ("pool_max", "rtcc_database_pool_max_connections",
     "Connections the store's pool may open at most"),
    ("requests_waiting", "rtcc_database_pool_requests_waiting",
     "Requests waiting for a connection of the store's pool"),
)


def render_metrics(health: DatabaseHealth) -> str:
    """Prometheus text lines for the database's state and its pools."""
    engine = _escape(health.engine)
    out = ["# HELP rtcc_database_up 1 when the database answered its last check",
           "# TYPE rtcc_database_up gauge",
           f'rtcc_database_up{{engine="{engine}"}} {1 if health.reachable else 0}']
    for key, name, help_text in _POOL_GAUGES:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} gauge")
        for store, stats in health.pools.items():
            if key in stats:
                out.append(f'{name}{{store="{_escape(store)}"}} {stats[key]}')
    return "\n".join(out) + "\n"


DATABASE_PROBE = web.AppKey("database_probe", DatabaseProbe)

__all__ = ["DATABASE_PROBE", "DatabaseHealth", "DatabaseProbe", "render_metrics"]
