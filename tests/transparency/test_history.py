"""The CAD simulator's month of history, read by the server's own EIDO parser, yields the
timestamps the response metrics need."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from cadsim.history import CALLS_PER_DAY, history_eidos
from cadsim.scenario import is_closed
from incidents.eido import parse_eido
from rtcc.public_data import CadRecord
from transparency.metrics import response_metrics

END = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_a_month_of_history_has_every_cad_time() -> None:
    eidos = list(history_eidos(seed=1, days=30, end=END))
    assert CALLS_PER_DAY * 30 * 0.9 < len(eidos) <= CALLS_PER_DAY * 30
    assert eidos == list(history_eidos(seed=1, days=30, end=END))  # deterministic
    updates = [u for e in eidos for u in parse_eido(json.dumps(e))]
    assert len({u.tracking_id for u in updates}) == len(eidos)
    assert all(u.status == "CLSD" for u in updates)
    times = [u.times for u in updates]
    assert all(t.call_received and t.dispatched and t.cleared for t in times)
    assert all(t.call_received >= END - timedelta(days=30) for t in times if t.call_received)
    assert all(t.cleared <= END for t in times if t.cleared)
    cancelled = sum(1 for t in times if t.on_scene is None)
    assert 0 < cancelled < len(times) / 5
    records = [CadRecord(u.tracking_id, u.type_code, u.type_text, u.priority, None, None, None,
                         call_received=u.times.call_received, dispatched=u.times.dispatched,
                         on_scene=u.times.on_scene, cleared=u.times.cleared) for u in updates]
    rows = {(r.measure, r.group): r for r in response_metrics(records, [])
            if r.group_by == "priority"}
    # Priority 1 calls are answered faster than priority 3 ones, as in any real month.
    p1, p3 = rows[("queue", "1")], rows[("queue", "3")]
    assert p1.median_s is not None
    assert p3.median_s is not None
    assert p1.median_s < p3.median_s
    assert rows[("response", "2")].missing > 0


async def test_cadsim_posts_its_history_before_live_calls() -> None:
    """``python -m cadsim --history-days 2`` POSTs two days of closed incidents, then exits
    with ``--once`` and no live rate."""
    received: list[dict[str, Any]] = []

    async def eido(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"results": []})

    app = web.Application()
    app.router.add_post("/api/cad/eido", eido)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cadsim", "--port", "0", "--rate", "0", "--once",
            "--history-days", "2", "--post-to", f"http://127.0.0.1:{port}/api/cad/eido",
            "--log-level", "warning", stdout=asyncio.subprocess.DEVNULL)
        async with asyncio.timeout(60):
            assert await process.wait() == 0
    finally:
        await runner.cleanup()
    assert CALLS_PER_DAY * 2 * 0.8 < len(received) <= CALLS_PER_DAY * 2
    assert all(is_closed(e) for e in received)
