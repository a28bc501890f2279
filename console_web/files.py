"""The browser files of this package (scripts, styles, images), served from a folder without
ever reaching outside it or serving a file of another kind."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

SERVED_SUFFIXES = frozenset({".js", ".css", ".png", ".svg"})


def contained_file(root: Path, relative: str) -> Path | None:
    """The file at ``relative`` under ``root`` when it may be served, else None (never a path
    outside ``root``, never a file of another kind)."""
    if not relative or "\\" in relative or "\x00" in relative:
        return None
    base = root.resolve()
    candidate = (base / relative).resolve()
    if not candidate.is_relative_to(base) or candidate.suffix not in SERVED_SUFFIXES:
        return None
    return candidate if candidate.is_file() else None


def serve_file(root: Path, relative: str) -> web.FileResponse:
    """The file, revalidated on every load (Last-Modified) so a new release is picked up at
    once; 404 when it may not be served."""
    found = contained_file(root, relative)
    if found is None:
        raise web.HTTPNotFound(text="no such file")
    return web.FileResponse(found, headers={"Cache-Control": "no-cache"})
