"""The demo's administrator: a fresh password at every start, printed once on the terminal."""

from __future__ import annotations

import secrets

from rtcc.access import Actor
from rtcc.config import Settings
from rtcc.policy import Role
from security.core import SecurityCore

DEMO_USER = "demo"


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
