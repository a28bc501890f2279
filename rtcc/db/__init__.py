"""The data layer: one way for every store to reach its tables, on SQLite or PostgreSQL.

A store names itself (``"security"``, ``"evidence"``...) and gets a ``SqlConnection`` from a
``Database``: on SQLite, its own file in the data directory (the embedded default); on PostgreSQL,
a schema of its own in the department's database, so table names never collide between stores and
one SQL text serves both engines. Statements use ``?`` placeholders on both. A store runs its SQL on
its own thread (``rtcc.offload``), never on the event loop. ``rtcc.db.migrations`` versions each
store's schema.
"""

from rtcc.db.connection import Cursor, Row, SqlConnection
from rtcc.db.database import Database, DatabaseSettings
from rtcc.db.errors import DatabaseUnavailable, redact_url
from rtcc.db.migrations import Migration, MigrationStatus, StoreSchema

__all__ = [
    "Cursor",
    "Database",
    "DatabaseSettings",
    "DatabaseUnavailable",
    "Migration",
    "MigrationStatus",
    "Row",
    "SqlConnection",
    "StoreSchema",
    "redact_url",
]
