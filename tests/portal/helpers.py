"""Signing owners up through the public API and acting as them with bearer tokens."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient

from tests.fixtures.auth import bearer, same_origin
from tests.fixtures.canary import ACCOUNT_PASSWORD

OWNER_PASSWORD = ACCOUNT_PASSWORD
XSS_NAME = "<img src=x onerror=alert(1)>"
_numbers = itertools.count(1)


@dataclass
class Owner:
    username: str
    owner_id: str
    headers: dict[str, str]


def signup_body(username: str, **changes: Any) -> dict[str, Any]:
    body = {"organisation": f"Shop of {username}", "contact_name": "Pat Example",
            "email": f"{username}@example.org", "phone": "+1 555 0100", "username": username,
            "password": OWNER_PASSWORD}
    body.update(changes)
    return body


async def signup(client: TestClient[Any, Any], username: str | None = None) -> Owner:
    """Sign up through ``POST /api/owner/signup``, then trade the new session for a bearer token
    (so several owners can act from one test client) and forget the cookie."""
    name = username or f"owner{next(_numbers)}"
    response = await client.post("/api/owner/signup", json=signup_body(name))
    data = await response.json()
    assert response.status == 201, data
    token = await client.post("/api/tokens", json={"name": "test"},
                              headers=same_origin(client))
    issued = await token.json()
    assert token.status == 201, issued
    client.session.cookie_jar.clear()
    return Owner(name, data["owner"]["id"], bearer(issued["token"]))


async def call(client: TestClient[Any, Any], method: str, path: str, headers: dict[str, str],
               expect: int, **kwargs: Any) -> Any:
    response = await client.request(method, path, headers=headers, **kwargs)
    text = await response.text()
    assert response.status == expect, f"{method} {path}: {response.status} {text}"
    return await response.json(content_type=None) if text else None


def direct_camera(url: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Front door", "lat": 39.8, "lon": -89.645, "heading": 90,
                            "fov": 80, "range_m": 40, "sharing": "live_always",
                            "profiles": {"main": {"url": url}}}
    body.update(changes)
    return body
