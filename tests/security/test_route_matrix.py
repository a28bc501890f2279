"""Authorization matrix over every route of the real application, found automatically.

A route added without a policy fails here; every route is called anonymously and with each role,
and the answer must match its declared policy: 401 without credentials, 403 for a role it does
not allow, and neither refusal for a role it allows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from rtcc.policy import Policy, Role, policy_of
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, role_headers, security_settings

SAMPLES = ("x1", "1", "cam1", "main", "a.txt")


@dataclass(frozen=True)
class RouteCase:
    method: str
    pattern: str
    path: str
    policy: Policy | None


def _sample_path(resource: web.AbstractResource) -> str:
    info = resource.get_info()
    if "path" in info:
        return str(info["path"])
    if "prefix" in info:  # static files
        return f"{info['prefix'].rstrip('/')}/no-such-file.txt"
    if "formatter" in info:
        pattern = info["pattern"]
        names = [part.split("}")[0].split(":")[0] for part in info["formatter"].split("{")[1:]]
        for sample in SAMPLES:
            path = info["formatter"].format(**dict.fromkeys(names, sample))
            if pattern.fullmatch(path):
                return str(path)
        raise AssertionError(f"no sample path matches {resource.canonical}")
    raise AssertionError(f"unknown resource kind {resource!r}")


def iter_routes(app: web.Application) -> Iterator[RouteCase]:
    for resource in app.router.resources():
        sub_app = getattr(resource, "_app", None)
        if isinstance(sub_app, web.Application):  # sub-application: its paths carry the prefix
            yield from iter_routes(sub_app)
            continue
        for route in resource:
            if route.method == "HEAD":
                continue  # aiohttp adds HEAD beside GET with the same handler
            yield RouteCase(route.method, resource.canonical, _sample_path(resource),
                            policy_of(route.handler))


def test_every_route_declares_a_policy(tmp_path: Path) -> None:
    app = create_app(security_settings(tmp_path))
    cases = list(iter_routes(app))
    assert len(cases) > 10
    missing = [f"{case.method} {case.pattern}" for case in cases if case.policy is None]
    assert missing == [], f"routes without an access policy (rtcc.policy): {missing}"


def _is_role_refusal(status: int, body: Any) -> bool:
    return (status == 403 and isinstance(body, dict)
            and str(body.get("error", "")).endswith("role may not use this"))


async def test_authorization_matrix_across_roles(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient
) -> None:
    app = create_app(security_settings(tmp_path))
    cases = [case for case in iter_routes(app) if case.policy is not None]
    client = await make_client(app)
    admin = bearer(bootstrap_token)
    principals: dict[str, tuple[Role | None, dict[str, str]]] = {"anonymous": (None, {})}
    for each_role in Role:
        _, role_auth = await role_headers(client, admin, each_role)
        principals[str(each_role)] = (each_role, role_auth)

    problems: list[str] = []
    checked = 0
    for case in cases:
        assert case.policy is not None
        for name, (role, headers) in principals.items():
            kwargs: dict[str, Any] = {"headers": {**headers, "Accept": "application/json"},
                                      "allow_redirects": False}
            if case.method in {"POST", "PUT", "PATCH"}:
                kwargs["json"] = {}
            response = await client.request(case.method, case.path, **kwargs)
            body: Any = None
            if response.content_type == "text/event-stream":
                response.close()  # a live feed never ends: its status is the answer
            else:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
            status = response.status
            checked += 1
            where = f"{case.method} {case.pattern} as {name}: {status}"
            if case.policy.public:
                if status == 401 or _is_role_refusal(status, body):
                    problems.append(f"{where} (public route refused)")
            elif role is None:
                if status != 401:
                    problems.append(f"{where} (expected 401)")
            elif role in case.policy.roles:
                if status == 401 or _is_role_refusal(status, body):
                    problems.append(f"{where} (allowed role refused)")
            elif not _is_role_refusal(status, body):
                problems.append(f"{where} (expected 403 for this role)")
    assert problems == [], "\n".join(problems)
    assert checked == len(cases) * len(principals)
