"""The base of a store whose tables live in the ``Database``: one connection, opened, used and
closed on the store's own thread (``rtcc.offload``)."""

from __future__ import annotations

from rtcc.db.connection import SqlConnection
from rtcc.db.database import Database
from rtcc.db.migrations import StoreSchema
from rtcc.offload import OffloadedStore, StoreClosed


class TableStore(OffloadedStore):
    """Subclasses run their SQL through ``self.conn`` inside functions passed to ``run``."""

    def __init__(self, database: Database, schema: StoreSchema) -> None:
        super().__init__(f"{schema.name}-store")
        self._database = database
        self._schema = schema
        self._conn: SqlConnection | None = None

    async def open_tables(self) -> None:
        """Connect and bring the schema up to date (or refuse, see ``Database.open_store``)."""
        await self.run(self._open_tables)

    def _open_tables(self) -> None:
        self._conn = self._database.open_store(self._schema)

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    @property
    def conn(self) -> SqlConnection:
        if self._conn is None:
            raise StoreClosed(self._schema.name)
        return self._conn
