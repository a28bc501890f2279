"""``COPY ... FROM STDIN`` for the PostGIS catalog's bulk imports.

The data layer's statements take ``?`` parameters; a large import is about three times faster as
one ``COPY`` stream than as array inserts (the rows are parsed by the server, in C, in one round
trip). This helper reaches the psycopg connection of the store's open transaction, so the copy
stays inside it: all or nothing, under the store's lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from psycopg import sql as pgsql

from rtcc.db import SqlConnection
from rtcc.db.postgres import PostgresConnection


def copy_rows(conn: SqlConnection, table: str, columns: Sequence[str],
              rows: Iterable[Sequence[Any]]) -> None:
    """Stream ``rows`` into ``table`` inside ``conn``'s open transaction (PostgreSQL only)."""
    if not isinstance(conn, PostgresConnection):
        raise TypeError(f"COPY needs a PostgreSQL connection, not {conn.dialect}")
    statement = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
        pgsql.Identifier(table), pgsql.SQL(", ").join(map(pgsql.Identifier, columns)))
    with conn.transaction_connection().cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
