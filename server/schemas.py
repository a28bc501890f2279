"""Every store's schema, for the commands that act on the whole database (``rtcc db``)."""

from __future__ import annotations

from rtcc.db import StoreSchema

STORE_SCHEMAS: tuple[StoreSchema, ...] = ()
"""Each store's ``SCHEMA``, in the order ``rtcc db copy`` fills them."""


def store_schemas() -> list[StoreSchema]:
    """The schemas ``rtcc db status``, ``upgrade`` and ``copy`` act on."""
    return list(STORE_SCHEMAS)


__all__ = ["STORE_SCHEMAS", "store_schemas"]
