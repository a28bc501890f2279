"""The API description covers every route of the real application, with its declared policy."""

from __future__ import annotations

from pathlib import Path

from rtcc.policy import policy_of
from server.app import create_app
from server.openapi import openapi_document
from tests.fixtures.auth import MakeClient, security_settings
from tests.security.test_route_matrix import iter_routes


def test_every_route_is_described_with_its_policy(tmp_path: Path) -> None:
    app = create_app(security_settings(tmp_path))
    document = openapi_document(app)
    assert document["openapi"] == "3.1.0"
    cases = list(iter_routes(app))
    assert len(cases) > 100
    missing: list[str] = []
    for case in cases:
        # Static resources are named by their prefix; the document adds ``{filename}``.
        item = (document["paths"].get(case.pattern)
                or document["paths"].get(case.pattern.rstrip("/") + "/{filename}", {}))
        operation = item.get(case.method.lower())
        if operation is None:
            missing.append(f"{case.method} {case.pattern}")
            continue
        assert case.policy is not None
        roles = ["public"] if case.policy.public else sorted(str(r) for r in case.policy.roles)
        assert operation["x-rtcc-roles"] == roles, case
        assert operation["summary"], case
        assert (operation["security"] == []) == case.policy.public, case
    assert missing == [], f"routes missing from /api/openapi.json: {missing}"
    described = sum(len([m for m in item if m != "parameters"])
                    for item in document["paths"].values())
    assert described == len(cases)


def test_catalog_operations_keep_their_schemas(tmp_path: Path) -> None:
    document = openapi_document(create_app(security_settings(tmp_path)))
    listed = {p["name"] for p in document["paths"]["/api/cameras"]["get"]["parameters"]}
    assert {"near", "sees", "limit"} <= listed
    schemas = document["components"]["schemas"]
    assert {"Feature", "FeatureCollection", "Login", "Token"} <= set(schemas)
    whep = document["paths"]["/whep/{camera_id}"]["post"]
    assert "application/sdp" in whep["requestBody"]["content"]
    assert whep["parameters"][-1] == {"name": "camera_id", "in": "path", "required": True,
                                      "schema": {"type": "string"}}


async def test_description_and_page_are_served(tmp_path: Path, make_client: MakeClient) -> None:
    app = create_app(security_settings(tmp_path))
    client = await make_client(app)
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    served = await response.json()
    assert set(served["paths"]) == set(openapi_document(app)["paths"])
    page = await client.get("/api/docs")
    assert page.status == 200
    assert '<script src="/api/docs.js">' in await page.text()
    script = await client.get("/api/docs.js")
    assert script.status == 200
    assert "/api/openapi.json" in await script.text()
    # Nothing is loaded from another origin.
    assert "http" not in (await page.text()).replace('href="/api/openapi.json"', "")
    assert all(policy_of(route.handler) is not None for route in app.router.routes())
