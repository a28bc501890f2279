"""The security store's statements on both engines (``database_url``): accounts and lockout,
sessions and tokens, incidents, grants and the queries enforcement runs. The HTTP-level tests
cover the same behaviour through the application on SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rtcc.access import Actor, FootageApproval
from rtcc.db import Database
from rtcc.policy import Role
from security import grants as grant_rows
from security.accounts import LOCK_AFTER_FAILURES, LOCK_SECONDS, AccountError
from security.audit import GENESIS, AuditWriter, entry_hash, verify_chain
from security.core import SecurityCore
from security.enforcement import read_state
from security.sessions import digest
from security.store import INTEGRITY_ERRORS, SCHEMA, STORE_FILE, SecurityTables
from tests.fixtures.auth import PASSWORD, FakeClock
from tests.security.engines import engine_settings, open_tables

ADMIN = Actor("test", "admin", "local")


def _insert_user(tables: SecurityTables, username: str) -> None:
    tables.conn.execute("INSERT INTO users (username, role, created) VALUES (?, 'analyst', 0)",
                        (username,))


@pytest.fixture
async def core(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[SecurityCore, FakeClock]]:
    settings = engine_settings(tmp_path / "data", database_url, require_totp=False)
    database = Database.from_settings(settings)
    clock = FakeClock(1_700_000_000.0)
    opened = await SecurityCore.open(settings, clock, database=database)
    try:
        yield opened, clock
    finally:
        await opened.aclose()
        database.close()


async def test_logins_are_case_insensitive_and_unique(
        core: tuple[SecurityCore, FakeClock]) -> None:
    security, _ = core
    user, _ = await security.accounts.create_user(ADMIN, "Dispatch.One", Role.ANALYST,
                                                  password=PASSWORD)
    assert user.id > 0
    found = await security.accounts.by_name("dispatch.one")
    assert found is not None
    assert found.id == user.id
    with pytest.raises(AccountError, match="already exists"):
        await security.accounts.create_user(ADMIN, "DISPATCH.ONE", Role.ANALYST,
                                            password=PASSWORD)
    # The unique index itself refuses a second spelling, not only the check before it.
    with pytest.raises(INTEGRITY_ERRORS):
        await security.store.call(_insert_user, "dispatch.ONE")
    second, _ = await security.accounts.create_user(ADMIN, "dispatch.two", Role.ANALYST,
                                                    password=PASSWORD)
    assert second.id > user.id
    assert [u.username for u in await security.accounts.all_users()] == [
        "Dispatch.One", "dispatch.two"]
    outcome = await security.accounts.login("DISPATCH.one", PASSWORD, "", "192.0.2.1")
    assert outcome.status == 200, outcome.message


async def test_failed_logins_lock_the_account_until_unlocked(
        core: tuple[SecurityCore, FakeClock]) -> None:
    security, clock = core
    user, _ = await security.accounts.create_user(ADMIN, "analyst", Role.ANALYST,
                                                  password=PASSWORD)
    statuses = []
    for _ in range(LOCK_AFTER_FAILURES):
        clock.advance(1)
        statuses.append((await security.accounts.login("analyst", "wrong", "", "x")).status)
    assert statuses == [401] * LOCK_AFTER_FAILURES
    locked = await security.accounts.login("analyst", PASSWORD, "", "x")
    assert locked.status == 423
    after = await security.accounts.get(user.id)
    assert after is not None
    assert after.locked_until == pytest.approx(clock() + LOCK_SECONDS)
    await security.accounts.unlock(ADMIN, user.id)
    assert (await security.accounts.login("analyst", PASSWORD, "", "x")).status == 200
    logged = await security.accounts.get(user.id)
    assert logged is not None
    assert logged.last_login == clock()


async def test_sessions_and_tokens(core: tuple[SecurityCore, FakeClock]) -> None:
    security, clock = core
    user, _ = await security.accounts.create_user(ADMIN, "analyst", Role.ANALYST,
                                                  password=PASSWORD)
    value, csrf = await security.sessions.create(user.id, "192.0.2.1")
    principal = await security.sessions.resolve(value)
    assert principal is not None
    assert principal.user_id == user.id
    first, token = await security.tokens.create(user.id, "one")
    second, _ = await security.tokens.create(user.id, "two", expires=clock() + 60)
    assert second > first > 0
    resolved = await security.tokens.resolve(token)
    assert resolved is not None
    assert resolved.user_id == user.id
    assert [t.id for t in await security.tokens.of_user(user.id)] == [first, second]
    assert await security.tokens.revoke(first, user.id)
    assert not await security.tokens.revoke(first, user.id)
    assert await security.tokens.resolve(token) is None
    await security.accounts.set_disabled(ADMIN, user.id, True)
    assert await security.sessions.resolve(value) is None
    other, _ = await security.accounts.create_user(ADMIN, "other", Role.ANALYST,
                                                   password=PASSWORD)
    await security.sessions.create(other.id, "")
    clock.advance(24 * 3600)
    assert await security.sessions.purge() == 1
    assert csrf


async def test_incidents_link_once_and_close(core: tuple[SecurityCore, FakeClock]) -> None:
    security, clock = core
    incident = await security.incidents.open("sup", incident_id="INC-1", kind="incident",
                                             title="fire", cameras=("cam2", "cam1", "cam1"))
    assert incident.cameras == ("cam1", "cam2")
    with pytest.raises(INTEGRITY_ERRORS):
        await security.incidents.open("sup", incident_id="INC-1", kind="incident", title="",
                                      cameras=())
    clock.advance(1)
    await security.incidents.open("sup", incident_id="INC-2", kind="panic", title="",
                                  cameras=("cam1",))
    await security.incidents.link("INC-1", ("cam1", "cam3"), "sup")
    linked = await security.incidents.get("INC-1")
    assert linked is not None
    assert linked.cameras == ("cam1", "cam2", "cam3")
    assert await security.incidents.active_for_camera("cam1") == ["INC-2", "INC-1"]
    assert await security.incidents.close("INC-2", "sup")
    assert not await security.incidents.close("INC-2", "sup")
    assert await security.incidents.active_for_camera("cam1") == ["INC-1"]
    assert [i.id for i in await security.incidents.recent(active_only=False)] == [
        "INC-2", "INC-1"]


async def test_grants_and_the_enforcement_queries(core: tuple[SecurityCore, FakeClock]) -> None:
    security, clock = core
    now = clock()
    user, _ = await security.accounts.create_user(ADMIN, "analyst", Role.ANALYST,
                                                  password=PASSWORD)
    approval = FootageApproval("req-1", "cam1", user.id, "case 7", "owner", now, now + 600,
                               start=now - 3600, end=now - 1800)
    recorded = await security.grants.record_footage_approval(approval)
    assert recorded is not None
    assert await security.grants.record_footage_approval(approval) is None
    assert await security.grants.recorded_grant_for("cam1", user.id, now - 3000, now - 2000,
                                                    now) == recorded.id
    assert await security.grants.recorded_ranges_for("cam1", user.id, now) == [
        (now - 3600, now - 1800)]
    assert await security.store.approved_request_for("cam1", user.id, now) == "req-1"

    await security.incidents.open("sup", incident_id="INC-1", kind="incident", title="",
                                  cameras=("cam1",))
    made = await security.grants.grant_incident("INC-1", ["cam1"], "sup", "fire", 60.0)
    [(live, change)] = made
    assert change == "create"
    value, _ = await security.sessions.create(user.id, "")
    token_id, _ = await security.tokens.create(user.id, "t")

    state = await security.store.call(read_state, [user.id, 999], [digest(value), "gone"],
                                      [token_id], [live.id, "g-none"], ["cam1", "cam9"], now)
    assert state.disabled == {user.id: False}
    assert state.sessions == frozenset({digest(value)})
    assert state.tokens == {token_id: (None, None)}
    assert set(state.grants) == {live.id}
    assert state.incidents == {"cam1": ["INC-1"], "cam9": []}
    assert state.expired == []

    clock.advance(120)  # the incident grant lapses: reported once, then marked audited
    expired = await security.store.call(grant_rows.take_expired, clock())
    assert [g.id for g in expired] == [live.id]
    assert await security.store.call(grant_rows.take_expired, clock()) == []
    assert await security.grants.incident_grant_for("cam1", "INC-1", now, now + 30) == live.id
    revoked = await security.grants.revoke(recorded.id, "owner", "withdrawn")
    assert revoked is not None
    assert revoked.revoked == clock()
    assert await security.grants.revoke(recorded.id, "owner", "again") is None
    assert await security.grants.recorded_grant_for("cam1", user.id, now - 3000, now - 2000,
                                                    clock()) is None


def test_an_installations_existing_file_opens_unchanged(tmp_path: Path) -> None:
    """A security.sqlite3 made before schema migrations (its tables made at open, PRAGMA
    user_version 1, no audit metadata table yet) keeps its rows and its audit chain; migration
    1 finds its tables there and is only recorded."""
    data = tmp_path / "data"
    data.mkdir()
    legacy = sqlite3.connect(data / STORE_FILE)
    first = SCHEMA.migrations[0].sqlite
    assert isinstance(first, str)
    legacy.executescript(first.split("CREATE TABLE IF NOT EXISTS audit_meta")[0])
    legacy.execute("PRAGMA user_version=1")
    legacy.execute("INSERT INTO users (username, role, created) VALUES ('Old.Admin', 'admin', 1)")
    prev = GENESIS
    for number in (1, 2):
        row = (number, 1_700_000_000_000 + number, "old", "admin", "login", "", "", "", "ok",
               "", "{}", prev)
        prev = entry_hash(*row)
        legacy.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (*row, prev))
    legacy.execute("INSERT INTO audit_head VALUES (1, 2, ?)", (prev,))
    legacy.commit()
    legacy.close()

    with open_tables(engine_settings(data, "")) as tables:
        assert tables.conn.fetchone("SELECT username FROM users WHERE lower(username) = ?",
                                    ("old.admin",))["username"] == "Old.Admin"
        assert tables.conn.scalar("SELECT COUNT(*) FROM schema_migrations") == len(SCHEMA.migrations)
        writer = AuditWriter(tables, FakeClock())
        writer.append(actor="new", role="admin", action="server.start")
        result = verify_chain(tables)
    assert result.ok, result.describe()
    assert (result.entries, result.keyed_from) == (3, 3)
