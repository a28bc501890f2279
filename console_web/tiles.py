"""Map tiles the department hosts itself: raster PNG tiles from an MBTiles file
(``console.tiles_path``), so the console's map shows streets without any outside service.

``GET /tiles/{z}/{x}/{y}.png``
    The tile (XYZ numbering, as Leaflet asks), or 404 when the file has none there.

MBTiles is a SQLite file whose ``tiles`` table numbers rows from the south (TMS); the lookup
flips the row. Reads run on the source's own thread (``StoreThread``), never on the event loop.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from rtcc.appkeys import SETTINGS
from rtcc.offload import StoreThread
from rtcc.policy import public

log = logging.getLogger(__name__)
TILE_URL = "/tiles/{z}/{x}/{y}.png"
MAX_ZOOM = 22
PNG = b"\x89PNG\r\n\x1a\n"


class MbtilesSource:
    """Reads tiles from one MBTiles file, opened read-only on its own thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = StoreThread("tiles")
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                       check_same_thread=True)
        return self._db

    def _read(self, z: int, x: int, y: int) -> bytes | None:
        row = self._connection().execute(
            "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? "
            "AND tile_row = ?", (z, x, (1 << z) - 1 - y)).fetchone()
        return bytes(row[0]) if row is not None else None

    async def tile(self, z: int, x: int, y: int) -> bytes | None:
        return await self._thread.run(self._read, z, x, y)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def aclose(self) -> None:
        await self._thread.aclose(self._close)


TILE_SOURCE = web.AppKey("tile_source", MbtilesSource)


async def tiles_context(app: web.Application) -> AsyncIterator[None]:
    path = app[SETTINGS].console.tiles_path
    if path is None:
        yield
        return
    if not path.is_file():
        log.warning("console.tiles_path %s is not a file: the map draws on a plain background "
                    "until it exists (restart after creating it)", path)
        yield
        return
    source = MbtilesSource(path)
    app[TILE_SOURCE] = source
    try:
        yield
    finally:
        await source.aclose()


@public()
async def tile(request: web.Request) -> web.StreamResponse:
    # Public like the page's own files: a basemap shows streets, never cameras.
    source = request.config_dict.get(TILE_SOURCE)
    try:
        z, x, y = (int(request.match_info[k]) for k in ("z", "x", "y"))
    except ValueError:
        raise web.HTTPNotFound(text="tile numbers must be integers") from None
    if source is None or not 0 <= z <= MAX_ZOOM or not (0 <= x < 1 << z and 0 <= y < 1 << z):
        raise web.HTTPNotFound(text="no such tile")
    try:
        data = await source.tile(z, x, y)
    except sqlite3.Error as exc:
        log.warning("map tile %s/%s/%s could not be read from %s: %s", z, x, y, source.path, exc)
        raise web.HTTPServiceUnavailable(text="the map tiles could not be read") from exc
    if data is None or not data.startswith(PNG):
        raise web.HTTPNotFound(text="no such tile")
    return web.Response(body=data, content_type="image/png",
                        headers={"Cache-Control": "public, max-age=3600"})


def add_routes(app: web.Application) -> None:
    app.cleanup_ctx.append(tiles_context)
    app.router.add_get("/tiles/{z}/{x}/{y}.png", tile)
