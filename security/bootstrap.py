"""The first administrator.

With ``RTCC_BOOTSTRAP_TOKEN`` set and no account in the store, the server creates the token-only
account ``admin`` and stores the token's hash as that account's bearer token (kind
``bootstrap``). It stays valid until it is revoked (``DELETE /api/tokens/{id}``) after the
administrator has made real accounts and tokens. On a store that already has accounts the
variable creates nothing.
"""

from __future__ import annotations

import logging

from rtcc.access import Actor
from rtcc.policy import Role
from security.core import SecurityCore

log = logging.getLogger(__name__)

BOOTSTRAP_USER = "admin"
MIN_TOKEN_LENGTH = 20


async def run_bootstrap(core: SecurityCore, token: str) -> bool:
    """Create the first admin when the store is empty; True when it did."""
    if await core.store.user_count() > 0:
        if token and not await core.tokens.active_of_kind("bootstrap"):
            log.info("RTCC_BOOTSTRAP_TOKEN is set but accounts exist and the bootstrap token "
                     "was rotated; it grants nothing")
        return False
    if not token:
        log.warning("no accounts exist yet: set RTCC_BOOTSTRAP_TOKEN to create the first "
                    "administrator, or run `rtcc user add`")
        return False
    if len(token) < MIN_TOKEN_LENGTH:
        log.error("RTCC_BOOTSTRAP_TOKEN must have at least %d characters; no administrator "
                  "was created", MIN_TOKEN_LENGTH)
        return False
    actor = Actor("bootstrap", "system")
    user, _ = await core.accounts.create_user(
        actor, BOOTSTRAP_USER, Role.ADMIN, password=None, token_only=True,
        display_name="Bootstrap administrator", enroll_totp=False,
    )
    token_id, _ = await core.tokens.create(user.id, "bootstrap", kind="bootstrap", secret=token)
    await core.audit.append(actor="bootstrap", role="system", action="token.create",
                            target=f"token:{token_id}", details={"user": user.username,
                                                                 "kind": "bootstrap"})
    log.warning("created the first administrator %r from RTCC_BOOTSTRAP_TOKEN; create named "
                "accounts, then revoke the bootstrap token", user.username)
    return True
