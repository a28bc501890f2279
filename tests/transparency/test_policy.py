"""The publication policy: never the exact point, never a redacted type, never too early."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from rtcc.config import DatabaseConfig
from rtcc.db import Database
from rtcc.transparency_config import TransparencyConfig
from transparency.policy import SourceIncident, distance_m, hundred_block, publish
from transparency.records import RecordsImportError, parse_records
from transparency.store import RecordsStore

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CODES = ["13A", "11A", "220", "ROBB", "DV", "SUSP", "999", "36B", "23H"]


@st.composite
def incidents(draw: st.DrawFn) -> SourceIncident:
    has_point = draw(st.booleans())
    return SourceIncident(
        source=draw(st.sampled_from(["cad", "records"])),
        incident_id=draw(st.text("abc123", min_size=1, max_size=8)),
        code=draw(st.sampled_from(CODES)),
        occurred_at=NOW - timedelta(minutes=draw(st.integers(0, 60 * 24 * 100))),
        lat=draw(st.floats(-80, 80, allow_nan=False)) if has_point else None,
        lon=draw(st.floats(-179.9, 179.9, allow_nan=False)) if has_point else None,
        address=draw(st.sampled_from([None, "413 S 8th St", "5th St & Main St", "Flat 2"])))


@settings(max_examples=400, deadline=None)
@given(incident=incidents(), grid=st.sampled_from([50.0, 200.0, 1000.0]),
       snap=st.sampled_from(["grid", "block"]))
def test_a_published_incident_never_shows_its_point_or_a_redacted_type(
        incident: SourceIncident, grid: float, snap: str) -> None:
    config = TransparencyConfig.model_validate(
        {"grid_m": grid, "snap": snap, "public_types": {c: c for c in CODES[:-1]}})
    published = publish([incident], config, NOW)
    if not published:
        return
    (shown,) = published
    assert shown.type_code not in set(config.redacted_types)
    assert incident.code in config.public_types
    assert NOW - incident.occurred_at >= timedelta(hours=24)
    if incident.lat is None or incident.lon is None:
        assert shown.lat is None
        assert shown.lon is None
        return
    assert shown.lat is not None
    assert shown.lon is not None
    assert (shown.lat, shown.lon) != (incident.lat, incident.lon)
    assert distance_m(shown.lat, shown.lon, incident.lat, incident.lon) >= grid / 4 * 0.99
    assert distance_m(shown.lat, shown.lon, incident.lat, incident.lon) <= grid * 1.5
    if shown.block is not None:
        assert "413" not in shown.block


def test_redacted_beats_public_and_unlisted_types_stay_out() -> None:
    config = TransparencyConfig.model_validate({"public_types": {"11A": "x", "220": "Burglary"}})
    old = NOW - timedelta(days=2)
    published = publish([SourceIncident("records", "1", "11A", old, 39.8, -89.6),
                         SourceIncident("records", "2", "290", old, 39.8, -89.6),
                         SourceIncident("records", "3", "220", old, 39.8, -89.6),
                         SourceIncident("records", "4", "220", NOW - timedelta(hours=3),
                                        39.8, -89.6)], config, NOW)
    assert [p.type_label for p in published] == ["Burglary"]
    assert published[0].occurred_hour == old.replace(minute=0).isoformat()


def test_hundred_blocks() -> None:
    assert hundred_block("413 S 8th St, Springfield") == "400 block of S 8th St"
    assert hundred_block("7 Main St") == "0 block of Main St"
    assert hundred_block("5th St & Main St") == "5th St & Main St"
    assert hundred_block("Lincoln Home") is None
    assert hundred_block("12 Main St & 5th Ave") == "0 block of Main St & 5th Ave"


CSV = """case_number,nibrs_code,offense,occurred_at,latitude,longitude,address
R-1,220,Burglary,2026-11-03T14:05:00-06:00,39.7973,-89.6448,413 S 8th St
R-2,13a,Aggravated assault,2026-11-04T01:00:00,,,
"""


async def test_records_import_round_trip(tmp_path: Path, database_url: str) -> None:
    crimes = parse_records(CSV)
    assert [c.nibrs_code for c in crimes] == ["220", "13A"]
    assert crimes[1].occurred_at == datetime(2026, 11, 4, 1, tzinfo=UTC)
    database = Database(DatabaseConfig(url=SecretStr(database_url), connect_timeout=3,
                                       migrate_on_start=True), tmp_path)
    store = await RecordsStore.open(database)
    try:
        assert await store.import_crimes(crimes) == 2
        assert await store.import_crimes(crimes[:1]) == 1  # a second import replaces by case
        stored = await store.crimes_since(datetime(2026, 11, 1, tzinfo=UTC))
        assert [(c.case_number, c.lat, c.address) for c in stored] == [
            ("R-1", 39.7973, "413 S 8th St"), ("R-2", None, None)]
    finally:
        await store.aclose()
        database.close()


def test_records_import_lists_every_bad_line() -> None:
    bad = ("case_number,nibrs_code,occurred_at,latitude,longitude\n"
           "R-1,BURG,2026-11-03T14:05:00Z,,\n"
           "R-2,220,yesterday,,\n"
           "R-3,220,2026-11-03T14:05:00Z,95,1\n")
    with pytest.raises(RecordsImportError) as caught:
        parse_records(bad)
    assert [p.split(":")[0] for p in caught.value.problems] == ["line 2", "line 3", "line 4"]
    assert "Nothing was imported" in str(caught.value)
    with pytest.raises(RecordsImportError, match="missing column"):
        parse_records("case,code\n1,2\n")
