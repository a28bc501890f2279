"""A store's thread: calls run in order, on the store's own named thread, until it closes."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from rtcc.offload import OffloadedStore, StoreClosed, StoreThread


async def test_calls_run_in_order_on_the_stores_thread() -> None:
    thread = StoreThread("test-store")
    seen: list[tuple[int, str]] = []

    def work(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        return n * 2

    try:
        results = await asyncio.gather(*(thread.run(work, n) for n in range(20)))
    finally:
        await thread.aclose()
    assert results == [n * 2 for n in range(20)]
    assert [n for n, _ in seen] == list(range(20))
    assert {name.split("_")[0] for _, name in seen} == {"test-store"}
    assert threading.main_thread().name not in {name for _, name in seen}


async def test_close_runs_last_once_and_refuses_later_calls(tmp_path: Path) -> None:
    closed: list[str] = []

    class Store(OffloadedStore):
        def __init__(self) -> None:
            super().__init__("sample")
            self.conn = sqlite3.connect(tmp_path / "sample.sqlite3", check_same_thread=False)

        def _release(self) -> None:
            closed.append(threading.current_thread().name)
            self.conn.close()

    store = Store()
    assert await store.run(lambda: store.conn.execute("SELECT 41 + 1").fetchone()[0]) == 42
    await asyncio.gather(store.aclose(), store.aclose())
    await store.aclose()
    assert len(closed) == 1
    assert closed[0].startswith("sample")
    with pytest.raises(StoreClosed, match="the sample store is closed"):
        await store.run(lambda: None)
