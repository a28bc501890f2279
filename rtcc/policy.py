"""Route policies: every HTTP route declares who may call it.

A handler without a declared policy is refused by the security middleware (and fails the
authorization-matrix test), so a new route cannot be born open by accident.
Static files get one too: ``public()(app.router.add_static("/static", folder))``.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

_ATTR = "__rtcc_policy__"


class Role(enum.StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    ANALYST = "analyst"
    INVESTIGATOR = "investigator"
    OWNER = "owner"
    AGENT = "agent"
    INTEGRATION = "integration"
    """A CAD or other system feeding incidents: API tokens only, never media, not staff."""


STAFF_ROLES = frozenset({Role.ADMIN, Role.SUPERVISOR, Role.ANALYST, Role.INVESTIGATOR})


@dataclass(frozen=True, slots=True)
class Policy:
    public: bool
    """Reachable without logging in (health, login page, public map, owner sign-up)."""
    roles: frozenset[Role]
    """Roles allowed when not public. Per-object checks (owner's own cameras) happen inside."""
    anonymous: bool = False
    """Public, and the caller stays unknown: no credentials are read and nothing logged names
    the caller's address (the anonymous tip line)."""


F = TypeVar("F")
"""A handler function, a class-based view, or a resource such as ``app.router.add_static(...)``."""


def public() -> Callable[[F], F]:
    """Anyone may call this route."""
    return _mark(Policy(public=True, roles=frozenset()))


def anonymous() -> Callable[[F], F]:
    """Anyone may call this route, and the server must not learn who: the security middleware
    reads no cookie or token for it and logs no address."""
    return _mark(Policy(public=True, roles=frozenset(), anonymous=True))


def allow(*roles: Role) -> Callable[[F], F]:
    """Only logged-in users with one of these roles may call this route."""
    if not roles:
        raise ValueError("allow() needs at least one role; use public() for open routes")
    return _mark(Policy(public=False, roles=frozenset(roles)))


def staff() -> Callable[[F], F]:
    return _mark(Policy(public=False, roles=STAFF_ROLES))


def _mark(policy: Policy) -> Callable[[F], F]:
    def decorate(handler: F) -> F:
        setattr(handler, _ATTR, policy)
        return handler

    return decorate


def policy_of(handler: object) -> Policy | None:
    """The policy declared on a handler, on a class-based view, or, for a bound method such as
    a static resource's handler, on the object it is bound to."""
    found = getattr(handler, _ATTR, None)
    if found is None and inspect.ismethod(handler):
        found = getattr(handler.__self__, _ATTR, None)
    return found if isinstance(found, Policy) else None
