"""Hypothesis profiles of the fuzz tests.

``ci`` (the default) keeps the whole fuzz set to seconds and is derandomized, so a run in CI is
reproducible; ``RTCC_FUZZ_PROFILE=long`` tries many more inputs (``RTCC_FUZZ_EXAMPLES`` per test, 3000
by default), randomly (``benchmarks/
fuzz_long.py`` runs the set that way and prints a summary).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "long", max_examples=int(os.environ.get("RTCC_FUZZ_EXAMPLES", "3000")), deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.load_profile(os.environ.get("RTCC_FUZZ_PROFILE", "ci"))
