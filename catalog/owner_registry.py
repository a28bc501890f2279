"""``rtcc.owners.OwnerRegistry`` on the catalog store: owner sign-up registers owners here."""

from __future__ import annotations

import secrets

from catalog.model import Owner, owner_record
from catalog.store import STORE_ERRORS, CatalogStore
from rtcc.errors import StoreUnavailable
from rtcc.owners import OwnerContact, RegisteredOwner


def contact_owner(contact: OwnerContact, owner_id: str) -> Owner:
    return Owner(id=owner_id, organisation=contact.organisation,
                 contact_name=contact.contact_name, contact_email=contact.contact_email,
                 contact_phone=contact.contact_phone)


class CatalogOwners:
    def __init__(self, store: CatalogStore) -> None:
        self._store = store

    async def register_owner(self, contact: OwnerContact) -> RegisteredOwner:
        try:
            owner_id = await self._new_owner_id()
            owner = contact_owner(contact, owner_id)
            await self._store.put_owner(owner)
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"the catalog store is unavailable: {exc}") from exc
        return RegisteredOwner(owner_id, owner_record(owner))

    async def remove_owner(self, owner_id: str) -> None:
        await self._store.delete_owner(owner_id)

    async def _new_owner_id(self) -> str:
        while True:
            candidate = "owner-" + secrets.token_hex(5)
            if await self._store.get_owner(candidate) is None:
                return candidate
