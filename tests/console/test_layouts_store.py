"""The saved walls store on both engines: personal walls stay with their author, shared ones are
listed to everyone, a name is replaced in place, and each analyst keeps a bounded number."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from console_web.layouts import MAX_WALLS_PER_USER, LayoutStore
from rtcc.config import DatabaseConfig
from rtcc.db import Database


@pytest.fixture
async def store(database_url: str, tmp_path: Path) -> AsyncIterator[LayoutStore]:
    database = Database(DatabaseConfig(url=SecretStr(database_url), connect_timeout=3,
                                       migrate_on_start=True), tmp_path)
    opened = await LayoutStore.open(database)
    yield opened
    await opened.aclose()
    await asyncio.to_thread(database.close)


async def test_walls_per_analyst_and_shared(store: LayoutStore) -> None:
    await store.save("ann", "Downtown", shared=False, layout=4, cameras=["a", None, "b"])
    await store.save("ann", "Downtown", shared=True, layout=1, cameras=["c"])
    await store.save("bob", "Park", shared=False, layout=9, cameras=[])
    # The same name again replaces the wall.
    await store.save("ann", "Downtown", shared=False, layout=16, cameras=["d"])
    ann = [(w.name, w.shared, w.layout, w.cameras) for w in await store.walls_for("ann")]
    assert ann == [("Downtown", False, 16, ("d",)), ("Downtown", True, 1, ("c",))]
    bob = [(w.name, w.shared, w.author) for w in await store.walls_for("bob")]
    assert bob == [("Park", False, "bob"), ("Downtown", True, "ann")]
    assert await store.author_of("Downtown", shared=True, username="bob") == "ann"
    assert await store.author_of("Downtown", shared=False, username="bob") is None
    assert await store.delete("Downtown", shared=False, username="ann")
    assert not await store.delete("Downtown", shared=False, username="ann")
    assert [w.shared for w in await store.walls_for("ann")] == [True]


async def test_an_analyst_keeps_a_bounded_number_of_walls(store: LayoutStore) -> None:
    for n in range(MAX_WALLS_PER_USER):
        assert await store.save("ann", f"wall {n}", shared=False, layout=1, cameras=[])
    assert await store.save("ann", "one more", shared=False, layout=1, cameras=[]) is None
    # Replacing one of them is still allowed.
    assert await store.save("ann", "wall 0", shared=False, layout=4, cameras=["a"])
