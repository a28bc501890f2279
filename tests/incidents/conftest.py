"""The CAD simulator as a subprocess (tests/fixtures/cadsim.py)."""

from tests.fixtures.cadsim import cadsim_factory

__all__ = ["cadsim_factory"]
