"""Fixtures shared by every test package live in tests/fixtures/ and are registered here."""

pytest_plugins = [
    "tests.fixtures.canary",  # first: the other fixtures import its canary secrets
    "tests.fixtures.camsim",
    "tests.fixtures.auth",
    "tests.fixtures.redis_server",
    "tests.fixtures.postgres",
    "tests.fixtures.browser",
    "tests.fixtures.coturn",
]
