"""Every store's schema, for the commands that act on the whole database (``rtcc db``)."""

from __future__ import annotations

from catalog.postgis_store import SCHEMA as CATALOG
from console_web.layouts import SCHEMA as CONSOLE
from evidence.store import SCHEMA as EVIDENCE
from facilities.store import SCHEMA as FACILITIES
from incidents.store import SCHEMA as INCIDENTS
from ingest.agentlink.store import SCHEMA as AGENTS
from notify.store import SCHEMA as NOTIFY
from rtcc.db import StoreSchema
from security.store import SCHEMA as SECURITY
from tips.store import SCHEMA as TIPS
from transparency.store import SCHEMA as TRANSPARENCY

STORE_SCHEMAS: tuple[StoreSchema, ...] = (
    SECURITY, EVIDENCE, AGENTS, TIPS, INCIDENTS, FACILITIES, NOTIFY, TRANSPARENCY, CONSOLE,
    CATALOG)
"""Each store's ``SCHEMA``, in the order ``rtcc db copy`` fills them. (The recording schema is
the owner's agent's buffer index; in the server those tables are part of the evidence store.)"""


def store_schemas() -> list[StoreSchema]:
    """The schemas ``rtcc db status``, ``upgrade`` and ``copy`` act on."""
    return list(STORE_SCHEMAS)


__all__ = ["STORE_SCHEMAS", "store_schemas"]
