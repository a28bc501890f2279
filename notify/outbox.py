"""The outbox worker: claims due deliveries, sends them, records each outcome.

A claim marks a delivery ``sending`` with a lease (``notify.send_timeout`` plus a margin) in the
same transaction that selects it, so two workers (or two server nodes on PostgreSQL) never send
the same delivery at once. A process killed mid-send leaves its claims ``sending``; once their
lease passes they are due again and sent with the same idempotency key. A failed attempt waits
``retry_seconds`` doubled per attempt (up to ``retry_max_seconds``); after ``max_attempts`` the
delivery is ``failed`` with the last reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from notify.channels import Outgoing, SendFailed, send
from notify.store import Delivery, NotifyStore
from rtcc.config import NotifyConfig

log = logging.getLogger(__name__)

LEASE_MARGIN = 5.0
IDLE_WAIT = 30.0
XML_CACHE = 256
"""CAP documents kept in memory for the deliveries of recent alerts."""

Sender = Callable[[Outgoing], Awaitable[str]]
Listener = Callable[[Delivery, str, str], Awaitable[None]]
"""Told of every outcome: (delivery, state, error)."""


def backoff(config: NotifyConfig, attempts: int) -> float:
    return float(min(config.retry_max_seconds, config.retry_seconds * 2 ** max(0, attempts - 1)))


class Outbox:
    def __init__(self, store: NotifyStore, config: NotifyConfig, *,
                 allow_networks: tuple[str, ...] = (), sender: Sender | None = None) -> None:
        self.store = store
        self.config = config
        self._allow_networks = allow_networks
        self._sender = sender
        self._wake = asyncio.Event()
        self.listeners: list[Listener] = []
        self._xml: dict[int, str] = {}

    def wake(self) -> None:
        self._wake.set()

    async def _send(self, item: Outgoing) -> str:
        if self._sender is not None:
            return await self._sender(item)
        return await send(item, self.config, self._allow_networks)

    async def _cap_xml(self, alert_id: int | None) -> str:
        if alert_id is None:
            return ""
        if alert_id not in self._xml:
            if len(self._xml) >= XML_CACHE:
                self._xml.clear()
            alert = await self.store.alert(alert_id)
            self._xml[alert_id] = "" if alert is None else alert.xml
        return self._xml[alert_id]

    async def _one(self, delivery: Delivery) -> None:
        item = Outgoing(delivery.key, delivery.channel, delivery.address, delivery.subject,
                        delivery.body, await self._cap_xml(delivery.alert_id))
        error = ""
        try:
            async with asyncio.timeout(self.config.send_timeout):
                state = await self._send(item)
        except SendFailed as exc:
            error, permanent = str(exc), exc.permanent
        except TimeoutError:
            error, permanent = f"no answer within {self.config.send_timeout:g} s", False
        if not error:
            await self.store.finish(delivery.id, state)
        elif permanent or delivery.attempts >= self.config.max_attempts:
            state = "failed"
            await self.store.finish(delivery.id, "failed", error)
        else:
            state = "queued"
            await self.store.finish(delivery.id, "queued", error,
                                    self.store.clock() + backoff(self.config, delivery.attempts))
        if error:
            log.warning("notification %s to %s (%s), attempt %d: %s", delivery.key,
                        delivery.address, delivery.channel, delivery.attempts, error)
        for listener in self.listeners:
            await listener(delivery, state, error)

    async def run_once(self) -> int:
        """Sends what is due now; returns how many deliveries were attempted."""
        claimed = await self.store.claim(self.config.concurrency,
                                         self.config.send_timeout + LEASE_MARGIN)
        if claimed:
            async with asyncio.TaskGroup() as group:
                for delivery in claimed:
                    group.create_task(self._one(delivery), name=f"notify:send:{delivery.id}")
        return len(claimed)

    async def run(self) -> None:
        """The worker loop, until cancelled."""
        while True:
            self._wake.clear()
            if await self.run_once():
                continue
            due = await self.store.next_due()
            wait = IDLE_WAIT if due is None else max(0.05, min(IDLE_WAIT,
                                                               due - self.store.clock()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    def stats(self) -> dict[str, Any]:
        return {"cached_alerts": len(self._xml)}
