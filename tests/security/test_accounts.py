"""Accounts: bootstrap, TOTP, lockout, idle sessions, tokens."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rtcc.policy import Role
from security import totp
from security.login_page import safe_next
from tests.fixtures.auth import (
    FakeClock,
    MakeClient,
    bearer,
    create_user,
    login,
    role_headers,
    same_origin,
    security_settings,
)
from tests.security.harness import security_app


async def test_bootstrap_token_is_the_first_admin_until_revoked(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    client = await make_client(security_app(security_settings(tmp_path)))
    admin = bearer(bootstrap_token)
    me = await client.get("/api/me", headers=admin)
    assert me.status == 200
    body = await me.json()
    assert body["role"] == "admin"
    assert body["username"] == "admin"

    # The administrator makes a real token, then revokes the bootstrap one.
    created = await client.post("/api/tokens", json={"name": "ops"}, headers=admin)
    new_token = (await created.json())["token"]
    tokens = await (await client.get("/api/tokens", headers=admin)).json()
    boot = next(t for t in tokens["tokens"] if t["kind"] == "bootstrap")
    assert "token" not in boot
    assert "token_hash" not in boot
    revoked = await client.delete(f"/api/tokens/{boot['id']}", headers=bearer(new_token))
    assert revoked.status == 200
    assert (await client.get("/api/me", headers=admin)).status == 401
    assert (await client.get("/api/me", headers=bearer(new_token))).status == 200


async def test_bootstrap_token_does_nothing_on_a_store_with_accounts(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = security_settings(tmp_path)
    client = await make_client(security_app(settings))
    admin = bearer(bootstrap_token)
    tokens = await (await client.get("/api/tokens", headers=admin)).json()
    await client.delete(f"/api/tokens/{tokens['tokens'][0]['id']}",
                        headers=(await role_headers(client, admin, Role.ADMIN))[1])
    await client.close()
    monkeypatch.setenv("RTCC_BOOTSTRAP_TOKEN", "another-bootstrap-token-123456789")
    again = await make_client(security_app(settings))
    assert (await again.get("/api/me", headers=bearer(bootstrap_token))).status == 401
    assert (await again.get("/api/me", headers=bearer("another-bootstrap-token-123456789"))
            ).status == 401


async def test_login_needs_password_and_totp_and_refuses_a_replayed_code(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    client = await make_client(security_app(security_settings(tmp_path)))
    analyst = await create_user(client, bearer(bootstrap_token), Role.ANALYST)
    assert analyst.totp_secret is not None

    no_code = await client.post("/api/login", json={"username": analyst.username,
                                                    "password": analyst.password})
    assert no_code.status == 401
    code = analyst.next_code()
    ok = await client.post("/api/login", json={"username": analyst.username,
                                               "password": analyst.password, "totp": code})
    assert ok.status == 200
    body = await ok.json()
    assert body["role"] == "analyst"
    assert body["csrf_token"]
    cookie = ok.cookies["rtcc_session"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert not cookie["secure"]  # plain HTTP test server; Secure under TLS
    assert (await client.get("/api/me")).status == 200

    client.session.cookie_jar.clear()
    replay = await client.post("/api/login", json={"username": analyst.username,
                                                   "password": analyst.password, "totp": code})
    assert replay.status == 401
    wrong_pw = await client.post("/api/login", json={"username": analyst.username,
                                                     "password": "wrong password!!",
                                                     "totp": analyst.next_code()})
    assert wrong_pw.status == 401
    assert (await wrong_pw.json())["error"] == (await replay.json())["error"]


async def test_five_failures_in_fifteen_minutes_lock_the_account(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    clock = FakeClock()
    client = await make_client(security_app(security_settings(tmp_path), clock=clock))
    admin = bearer(bootstrap_token)
    analyst = await create_user(client, admin, Role.ANALYST)

    for _ in range(4):
        bad = await client.post("/api/login", json={"username": analyst.username,
                                                    "password": "not the password"})
        assert bad.status == 401
    clock.advance(16 * 60)  # the first four fall out of the window
    for _ in range(4):
        await client.post("/api/login", json={"username": analyst.username,
                                              "password": "not the password"})
    await login(client, analyst, now=clock())  # still open: only 4 failures in 15 minutes
    client.session.cookie_jar.clear()

    for _ in range(5):
        await client.post("/api/login", json={"username": analyst.username,
                                              "password": "not the password"})
    locked = await client.post("/api/login", json={
        "username": analyst.username, "password": analyst.password,
        "totp": analyst.next_code(clock())})
    assert locked.status == 423
    assert "locked" in (await locked.json())["error"]

    users = await (await client.get("/api/users", headers=admin)).json()
    assert next(u for u in users["users"] if u["id"] == analyst.id)["locked"] is True
    unlock = await client.post(f"/api/users/{analyst.id}/unlock", headers=admin)
    assert unlock.status == 200
    clock.advance(30)
    await login(client, analyst, now=clock())

    audit = await (await client.get("/api/audit?action=user.lock", headers=admin)).json()
    assert audit["entries"][0]["details"]["username"] == analyst.username


async def test_lock_expires_after_thirty_minutes(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    clock = FakeClock()
    client = await make_client(security_app(security_settings(tmp_path), clock=clock))
    analyst = await create_user(client, bearer(bootstrap_token), Role.ANALYST)
    for _ in range(5):
        await client.post("/api/login", json={"username": analyst.username, "password": "x" * 12})
    clock.advance(29 * 60)
    await login(client, analyst, now=clock(), expect=423)
    clock.advance(2 * 60)
    await login(client, analyst, now=clock())


async def test_idle_session_expires_and_active_one_does_not(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    clock = FakeClock()
    client = await make_client(security_app(security_settings(tmp_path), clock=clock))
    analyst = await create_user(client, bearer(bootstrap_token), Role.ANALYST)
    await login(client, analyst, now=clock())
    for _ in range(3):  # 87 minutes of activity, never 30 idle
        clock.advance(29 * 60)
        assert (await client.get("/api/me")).status == 200
    clock.advance(30 * 60 + 1)
    expired = await client.get("/api/me")
    assert expired.status == 401
    assert "expired" in (await expired.json())["error"]
    assert expired.cookies["rtcc_session"].value == ""  # the browser is told to drop it


async def test_idle_limit_follows_the_configuration(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    clock = FakeClock()
    settings = security_settings(tmp_path, session_idle_minutes=5)
    client = await make_client(security_app(settings, clock=clock))
    analyst = await create_user(client, bearer(bootstrap_token), Role.ANALYST)
    await login(client, analyst, now=clock())
    clock.advance(5 * 60 + 1)
    assert (await client.get("/api/me")).status == 401


async def test_logout_ends_the_session(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    client = await make_client(security_app(security_settings(tmp_path)))
    analyst = await create_user(client, bearer(bootstrap_token), Role.ANALYST)
    await login(client, analyst)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["rtcc_session"].value
    out = await client.post("/api/logout", headers=same_origin(client))
    assert out.status == 200
    replayed = await client.get("/api/me", cookies={"rtcc_session": cookie})
    assert replayed.status == 401


async def test_form_login_redirects_only_to_local_paths(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    client = await make_client(security_app(security_settings(tmp_path)))
    analyst = await create_user(client, bearer(bootstrap_token), Role.ANALYST)
    for target, expected in (("/wall?x=1", "/wall?x=1"), ("//evil.example/", "/")):
        client.session.cookie_jar.clear()
        response = await client.post(
            "/api/login", allow_redirects=False, headers=same_origin(client),
            data={"username": analyst.username, "password": analyst.password,
                  "totp": analyst.next_code(), "next": target},
        )
        assert response.status == 303
        assert response.headers["Location"] == expected
        assert "rtcc_session" in response.cookies
    for target in ("https://evil.example/", "/\\evil.example", "/ok\r\nSet-Cookie: x=1", ""):
        assert safe_next(target) == "/"


async def test_staff_accounts_must_enroll_totp_unless_turned_off(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await make_client(security_app(security_settings(tmp_path / "a")))
    admin = bearer(bootstrap_token)
    refused = await client.post("/api/users", headers=admin, json={
        "username": "nototp", "role": "analyst", "password": "a long enough password",
        "totp": False})
    assert refused.status == 400
    owner = await create_user(client, admin, Role.OWNER)
    assert owner.totp_secret is None  # owners may add TOTP, staff must
    await login(client, owner)

    caplog.set_level(logging.WARNING)
    demo = await make_client(security_app(security_settings(tmp_path / "b",
                                                            require_totp=False)))
    assert any("require_totp is off" in r.getMessage() for r in caplog.records)
    created = await demo.post("/api/users", headers=admin, json={
        "username": "demo", "role": "analyst", "password": "a long enough password",
        "totp": False})
    assert created.status == 201
    assert "totp_uri" not in await created.json()
    ok = await demo.post("/api/login", json={"username": "demo",
                                             "password": "a long enough password"})
    assert ok.status == 200


async def test_weak_passwords_and_bad_names_are_refused(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    client = await make_client(security_app(security_settings(tmp_path)))
    admin = bearer(bootstrap_token)
    cases = [
        ({"username": "short", "role": "analyst", "password": "short"}, "at least 12"),
        ({"username": "bob<script>", "role": "analyst", "password": "long enough pass"},
         "user name"),
        ({"username": "own", "role": "owner", "password": "long enough pass"}, "owner_id"),
        ({"username": "x", "role": "wizard", "password": "long enough pass"}, "role"),
    ]
    for body, fragment in cases:
        response = await client.post("/api/users", json=body, headers=admin)
        assert response.status == 400, body
        assert fragment in (await response.json())["error"]
    await create_user(client, admin, Role.ANALYST, username="dup")
    again = await client.post("/api/users", headers=admin, json={
        "username": "DUP", "role": "analyst", "password": "long enough pass"})
    assert again.status == 409


async def test_totp_window_accepts_one_step_of_drift_only() -> None:
    secret = totp.new_secret()
    now = 1_700_000_000.0
    assert totp.verify(secret, totp.code_at(secret, now - 30), now, 0) is not None
    assert totp.verify(secret, totp.code_at(secret, now + 30), now, 0) is not None
    assert totp.verify(secret, totp.code_at(secret, now - 90), now, 0) is None
    step = totp.verify(secret, totp.code_at(secret, now), now, 0)
    assert step is not None
    assert totp.verify(secret, totp.code_at(secret, now), now, step) is None


async def test_a_disabled_account_loses_sessions_and_tokens_at_once(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    client = await make_client(security_app(security_settings(tmp_path)))
    admin = bearer(bootstrap_token)
    analyst, headers = await role_headers(client, admin, Role.ANALYST)
    await login(client, analyst)
    assert (await client.get("/api/me")).status == 200
    assert (await client.post(f"/api/users/{analyst.id}/disable", headers=admin)).status == 200
    assert (await client.get("/api/me")).status == 401
    assert (await client.get("/api/me", headers=headers)).status == 401
    await login(client, analyst, expect=401)
    assert (await client.post(f"/api/users/{analyst.id}/enable", headers=admin)).status == 200
    assert (await client.get("/api/me", headers=headers)).status == 200
