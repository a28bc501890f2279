"""Review of the whole application's web surface, route by route (found automatically):
every HTML page runs under a strict CSP, and no state-changing route can be driven cross-site
with a browser's session cookie."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, create_user, login, security_settings
from tests.security.test_route_matrix import RouteCase, iter_routes

EVIL = "https://evil.example"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _directives(header: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            found[words[0]] = words[1:]
    return found


async def _get(client: TestClient[Any, Any], path: str, headers: dict[str, str]
               ) -> tuple[int, str, dict[str, str]]:
    response = await client.get(path, headers={**headers, "Accept": "text/html"},
                                allow_redirects=False)
    if response.content_type == "text/event-stream":
        response.close()
    else:
        await response.read()
    return response.status, response.content_type, dict(response.headers)


async def test_every_html_page_runs_under_a_strict_csp(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    app = create_app(security_settings(tmp_path))
    client = await make_client(app)
    admin = bearer(bootstrap_token)
    pages: list[str] = []
    problems: list[str] = []
    for case in iter_routes(app):
        if case.method != "GET":
            continue
        for who, headers in (("anonymous", {}), ("admin", admin)):
            status, content_type, got = await _get(client, case.path, headers)
            if content_type != "text/html":
                continue
            pages.append(f"{case.pattern} ({who}, {status})")
            csp = _directives(got.get("Content-Security-Policy", ""))
            where = f"{case.pattern} as {who}"
            script = csp.get("script-src", csp.get("default-src", []))
            if not script or any(w in script for w in ("'unsafe-inline'", "'unsafe-eval'", "*")):
                problems.append(f"{where}: script-src {script}")
            for name, wanted in (("object-src", ["'none'"]), ("frame-ancestors", ["'none'"]),
                                 ("base-uri", ["'none'"]), ("form-action", ["'self'"])):
                if csp.get(name) != wanted:
                    problems.append(f"{where}: {name} {csp.get(name)}")
            if got.get("X-Content-Type-Options") != "nosniff":
                problems.append(f"{where}: no nosniff")
    assert len(pages) >= 8, pages  # login, console, player, owner portal pages
    assert problems == [], "\n".join(problems)


def _unsafe_routes(cases: list[RouteCase]) -> list[RouteCase]:
    return [case for case in cases if case.method in UNSAFE and case.policy is not None]


async def test_no_state_changing_route_accepts_a_cross_site_cookie_request(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    """A logged-in administrator's browser, lured to another site: whatever the route, a
    foreign Origin, a cross-site fetch without Origin, or a cookie replayed without Origin or
    CSRF token is refused before the handler runs (public routes included: login CSRF)."""
    app = create_app(security_settings(tmp_path))
    client = await make_client(app)
    await login(client, await create_user(client, bearer(bootstrap_token), Role.ADMIN))
    cases = _unsafe_routes(list(iter_routes(app)))
    assert len(cases) >= 30, [f"{c.method} {c.pattern}" for c in cases]
    problems: list[str] = []
    for case in cases:
        for label, headers, reason in (
            ("foreign Origin", {"Origin": EVIL}, "cross-origin"),
            ("Sec-Fetch-Site cross-site", {"Sec-Fetch-Site": "cross-site"}, "cross-site"),
            ("same-site sibling", {"Sec-Fetch-Site": "same-site"}, "cross-site"),
            ("no Origin, no token", {}, "X-CSRF-Token"),
        ):
            if case.policy is not None and case.policy.public and not headers:
                continue  # a public route without a session has nothing to protect
            response = await client.request(case.method, case.path, json={},
                                            headers={**headers, "Accept": "application/json"})
            text = await response.text()
            if response.status != 403 or reason not in text:
                problems.append(f"{case.method} {case.pattern} with {label}: "
                                f"{response.status} {text[:100]}")
    assert problems == [], "\n".join(problems)
    # The session still works from the site itself (the refusals above were about origin).
    own = client.make_url("/")
    response = await client.post("/api/incidents", json={"title": "review"},
                                 headers={"Origin": f"{own.scheme}://{own.host}:{own.port}"})
    assert response.status == 201


async def test_a_cross_site_websocket_upgrade_with_the_cookie_is_refused(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    app = create_app(security_settings(tmp_path))
    client = await make_client(app)
    await login(client, await create_user(client, bearer(bootstrap_token), Role.ADMIN))
    websockets = [case for case in iter_routes(app) if case.pattern.endswith("/ws")]
    assert websockets
    for case in websockets:
        response = await client.get(case.path, headers={
            "Origin": EVIL, "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert response.status == 403, case.pattern
        assert "cross-origin" in await response.text()


async def test_streamed_answers_carry_the_security_headers(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    client = await make_client(create_app(security_settings(tmp_path)))
    status, _, headers = await _get(client, "/api/cameras/export?format=csv",
                                    bearer(bootstrap_token))
    assert status == 200
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert "no-store" in headers.get("Cache-Control", "")
    assert "frame-ancestors 'none'" in headers.get("Content-Security-Policy", "")
