"""``/api/health`` and ``/metrics`` report the database: its engine, whether it answers, its
pools; a stopped PostgreSQL is reported while the server keeps answering."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from rtcc.config import DatabaseConfig, ServerConfig, Settings
from rtcc.db import Database
from server.db_health import DatabaseProbe, render_metrics
from server.runner import serving
from tests.fixtures.auth import bearer
from tests.fixtures.postgres import PostgresServer, start_postgres


async def _health(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(f"{base}/api/health") as response:
        assert response.status == 200
        text = await response.text()
    assert "pg-test-password" not in text
    body: dict[str, Any] = json.loads(text)
    return body


async def _until(http: aiohttp.ClientSession, base: str, reachable: bool) -> dict[str, Any]:
    """Polls health until the database is reported ``reachable`` (answers cached a few
    seconds); every poll on the way must be answered."""
    deadline = time.monotonic() + 60
    while True:
        body = await _health(http, base)
        if body["database"]["reachable"] is reachable:
            return body
        assert time.monotonic() < deadline, f"health never reported reachable={reachable}"
        await asyncio.sleep(0.5)


async def test_health_reports_a_stopped_database_while_the_server_answers(
    tmp_path: Path, bootstrap_token: str,
) -> None:
    server: PostgresServer = await asyncio.to_thread(start_postgres)
    try:
        url = server.url(await asyncio.to_thread(server.new_database))
        settings = Settings(data_dir=tmp_path / "data", server=ServerConfig(port=0),
                            database=DatabaseConfig(url=SecretStr(url), connect_timeout=2,
                                                    migrate_on_start=True))
        async with serving(settings) as base, aiohttp.ClientSession() as http:
            body = await _health(http, base)
            assert body["status"] == "ok"
            assert body["database"]["engine"] == "postgresql"
            assert body["database"]["reachable"] is True
            # A scraper signed in before the outage keeps reading /metrics through it.
            async with http.get(f"{base}/metrics", headers=bearer(bootstrap_token)) as response:
                assert response.status == 200

            await asyncio.to_thread(server.stop)
            body = await _until(http, base, reachable=False)
            assert body["status"] == "degraded"
            # A poll storm while the database is down: every poll answered.
            answers = await asyncio.gather(*(_health(http, base) for _ in range(50)))
            assert [a["database"]["reachable"] for a in answers] == [False] * 50
            async with http.get(f"{base}/metrics", headers=bearer(bootstrap_token)) as response:
                assert response.status == 200
                assert 'rtcc_database_up{engine="postgresql"} 0' in await response.text()
            # A credential never seen before cannot be checked: refused, clearly, not a 500.
            async with http.get(f"{base}/metrics",
                                headers=bearer("never-issued-token-0000")) as response:
                assert response.status == 503
                assert "did not answer" in (await response.json())["error"]

            server = await asyncio.to_thread(server.restart)
            body = await _until(http, base, reachable=True)
            assert body["status"] == "ok"
    finally:
        await asyncio.to_thread(server.remove)


async def test_pool_statistics_and_metrics_per_store(postgres_url: str, tmp_path: Path) -> None:
    database = Database(DatabaseConfig(url=SecretStr(postgres_url), pool_size=3), tmp_path)
    try:
        conn = await asyncio.to_thread(database.connect, "ledger")
        assert await asyncio.to_thread(conn.scalar, "SELECT 1") == 1
        now = [100.0]
        probe = DatabaseProbe(database, clock=lambda: now[0])
        health = await probe.check()
        assert health.reachable
        assert health.pools["ledger"]["pool_max"] == 3
        assert health.pools["ledger"]["pool_size"] >= 1
        # Within the cache window the same answer serves every poll; after it, a new check.
        now[0] += 1
        assert await probe.check() is health
        now[0] += 10
        assert await probe.check() is not health

        text = render_metrics(health)
        assert 'rtcc_database_up{engine="postgresql"} 1' in text
        assert 'rtcc_database_pool_max_connections{store="ledger"} 3' in text
        password = urllib.parse.urlsplit(postgres_url).password
        assert password
        assert password not in text
    finally:
        await asyncio.to_thread(database.close)


async def test_sqlite_reports_its_engine_and_no_pools(tmp_path: Path) -> None:
    health = await DatabaseProbe(Database.embedded(tmp_path)).check()
    assert (health.engine, health.reachable, health.pools) == ("sqlite", True, {})
    assert 'rtcc_database_up{engine="sqlite"} 1' in render_metrics(health)
