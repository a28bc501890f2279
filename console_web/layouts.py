"""Saved walls: named layouts kept per analyst or shared with every analyst (store ``console``).

``GET /api/console/layouts``
    ``{"layouts": [{"name", "shared", "layout", "cameras", "author", "updated_at"}]}``: the
    caller's own walls, then the shared ones.
``PUT /api/console/layouts``
    ``{"name", "shared", "layout", "cameras"}`` saves (or replaces) a wall. ``layout`` is 1, 4, 9
    or 16 tiles; ``cameras`` lists a camera id or ``null`` per tile.
``DELETE /api/console/layouts?name=NAME&shared=true|false``
    Removes one. A shared wall is removed by its author, a supervisor or an administrator.

A wall holds camera ids only: opening it asks for each view as the wall always does (consent,
purpose, audit).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from rtcc.appkeys import DATABASE
from rtcc.db import Database, Migration, StoreSchema
from rtcc.db.store import TableStore
from rtcc.http import json_error, read_json, required
from rtcc.policy import Role, staff
from rtcc.principal import require_principal

LAYOUT_SIZES = (1, 4, 9, 16)
MAX_NAME = 60
MAX_WALLS_PER_USER = 100
_CAMERA_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SHARED = ""
"""The ``scope`` of a shared wall (a personal wall's scope is its author's username)."""

_SQLITE = """
CREATE TABLE IF NOT EXISTS console_layouts (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    author TEXT NOT NULL,
    layout INTEGER NOT NULL,
    cameras TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (scope, name)
);
"""

_POSTGRESQL = """
CREATE TABLE IF NOT EXISTS console_layouts (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    author TEXT NOT NULL,
    layout BIGINT NOT NULL,
    cameras TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (scope, name)
);
"""

SCHEMA = StoreSchema(
    name="console",
    migrations=(Migration(1, "saved walls of the analyst console", sqlite=_SQLITE,
                          postgresql=_POSTGRESQL),),
    tables=("console_layouts",),
    sqlite_file="console.sqlite3",
)


@dataclass(frozen=True, slots=True)
class SavedWall:
    name: str
    shared: bool
    author: str
    layout: int
    cameras: tuple[str | None, ...]
    updated_at: float

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "shared": self.shared, "author": self.author,
                "layout": self.layout, "cameras": list(self.cameras),
                "updated_at": self.updated_at}


class LayoutStore(TableStore):
    """Saved walls; SQL on the store's own thread."""

    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        super().__init__(database, SCHEMA)
        self._clock = clock

    @classmethod
    async def open(cls, database: Database) -> LayoutStore:
        store = cls(database)
        await store.open_tables()
        return store

    async def walls_for(self, username: str) -> list[SavedWall]:
        return await self.run(self._walls_for, username)

    async def save(self, username: str, name: str, *, shared: bool, layout: int,
                   cameras: list[str | None]) -> SavedWall | None:
        """Save a wall; None when the user already has ``MAX_WALLS_PER_USER`` other walls."""
        return await self.run(self._save, username, name, shared, layout, cameras)

    async def author_of(self, name: str, *, shared: bool, username: str) -> str | None:
        return await self.run(self._author_of, name, shared, username)

    async def delete(self, name: str, *, shared: bool, username: str) -> bool:
        return await self.run(self._delete, name, shared, username)

    def _walls_for(self, username: str) -> list[SavedWall]:
        rows = self.conn.fetchall(
            "SELECT * FROM console_layouts WHERE scope = ? OR scope = ?"
            " ORDER BY CASE WHEN scope = ? THEN 1 ELSE 0 END, name", (username, _SHARED, _SHARED))
        return [SavedWall(r["name"], r["scope"] == _SHARED, r["author"], int(r["layout"]),
                          tuple(json.loads(r["cameras"])), float(r["updated_at"]))
                for r in rows]

    def _save(self, username: str, name: str, shared: bool, layout: int,
              cameras: list[str | None]) -> SavedWall | None:
        scope = _SHARED if shared else username
        now = float(self._clock())
        with self.conn.transaction() as tx:
            count = tx.execute("SELECT COUNT(*) AS n FROM console_layouts WHERE author = ?"
                               " AND NOT (scope = ? AND name = ?)",
                               (username, scope, name)).fetchone()["n"]
            if int(count) >= MAX_WALLS_PER_USER:
                return None
            tx.execute(
                "INSERT INTO console_layouts (scope, name, author, layout, cameras, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope, name) DO UPDATE SET"
                " author = excluded.author, layout = excluded.layout,"
                " cameras = excluded.cameras, updated_at = excluded.updated_at",
                (scope, name, username, layout, json.dumps(cameras), now))
        return SavedWall(name, shared, username, layout, tuple(cameras), now)

    def _author_of(self, name: str, shared: bool, username: str) -> str | None:
        row = self.conn.fetchone("SELECT author FROM console_layouts WHERE scope = ? AND name = ?",
                                 (_SHARED if shared else username, name))
        return None if row is None else str(row["author"])

    def _delete(self, name: str, shared: bool, username: str) -> bool:
        with self.conn.transaction() as tx:
            cursor = tx.execute("DELETE FROM console_layouts WHERE scope = ? AND name = ?",
                                (_SHARED if shared else username, name))
            return cursor.rowcount > 0


