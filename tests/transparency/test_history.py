"""The CAD simulator's month of history, read by the server's own EIDO parser, yields the
timestamps the response metrics need."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from cadsim.history import CALLS_PER_DAY, history_eidos
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
