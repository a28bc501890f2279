"""Background tasks: stopping one without losing the caller's cancellation, and supervising the
long-lived ones so a failure is seen (logged with its traceback, then restarted or fatal).

A component owns a :class:`TaskSupervisor` and starts each long-lived task through it with a
name (``camera:{id}:ingest``) and a factory, so a crashed task can be started again::

    async with TaskSupervisor("catalog") as tasks:
        tasks.start("catalog:live-status", status.run)
        tasks.spawn(f"agent:{agent_id}:footage", order())   # one-shot: logged, not restarted
        ...
    # leaving the block cancels and awaits the tasks, last started first

A task declared ``critical`` is not restarted: its failure is logged as critical, handed to
``on_critical`` (by default a SIGTERM to this process, which the runner turns into an orderly
shutdown) and raised again from ``aclose()``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from rtcc.errors import RtccError

log = logging.getLogger(__name__)

TaskFactory = Callable[[], Coroutine[Any, Any, None]]
CriticalHandler = Callable[[str, BaseException], None]


class CriticalTaskFailed(RtccError):
    """A background task the server cannot run without has failed; the server stops."""


async def cancel_and_wait(task: asyncio.Future[Any] | None) -> None:
    """Cancel ``task`` and wait until it has finished.

    The task's own CancelledError is absorbed and any other exception it ended with is logged;
    if the caller is cancelled while waiting, that cancellation propagates (the task has been
    told to stop and finishes on its own).
    """
    if task is None:
        return
    task.cancel()
    if not task.done():
        try:
            # asyncio.wait neither raises the task's outcome nor hides the caller's cancellation.
            await asyncio.wait((task,))
        except asyncio.CancelledError:
            task.add_done_callback(log_outcome)  # a failure while finishing is still logged
            raise
    log_outcome(task)


def log_outcome(task: asyncio.Future[Any]) -> None:
    """Log a finished task's exception with its traceback (cancellation is not a failure)."""
    if not task.done() or task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
        log.error("task %s failed: %s", name, exc, exc_info=exc)


def stop_process(name: str, exc: BaseException) -> None:  # noqa: ARG001 -- the on_critical callback's signature
    """Default reaction to a critical failure: SIGTERM to this process, which the runner's
    signal handler turns into the same orderly shutdown as Ctrl-C."""
    signal.raise_signal(signal.SIGTERM)


@dataclass(slots=True)
class _Supervised:
    name: str
    factory: TaskFactory
    critical: bool
    task: asyncio.Task[None] | None = None
    starts: int = 0
    failures: int = 0
    last_error: str = ""


class TaskSupervisor:
    """Owns a component's background tasks: names them, reads every exception, restarts a
    crashed long-lived task after a growing pause, and closes them in reverse start order."""

    def __init__(
        self,
        owner: str,
        *,
        first_pause: float = 1.0,
        max_pause: float = 60.0,
        healthy_after: float = 60.0,
        on_critical: CriticalHandler = stop_process,
    ) -> None:
        self.owner = owner
        self._first_pause = first_pause
        self._max_pause = max_pause
        self._healthy_after = healthy_after
        self._on_critical = on_critical
        self._supervised: dict[str, _Supervised] = {}
        self._oneshots: set[asyncio.Task[None]] = set()
        self._failure: tuple[str, BaseException] | None = None
        self._closed = False

    # -- starting -------------------------------------------------------------------------------

    def start(self, name: str, factory: TaskFactory, *, critical: bool = False
              ) -> asyncio.Task[None]:
        """Run ``factory()`` as the long-lived task ``name``, again after each failure."""
        if self._closed:
            raise RuntimeError(f"{self.owner}: cannot start task {name}: already closed")
        current = self._supervised.get(name)
        if current is not None and current.task is not None and not current.task.done():
            raise ValueError(f"{self.owner}: task {name} is already running")
        entry = _Supervised(name, factory, critical)
        self._supervised[name] = entry
        entry.task = asyncio.get_running_loop().create_task(self._run(entry), name=name)
        return entry.task

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a one-shot task: its exception is logged, it is not restarted, and ``aclose()``
        cancels it if still running."""
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self.owner}: cannot start task {name}: already closed")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._oneshots.add(task)
        task.add_done_callback(self._oneshot_done)
        return task

    def _oneshot_done(self, task: asyncio.Task[None]) -> None:
        self._oneshots.discard(task)
        log_outcome(task)

    async def _run(self, entry: _Supervised) -> None:
        loop = asyncio.get_running_loop()
        pause = self._first_pause
        while True:
            entry.starts += 1
            started = loop.time()
            try:
                await entry.factory()
                log.info("task %s finished", entry.name)
                return
            except Exception as exc:  # CancelledError is not an Exception: it propagates
                entry.failures += 1
                entry.last_error = f"{type(exc).__name__}: {exc}"
                if entry.critical:
                    log.critical("task %s failed; the server cannot run without it",
                                 entry.name, exc_info=exc)
                    if self._failure is None:
                        self._failure = (entry.name, exc)
                    self._on_critical(entry.name, exc)
                    return
                if loop.time() - started >= self._healthy_after:
                    pause = self._first_pause
                log.error("task %s failed (failure %d); restarting in %.1f s", entry.name,
                          entry.failures, pause, exc_info=exc)
            await asyncio.sleep(pause)
            pause = min(self._max_pause, pause * 2)

    # -- closing --------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Cancel and await one-shot tasks, then the long-lived ones, last started first.
        Raises CriticalTaskFailed if a critical task failed. Safe to call more than once."""
        self._closed = True
        oneshots = list(self._oneshots)
        for task in oneshots:
            task.cancel()
        if oneshots:
            await asyncio.wait(oneshots)  # their done callback logs a failure
        for entry in reversed(list(self._supervised.values())):
            await cancel_and_wait(entry.task)
        if self._failure is not None:
            name, exc = self._failure
            raise CriticalTaskFailed(f"{self.owner}: task {name} failed: {exc}") from exc

    async def __aenter__(self) -> TaskSupervisor:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    # -- observing ------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def failure(self) -> BaseException | None:
        """The exception of the critical task that failed, if any."""
        return None if self._failure is None else self._failure[1]

    def stats(self) -> list[dict[str, object]]:
        return [
            {"name": entry.name, "critical": entry.critical, "starts": entry.starts,
             "failures": entry.failures, "last_error": entry.last_error,
             "running": entry.task is not None and not entry.task.done()}
            for entry in self._supervised.values()
        ]
