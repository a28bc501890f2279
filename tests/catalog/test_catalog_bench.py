"""The catalog benchmark runs end to end on a small registry and reports every engine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import catalog_bench


def test_small_run_reports_every_engine(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    out = tmp_path / "catalog_bench.json"
    catalog_bench.main(["--cameras", "3000", "--queries", "30", "--clients", "3", "--rate", "50",
                        "--out", str(out)])
    report = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == report
    assert len(report["load_average"]) == 3
    assert report["cameras"] == 3000
    engines = ["sqlite", "redis"]
    if "skipped" in report["postgis"]:  # only for want of Debian's packages
        assert "is not installed" in report["postgis"]["skipped"]
    else:
        engines.append("postgis")
    for engine in engines:
        figures = report[engine]
        assert figures["bulk_load"]["cameras"] == 3000
        assert figures["nearest_20"]["mean_results"] == 20.0
        assert figures["nearest_20"]["queries"] == 30
        assert figures["radius_500m"]["p99_ms"] >= figures["radius_500m"]["p50_ms"] > 0
        assert figures["can_see"]["cameras"] == 3000
        for run in ("under_load", "saturated"):
            for query in ("nearest_20", "radius_500m"):
                loaded = figures[run][query]
                assert loaded["queries"] == 30
                assert loaded["clients"] == 3
                assert loaded["failed"] == 0
                assert loaded["p99_ms"] >= loaded["p95_ms"] >= loaded["p50_ms"] > 0
        assert figures["under_load"]["nearest_20"]["offered_per_s"] == 150
