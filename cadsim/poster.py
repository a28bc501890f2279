"""POSTing EIDOs to a server (``/api/cad/eido``), in order, retrying with backoff.

A failed delivery (connection refused, timeout, 5xx, 408, 429) is retried with a growing, jittered
pause until it succeeds, so the server sees every update in the CAD's order. Any other 4xx means
the server refused the document itself: retrying would not help, so it is logged with the
server's answer and skipped.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import aiohttp

from cadsim.scenario import tracking_id

log = logging.getLogger(__name__)

RETRYABLE = frozenset({408, 429})


class Poster:
    def __init__(self, session: aiohttp.ClientSession, url: str, token: str | None, *,
                 queue_size: int = 1000, initial_delay: float = 0.5, max_delay: float = 30.0,
                 timeout: float = 10.0) -> None:
        self._session = session
        self._url = url
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(queue_size)
        self._initial = initial_delay
        self._max = max_delay
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.delivered = 0
        self.refused = 0

    def submit(self, eido: dict[str, Any]) -> None:
        if self._queue.full():
            dropped = self._queue.get_nowait()
            self._queue.task_done()
            log.warning("POST queue to %s is full; dropped the oldest EIDO (%s)", self._url,
                        tracking_id(dropped))
        self._queue.put_nowait(eido)

    async def put(self, eido: dict[str, Any]) -> None:
        """Queue ``eido``, waiting for room rather than dropping an older one (history)."""
        await self._queue.put(eido)

    async def drain(self) -> None:
        """Wait until every submitted EIDO was delivered or refused."""
        await self._queue.join()

    async def run(self) -> None:
        while True:
            eido = await self._queue.get()
            try:
                await self._deliver(eido)
            finally:
                self._queue.task_done()

    async def _deliver(self, eido: dict[str, Any]) -> None:
        attempt = 0
        while True:
            problem: str
            try:
                async with self._session.post(self._url, json=eido, headers=self._headers,
                                              timeout=self._timeout) as response:
                    if response.status < 300:
                        self.delivered += 1
                        return
                    text = (await response.text())[:300]
                    if 400 <= response.status < 500 and response.status not in RETRYABLE:
                        self.refused += 1
                        log.error("%s refused EIDO %s with %d: %s", self._url,
                                  tracking_id(eido), response.status, text)
                        return
                    problem = f"HTTP {response.status}: {text}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            delay = min(self._max, self._initial * 2 ** attempt) * random.uniform(0.5, 1.0)
            attempt += 1
            log.warning("POST of EIDO %s to %s failed (%s); retrying in %.1f s",
                        tracking_id(eido), self._url, problem, delay)
            await asyncio.sleep(delay)
