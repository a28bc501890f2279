"""Login attempts are rationed per client address and for the whole server, before any password
is hashed: past the limit the answer is 429 with Retry-After and no hash is computed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from rtcc.appkeys import WORKERS
from rtcc.policy import Role
from rtcc.workers import WorkerPool
from security.ratelimit import AttemptLimiter
from tests.fixtures.auth import FakeClock, MakeClient, bearer, create_user, security_settings
from tests.portal.helpers import signup_body
from tests.security.harness import security_app

ATTACKER = "198.51.100.7"
NEIGHBOUR = "203.0.113.9"


async def _attempt(client: TestClient[Any, Any], address: str, username: str, password: str,
                   code: str = "") -> tuple[int, dict[str, Any], str | None]:
    body = {"username": username, "password": password}
    if code:
        body["totp"] = code
    response = await client.post("/api/login", json=body,
                                  headers={"X-Forwarded-For": address})
    data: dict[str, Any] = await response.json()
    client.session.cookie_jar.clear()  # each attempt as a new browser, without a session
    return response.status, data, response.headers.get("Retry-After")


async def _refusals_audited(client: TestClient[Any, Any], admin: dict[str, str]) -> list[Any]:
    audit = await (await client.get("/api/audit?action=login", headers=admin)).json()
    return [entry for entry in audit["entries"] if entry["outcome"] == "refused"
            and entry["details"].get("reason", "").startswith("too many attempts")]


async def test_one_address_is_refused_after_its_burst_without_hashing(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    clock = FakeClock()
    settings = security_settings(tmp_path, trusted_proxies=["127.0.0.0/8", "::1/128"],
                                 login_attempts_per_minute=10, login_burst=5)
    app = security_app(settings, clock=clock)
    async with WorkerPool(1) as pool:
        app[WORKERS] = pool
        client = await make_client(app)
        admin = bearer(bootstrap_token)
        analyst = await create_user(client, admin, Role.ANALYST)

        hashed_before = pool.completed
        statuses = []
        retry_after: list[str | None] = []
        hashed_after_burst = 0
        for attempt in range(12):  # unknown names: never locked, each would cost a hash
            status, data, wait = await _attempt(client, ATTACKER, f"nobody{attempt}",
                                                "not the password")
            statuses.append(status)
            retry_after.append(wait)
            if attempt == 4:
                hashed_after_burst = pool.completed
        assert statuses == [401] * 5 + [429] * 7
        assert hashed_after_burst - hashed_before >= 5  # each of the burst verified on the pool
        assert pool.completed == hashed_after_burst  # the refused seven were never hashed
        assert all(wait is not None and int(wait) >= 1 for wait in retry_after[5:])
        assert "too many login attempts from this address" in data["error"]
        assert len(await _refusals_audited(client, admin)) == 1  # once per run, not per request

        # Another address is not affected by the attacker's limit.
        status, data, _ = await _attempt(client, NEIGHBOUR, analyst.username, analyst.password,
                                         analyst.next_code(clock()))
        assert status == 200, data

        # The attacker's address is refused even the right password (no hash either)...
        hashed_before = pool.completed
        status, data, wait = await _attempt(client, ATTACKER, analyst.username,
                                            analyst.password, "000000")
        assert status == 429, data
        assert pool.completed == hashed_before
        # ...and sign-up from there draws on the same budget of hashes.
        signup = await client.post("/api/owner/signup", json=signup_body("corner-shop"),
                                   headers={"X-Forwarded-For": ATTACKER})
        assert signup.status == 429
        assert "too many login attempts" in (await signup.json())["error"]

        assert wait is not None
        clock.advance(int(wait))
        status, data, _ = await _attempt(client, ATTACKER, analyst.username, analyst.password,
                                         analyst.next_code(clock()))
        assert status == 200, data
        # A success gives its token back: the next failure is still answered normally.
        status, _, _ = await _attempt(client, ATTACKER, "nobody-again", "not the password")
        assert status == 401
        assert len(await _refusals_audited(client, admin)) == 1


async def test_the_global_limit_refuses_every_address_and_recovers(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    clock = FakeClock()
    settings = security_settings(tmp_path, trusted_proxies=["127.0.0.0/8", "::1/128"],
                                 login_attempts_per_minute_global=6, login_burst_global=3)
    client = await make_client(security_app(settings, clock=clock))
    admin = bearer(bootstrap_token)
    statuses = []
    for number in range(5):
        status, data, wait = await _attempt(client, f"192.0.2.{number + 1}", f"nobody{number}",
                                            "not the password")
        statuses.append(status)
    assert statuses == [401, 401, 401, 429, 429]
    assert "too many attempts" in data["error"]
    assert "server" in data["error"]
    assert wait is not None
    clock.advance(int(wait))
    status, _, _ = await _attempt(client, "192.0.2.99", "nobody-later", "not the password")
    assert status == 401
    refusals = await _refusals_audited(client, admin)
    assert len(refusals) == 1
    assert refusals[0]["details"]["reason"] == "too many attempts (global limit)"


async def test_the_limiter_refuses_a_run_once_then_refills_per_address() -> None:
    clock = FakeClock()
    limiter = AttemptLimiter(per_address_per_minute=1, per_address_burst=1,
                             global_per_minute=100, global_burst=100, clock=clock)
    assert limiter.take("192.0.2.1").allowed
    refused = limiter.take("192.0.2.1")
    assert not refused.allowed
    assert refused.first_refusal
    assert refused.retry_after == 60
    again = limiter.take("192.0.2.1")
    assert not again.allowed
    assert not again.first_refusal
    assert limiter.take("192.0.2.2").allowed  # its own bucket
    clock.advance(60)
    assert limiter.take("192.0.2.1").allowed
