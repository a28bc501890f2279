"""Camera owners as the catalog registers them, and the contract owner sign-up uses.

Owner sign-up (``security``) checks the organisation's contact details with ``parse_contact``
and registers the owner through the ``OwnerRegistry`` the catalog publishes
(``rtcc.appkeys.OWNER_REGISTRY``); the owner portal edits them with the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
_PHONE = re.compile(r"^[0-9+()./ -]{0,40}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class FieldProblem(Exception):
    """A submitted field is refused; ``field`` names it, the message says what to enter."""

    def __init__(self, field_name: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.field = field_name
        self.status = status


@dataclass(frozen=True, slots=True)
class OwnerContact:
    organisation: str
    contact_name: str
    contact_email: str
    contact_phone: str = ""


def text_field(fields: Mapping[str, Any], name: str, label: str, *, required: bool,
               limit: int = 200) -> str:
    value = fields.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise FieldProblem(name, f"{label} must be text")
    value = value.strip()
    if required and not value:
        raise FieldProblem(name, f"{label} is required")
    if len(value) > limit or _CONTROL.search(value):
        raise FieldProblem(name, f"{label}: at most {limit} characters, no control characters")
    return value


def parse_contact(fields: Mapping[str, Any]) -> OwnerContact:
    """The organisation and its contact details; raises ``FieldProblem``."""
    organisation = text_field(fields, "organisation", "Organisation", required=True)
    contact = text_field(fields, "contact_name", "Contact name", required=True)
    email = text_field(fields, "email", "E-mail", required=True, limit=320)
    if not _EMAIL.fullmatch(email):
        raise FieldProblem("email", "E-mail: enter an address such as name@example.org")
    phone = text_field(fields, "phone", "Phone", required=False, limit=40)
    if not _PHONE.fullmatch(phone):
        raise FieldProblem("phone", "Phone: digits, spaces and + ( ) - . / only")
    return OwnerContact(organisation, contact, email, phone)


@dataclass(frozen=True, slots=True)
class RegisteredOwner:
    owner_id: str
    record: dict[str, Any]
    """The owner as the catalog shows it (``{"id", "organisation", ...}``)."""


class OwnerRegistry(Protocol):
    async def register_owner(self, contact: OwnerContact) -> RegisteredOwner:
        """Register a new owner under a fresh id; raises ``rtcc.errors.StoreUnavailable``."""
        ...

    async def remove_owner(self, owner_id: str) -> None:
        """Undo ``register_owner`` (the owner's account could not be made)."""
        ...
