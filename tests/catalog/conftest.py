"""Catalog test applications: the catalog's contexts and routes, without the security layer."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pytest
from aiohttp import web

from catalog import add_routes, catalog_context, live_status_context
from rtcc.access import SecretBox
from rtcc.appkeys import HUB, SECRET_BOX, SETTINGS
from rtcc.config import CameraConfig, Settings
from rtcc.hub import StreamHub
from security.secretbox import AesGcmBox
from tests.fixtures.canary import CATALOG_PASSWORD

CANARY_PASSWORD = CATALOG_PASSWORD


@pytest.fixture
def secret_box() -> SecretBox:
    return AesGcmBox(os.urandom(32))


def catalog_app(
    store: str,
    box: SecretBox | None,
    cameras: Sequence[dict[str, Any]] = (),
    hub: StreamHub | None = None,
) -> web.Application:
    """An application with only the catalog (and optionally a stream hub) wired in."""
    app = web.Application()
    app[SETTINGS] = Settings(store=store,
                             cameras=[CameraConfig.model_validate(c) for c in cameras])
    if box is not None:
        app[SECRET_BOX] = box
    if hub is not None:
        app[HUB] = hub
    app.cleanup_ctx.append(catalog_context)
    app.cleanup_ctx.append(live_status_context)
    add_routes(app)
    return app
