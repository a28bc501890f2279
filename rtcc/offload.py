"""Blocking store work (SQLite, files) off the event loop that sends video.

A store owns a ``StoreThread``: one dedicated thread, named after the store, that runs its
calls one after another (``await thread.run(fn, *args)``). A SQLite connection is opened, used
and closed on that thread only, so a lock held by another process (``rtcc export``, ``rtcc
user``, a backup) makes that store's callers wait while every viewer keeps its frames.
``OffloadedStore`` is the base of a store with one such thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, TypeVarTuple

from rtcc.errors import RtccError

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class StoreClosed(RtccError):
    def __init__(self, name: str) -> None:
        super().__init__(f"the {name} store is closed; the server is stopping or the store was "
                         "not opened")
        self.name = name


class StoreThread:
    """One thread that runs a store's blocking calls in the order they were made."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._closing: asyncio.Future[None] | None = None

    @property
    def closed(self) -> bool:
        return self._closing is not None

    async def run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        """``fn(*args)`` on the store's thread, after every call made before it."""
        if self._closing is not None:
            raise StoreClosed(self.name)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def aclose(self, last: Callable[[], object] | None = None) -> None:
        """Let queued calls finish, run ``last`` (close the connection) on the thread, and end
        it. Idempotent; concurrent callers all wait for the same close."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        loop = asyncio.get_running_loop()
        self._closing = loop.create_future()
        try:
            await asyncio.shield(loop.run_in_executor(self._executor, last or _nothing))
        except BaseException:
            # Cancelled while ``last`` runs: the thread ends after it; do not block the loop.
            self._executor.shutdown(wait=False)
            raise
        else:
            # One thread, first in first out: ``last`` ran after every queued call, so this
            # joins an idle thread.
            self._executor.shutdown(wait=True)
        finally:
            self._closing.set_result(None)


def _nothing() -> None:
    return None


class OffloadedStore:
    """Base of a store whose blocking work runs on its own ``StoreThread``.

    Subclasses do their SQLite and file work in plain functions passed to ``run``, and release
    their files in ``_release``, which runs on the thread as the store closes."""

    def __init__(self, name: str) -> None:
        self._thread = StoreThread(name)

    async def run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        return await self._thread.run(fn, *args)

    def _release(self) -> None:
        """Close connections and files; runs on the store's thread, last."""

    async def aclose(self) -> None:
        await self._thread.aclose(self._release)
