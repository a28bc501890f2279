"""Background task hygiene: stopping a task keeps the caller's own cancellation, a crashed task is
logged and restarted, a critical one stops the server, and closing follows the start order."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from rtcc.tasks import CriticalTaskFailed, TaskFactory, TaskSupervisor, cancel_and_wait


async def _slow_to_stop(stopped: asyncio.Event, cleanup: float) -> None:
    try:
        await asyncio.sleep(3600)
    finally:
        await asyncio.sleep(cleanup)  # cleanup that takes a while, as closing a socket does
        stopped.set()


async def test_a_cancelled_caller_stays_cancelled_while_waiting_for_a_task() -> None:
    stopped = asyncio.Event()
    worker = asyncio.create_task(_slow_to_stop(stopped, 0.3), name="test:worker")
    await asyncio.sleep(0)
    caller_finished = asyncio.Event()

    async def caller() -> None:
        await cancel_and_wait(worker)
        caller_finished.set()

    calling = asyncio.create_task(caller(), name="test:caller")
    await asyncio.sleep(0.05)
    calling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await calling
    assert calling.cancelled()
    assert not caller_finished.is_set()
    await asyncio.wait_for(stopped.wait(), 2)  # the worker still finished its cleanup
    assert worker.cancelled()


async def test_the_awaited_tasks_cancellation_is_absorbed() -> None:
    stopped = asyncio.Event()
    worker = asyncio.create_task(_slow_to_stop(stopped, 0.01), name="test:worker")
    await asyncio.sleep(0)
    await cancel_and_wait(worker)  # returns normally
    assert stopped.is_set()
    assert worker.cancelled()
    await cancel_and_wait(worker)  # already finished: nothing to do
    await cancel_and_wait(None)


async def test_a_tasks_own_failure_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails_on_stop() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            raise OSError("socket already gone")

    worker = asyncio.create_task(fails_on_stop(), name="camera:cam7:ingest")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="rtcc.tasks"):
        await cancel_and_wait(worker)
    (record,) = [r for r in caplog.records if r.name == "rtcc.tasks"]
    assert "camera:cam7:ingest" in record.getMessage()
    assert "socket already gone" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], OSError)


async def test_a_crashing_task_is_logged_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    runs = 0
    healthy = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise ConnectionError(f"store unreachable (run {runs})")
        healthy.set()
        await asyncio.sleep(3600)

    with caplog.at_level(logging.ERROR, logger="rtcc.tasks"):
        async with TaskSupervisor("test", first_pause=0.01, on_critical=_never) as tasks:
            tasks.start("catalog:follow", flaky)
            await asyncio.wait_for(healthy.wait(), 5)
            (stats,) = tasks.stats()
            assert stats["starts"] == 3
            assert stats["failures"] == 2
            assert stats["running"] is True
            assert "run 2" in str(stats["last_error"])
    failures = [r for r in caplog.records if r.name == "rtcc.tasks"]
    assert len(failures) == 2
    assert all("catalog:follow" in r.getMessage() and "restarting" in r.getMessage()
               for r in failures)
    assert all(r.exc_info is not None and isinstance(r.exc_info[1], ConnectionError)
               for r in failures)


async def test_the_pause_between_restarts_grows() -> None:
    started: list[float] = []
    loop = asyncio.get_running_loop()

    async def always_fails() -> None:
        started.append(loop.time())
        raise ValueError("bad record")

    async with TaskSupervisor("test", first_pause=0.02, max_pause=1.0,
                              on_critical=_never) as tasks:
        tasks.start("evidence:recordings", always_fails)
        async with asyncio.timeout(5):
            while len(started) < 4:
                await asyncio.sleep(0.01)
    gaps = [b - a for a, b in itertools.pairwise(started)]
    assert gaps[2] > gaps[0]


async def test_a_critical_task_failure_surfaces(caplog: pytest.LogCaptureFixture) -> None:
    reported: list[tuple[str, BaseException]] = []
    tasks = TaskSupervisor("server", first_pause=0.01,
                           on_critical=lambda name, exc: reported.append((name, exc)))
    runs = 0

    async def essential() -> None:
        nonlocal runs
        runs += 1
        raise RuntimeError("lease lost")

    with caplog.at_level(logging.CRITICAL, logger="rtcc.tasks"):
        tasks.start("cluster:lease", essential, critical=True)
        async with asyncio.timeout(5):
            while not reported:
                await asyncio.sleep(0.01)
        with pytest.raises(CriticalTaskFailed) as raised:
            await tasks.aclose()
    assert reported[0][0] == "cluster:lease"
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert "cluster:lease" in str(raised.value)
    assert runs == 1  # not restarted
    assert tasks.failure is reported[0][1]
    assert any(r.levelno == logging.CRITICAL and r.exc_info for r in caplog.records)


async def test_closing_stops_tasks_last_started_first_and_one_shots_before_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    order: list[str] = []

    def recorder(name: str) -> TaskFactory:
        async def run() -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                order.append(name)
        return run

    async def one_shot_fails() -> None:
        raise LookupError("agent has no such camera")

    with caplog.at_level(logging.ERROR, logger="rtcc.tasks"):
        tasks = TaskSupervisor("test", on_critical=_never)
        tasks.start("first", recorder("first"))
        tasks.start("second", recorder("second"))
        tasks.spawn("agent:a1:footage:r1", one_shot_fails())
        tasks.spawn("oneshot", recorder("oneshot")())
        await asyncio.sleep(0.02)
        await tasks.aclose()
        await tasks.aclose()  # idempotent
    assert order == ["oneshot", "second", "first"]
    assert any("agent:a1:footage:r1" in r.getMessage() and r.exc_info for r in caplog.records)
    with pytest.raises(RuntimeError):
        tasks.start("late", recorder("late"))


def _never(name: str, exc: BaseException) -> None:
    raise AssertionError(f"no task here is critical, yet {name} was reported: {exc}")
