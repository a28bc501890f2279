"""Web hardening: cross-origin requests, proxy headers, output encoding, headers, policies."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web

from rtcc.appkeys import SETTINGS
from rtcc.policy import Role, public
from security import add_routes, security_context, security_middleware
from security.login_page import render_login
from server.security_headers import security_headers_on_prepare
from tests.fixtures.auth import (
    MakeClient,
    bearer,
    create_user,
    login,
    role_headers,
    same_origin,
    security_settings,
)
from tests.security.harness import security_app

XSS = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


async def test_cross_origin_post_with_a_session_cookie_is_refused(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    client = await make_client(security_app(security_settings(tmp_path)))
    analyst = await create_user(client, bearer(bootstrap_token), Role.ANALYST)
    session = await login(client, analyst)
    body = {"title": "robbery", "cameras": ["cam1"]}

    evil = await client.post("/api/incidents", json=body,
                             headers={"Origin": "https://evil.example"})
    assert evil.status == 403
    assert "cross-origin" in (await evil.json())["error"]
    # A no-cors form post from another site: no Origin match, Sec-Fetch-Site says cross-site.
    form = await client.post("/api/incidents", data={"title": "x"},
                             headers={"Sec-Fetch-Site": "cross-site"})
    assert form.status == 403
    # No Origin and no CSRF token (a non-browser replaying the cookie): refused too.
    bare = await client.post("/api/incidents", json=body)
    assert bare.status == 403
    listed = await (await client.get("/api/incidents")).json()
    assert listed["incidents"] == []  # none of the above opened anything

    same = await client.post("/api/incidents", json=body, headers=same_origin(client))
    assert same.status == 201
    token = await client.post("/api/incidents", json=body,
                              headers={"X-CSRF-Token": session["csrf_token"]})
    assert token.status == 201


async def test_cross_origin_login_and_websocket_upgrade_are_refused(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    client = await make_client(security_app(security_settings(tmp_path)))
    analyst = await create_user(client, bearer(bootstrap_token), Role.ANALYST)
    forged = await client.post("/api/login", headers={"Origin": "https://evil.example"},
                               data={"username": analyst.username, "password": analyst.password,
                                     "totp": analyst.next_code()})
    assert forged.status == 403
    assert "rtcc_session" not in forged.cookies
    await login(client, analyst)
    upgrade = await client.get("/api/me", headers={
        "Origin": "https://evil.example", "Upgrade": "websocket", "Connection": "Upgrade"})
    assert upgrade.status == 403


async def test_bearer_requests_need_no_origin(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    client = await make_client(security_app(security_settings(tmp_path)))
    _, headers = await role_headers(client, bearer(bootstrap_token), Role.ANALYST)
    created = await client.post("/api/incidents", json={"title": "t"}, headers=headers)
    assert created.status == 201


async def test_loopback_and_spoofed_forwarded_for_get_no_trust(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    client = await make_client(security_app(security_settings(tmp_path)))
    spoofed = {"X-Forwarded-For": "10.1.2.3", "X-Real-IP": "10.1.2.3",
               "Forwarded": "for=10.1.2.3"}
    assert (await client.get("/api/me", headers=spoofed)).status == 401
    assert (await client.get("/api/users", headers=spoofed)).status == 401
    admin = bearer(bootstrap_token)
    await client.post("/api/login", json={"username": "nobody", "password": "x" * 12},
                      headers=spoofed)
    entries = (await (await client.get("/api/audit?action=login", headers=admin)).json())
    assert entries["entries"][0]["source"] == "127.0.0.1"  # the peer, not the header


async def test_roles_are_enforced_with_401_and_403(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    client = await make_client(security_app(security_settings(tmp_path)))
    admin = bearer(bootstrap_token)
    _, analyst = await role_headers(client, admin, Role.ANALYST)
    _, owner = await role_headers(client, admin, Role.OWNER)
    assert (await client.get("/api/users")).status == 401
    assert (await client.get("/api/users", headers=bearer("rtcc_forged"))).status == 401
    denied = await client.get("/api/users", headers=analyst)
    assert denied.status == 403
    assert (await client.get("/api/audit", headers=owner)).status == 403
    assert (await client.get("/api/incidents", headers=owner)).status == 403
    assert (await client.get("/api/access-log", headers=analyst)).status == 403
    assert (await client.get("/api/access-log", headers=owner)).status == 200
    log = await (await client.get("/api/audit?action=access.denied", headers=admin)).json()
    assert {e["target"] for e in log["entries"]} >= {"GET /api/users", "GET /api/audit"}


async def test_html_pages_send_anonymous_browsers_to_the_login_page(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    app = security_app(security_settings(tmp_path))

    from rtcc.policy import staff

    @staff()
    async def wall(request: web.Request) -> web.Response:
        return web.Response(text="wall", content_type="text/html")

    app.router.add_get("/wall", wall)
    client = await make_client(app)
    response = await client.get("/wall?tile=2", headers={"Accept": "text/html"},
                                allow_redirects=False)
    assert response.status == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == ["/wall?tile=2"]
    assert "Content-Security-Policy" in response.headers


def test_login_page_escapes_everything_it_echoes() -> None:
    page = render_login(username=XSS, error=XSS, next_path="/" + XSS)
    assert "<script>" not in page
    assert "<img" not in page
    assert "&lt;script&gt;" in page
    assert "<script" not in page.lower()  # no script of its own either (CSP)


async def test_login_page_with_hostile_input_is_escaped_and_has_headers(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    client = await make_client(security_app(security_settings(tmp_path)))
    page = await client.get("/login", params={"next": "/" + XSS})
    text = await page.text()
    assert page.status == 200
    assert "<script>" not in text
    assert "<img" not in text
    assert "&lt;script&gt;" in text
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    failed = await client.post("/api/login", headers=same_origin(client),
                               data={"username": XSS, "password": "wrong password!"})
    body = await failed.text()
    assert failed.status == 401
    assert "<script>" not in body
    assert "&lt;script&gt;" in body
    for response in (await client.get("/api/users"), await client.get("/nowhere")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


async def test_a_route_without_a_policy_is_refused(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def forgotten(request: web.Request) -> web.Response:
        return web.Response(text="secret")

    @public()
    async def open_route(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application(middlewares=[security_middleware])
    app.on_response_prepare.append(security_headers_on_prepare)
    app[SETTINGS] = security_settings(tmp_path)
    app.cleanup_ctx.append(security_context)
    add_routes(app)
    app.router.add_get("/forgotten", forgotten)
    app.router.add_get("/open", open_route)
    client = await make_client(app)
    caplog.set_level(logging.ERROR)
    refused = await client.get("/forgotten", headers=bearer(bootstrap_token))
    assert refused.status == 500
    assert "secret" not in await refused.text()
    assert any("GET /forgotten" in r.getMessage() and "no access policy" in r.getMessage()
               for r in caplog.records)
    assert (await client.get("/open")).status == 200


async def test_without_required_codes_staff_get_none_unless_asked_and_are_told_when_needed(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    client = await make_client(security_app(security_settings(tmp_path, require_totp=False)))
    admin = bearer(bootstrap_token)
    page = await (await client.get("/login", params={"next": "/console/"})).text()
    assert 'id="totp"' not in page
    assert 'action="/login?next=%2Fconsole%2F"' in page
    password = "a long enough password"
    plain = await client.post("/api/users", headers=admin, json={
        "username": "plain", "role": "analyst", "password": password})
    assert plain.status == 201
    assert "totp_uri" not in await plain.json()
    assert (await client.post("/api/login", json={"username": "plain",
                                                  "password": password})).status == 200
    client.session.cookie_jar.clear()
    coded = await client.post("/api/users", headers=admin, json={
        "username": "coded", "role": "analyst", "password": password, "totp": True})
    assert "totp_uri" in await coded.json()
    missing = await client.post("/api/login", json={"username": "coded", "password": password})
    assert missing.status == 401
    answer = await missing.json()
    assert answer["needs_code"] is True
    assert "needs its one-time code" in answer["error"]
    wrong = await client.post("/api/login", json={"username": "coded", "password": "x" * 16})
    assert "needs_code" not in await wrong.json()  # a wrong password learns nothing more
    form = await client.post("/login?next=/console/", headers=same_origin(client),
                             data={"username": "coded", "password": password})
    assert form.status == 401
    assert 'id="totp"' in await form.text()
