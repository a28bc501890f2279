"""Fixtures shared by every test package live in tests/fixtures/ and are registered here."""