LAYOUT_STORE = web.AppKey("console_layout_store", LayoutStore)


def _name(value: object) -> str | web.Response:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > MAX_NAME:
        return json_error(400, f"name: give the wall a name of 1-{MAX_NAME} characters",
                          field="name")
    if any(ord(ch) < 32 for ch in value):
        return json_error(400, "name: control characters are not allowed", field="name")
    return value.strip()


def _shared(value: object) -> bool | web.Response:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    return json_error(400, "shared: must be true or false", field="shared")


@staff()
async def list_layouts(request: web.Request) -> web.Response:
    """The caller's saved walls and the shared ones."""
    store = required(request, LAYOUT_STORE, "the saved walls store")
    walls = await store.walls_for(require_principal(request).username)
    return web.json_response({"layouts": [wall.as_json() for wall in walls]})


@staff()
async def save_layout(request: web.Request) -> web.Response:
    """Save a wall under a name, for the caller or shared with every analyst."""
    store = required(request, LAYOUT_STORE, "the saved walls store")
    body = await read_json(request, 16 * 1024)
    name = _name(body.get("name"))
    if isinstance(name, web.Response):
        return name
    shared = _shared(body.get("shared", False))
    if isinstance(shared, web.Response):
        return shared
    layout = body.get("layout")
    if isinstance(layout, bool) or layout not in LAYOUT_SIZES:
        return json_error(400, "layout: must be 1, 4, 9 or 16 tiles", field="layout",
                          allowed=list(LAYOUT_SIZES))
    cameras = body.get("cameras")
    if (not isinstance(cameras, list) or len(cameras) > layout
            or not all(c is None or (isinstance(c, str) and _CAMERA_ID.fullmatch(c))
                       for c in cameras)):
        return json_error(400, "cameras: a list of camera ids or null, at most one per tile",
                          field="cameras")
    principal = require_principal(request)
    if shared:
        author = await store.author_of(name, shared=True, username=principal.username)
        if author not in (None, principal.username) and principal.role not in _MODERATORS:
            return json_error(403, f"the shared wall {name!r} is {author}'s: save it under "
                                   "another name, or ask a supervisor")
    wall = await store.save(principal.username, name, shared=shared, layout=layout,
                            cameras=cameras)
    if wall is None:
        return json_error(409, f"you have {MAX_WALLS_PER_USER} saved walls: delete one first")
    return web.json_response(wall.as_json())


_MODERATORS = frozenset({Role.ADMIN, Role.SUPERVISOR})


@staff()
async def delete_layout(request: web.Request) -> web.Response:
    """Remove a saved wall (a shared one: its author, a supervisor or an administrator)."""
    store = required(request, LAYOUT_STORE, "the saved walls store")
    name = _name(request.query.get("name"))
    if isinstance(name, web.Response):
        return name
    shared = _shared(request.query.get("shared", "false"))
    if isinstance(shared, web.Response):
        return shared
    principal = require_principal(request)
    author = await store.author_of(name, shared=shared, username=principal.username)
    if author is None:
        return json_error(404, f"no saved wall named {name!r}")
    if shared and author != principal.username and principal.role not in _MODERATORS:
        return json_error(403, f"the shared wall {name!r} is {author}'s: only its author or a "
                               "supervisor removes it")
    await store.delete(name, shared=shared, username=principal.username)
    return web.json_response({"deleted": name, "shared": shared})


async def layouts_context(app: web.Application) -> AsyncIterator[None]:
    """Opens the saved walls store on the data layer."""
    store = await LayoutStore.open(app[DATABASE])
    app[LAYOUT_STORE] = store
    try:
        yield
    finally:
        await store.aclose()


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/console/layouts", list_layouts)
    app.router.add_put("/api/console/layouts", save_layout)
    app.router.add_delete("/api/console/layouts", delete_layout)
