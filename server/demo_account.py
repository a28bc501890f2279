"""The demo's administrator: a fresh password at every start, printed once on the terminal."""

from __future__ import annotations

import secrets

from rtcc.access import Actor
from rtcc.config import Settings
from rtcc.policy import Role
from security.core import SecurityCore

DEMO_USER = "demo"
DEMO_CAD_USER = "demo-cad"
"""The integration account the demo's CAD simulator posts incidents with."""


async def reset_demo_admin(settings: Settings) -> tuple[str, str]:
    """Create the demo administrator, or give it a new password; returns (user, password)."""
    password = "demo-" + secrets.token_urlsafe(12)
    actor = Actor("demo-setup", str(Role.ADMIN), "local")
    core = await SecurityCore.open(settings)
    try:
        user = await core.accounts.by_name(DEMO_USER)
        if user is None:
            await core.accounts.create_user(
                actor, DEMO_USER, Role.ADMIN, password=password, display_name="Demo administrator",
                enroll_totp=False,
            )
        else:
            await core.accounts.set_password(actor, user.id, password)
            await core.accounts.unlock(actor, user.id)
    finally:
        await core.aclose()
    return DEMO_USER, password


async def demo_cad_token(settings: Settings) -> str:
    """A new API token for the demo's CAD integration account (created on first use)."""
    actor = Actor("demo-setup", str(Role.ADMIN), "local")
    core = await SecurityCore.open(settings)
    try:
        user = await core.accounts.by_name(DEMO_CAD_USER)
        if user is None:
            user, _ = await core.accounts.create_user(
                actor, DEMO_CAD_USER, Role.INTEGRATION, password=None,
                display_name="Demo CAD (simulator)", token_only=True)
        _, token = await core.tokens.create(user.id, "demo cadsim")
    finally:
        await core.aclose()
    return token
