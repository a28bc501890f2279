"""A small, bounded pool of threads for CPU-heavy work (password hashing).

Argon2 releases the GIL, so threads run it in parallel with the event loop; but each hash takes
tens of milliseconds of CPU and 64 MiB, so an unbounded executor lets a flood of logins take
every core from the loop that sends video. The pool has few threads and admits at most one job
per thread: further callers wait on a semaphore (a cheap asyncio waiter, in arrival order)
instead of piling up in the executor's queue.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

T = TypeVar("T")


def default_threads() -> int:
    """Two threads at most, and one core left for the event loop."""
    return max(1, min(2, (os.cpu_count() or 1) - 1))


class WorkerPool:
    def __init__(self, threads: int | None = None, *, name: str = "rtcc-cpu") -> None:
        self.threads = threads or default_threads()
        self._executor = concurrent.futures.ThreadPoolExecutor(self.threads,
                                                               thread_name_prefix=name)
        self._slots = asyncio.Semaphore(self.threads)
        self._closed = False
        self.waiting = 0
        self.running = 0
        self.completed = 0

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """Run ``function(*args)`` on a pool thread once one is free, and return its result.

        If the caller is cancelled, a job not yet started is dropped; one already running
        finishes in its thread and keeps its slot until then.
        """
        if self._closed:
            raise RuntimeError("the worker pool is closed")
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        loop = asyncio.get_running_loop()
        try:
            job = self._executor.submit(function, *args)
        except BaseException:
            self._slots.release()
            raise
        self.running += 1
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._job_done))
        return await asyncio.wrap_future(job, loop=loop)

    def _job_done(self) -> None:
        self.running -= 1
        self.completed += 1
        self._slots.release()

    async def aclose(self) -> None:
        """Refuse new jobs and wait for the running ones. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        await asyncio.sleep(0)  # let the last completion callbacks run

    async def __aenter__(self) -> WorkerPool:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    def stats(self) -> dict[str, object]:
        return {"threads": self.threads, "running": self.running, "waiting": self.waiting,
                "completed": self.completed}
