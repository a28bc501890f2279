"""A small raster basemap of the demo city, drawn from its address points: each street is a line
through the addresses on it (east-west streets at their mean latitude, north-south ones at their
mean longitude), named at street zoom, with the address points as dots. Plain, but real
geography, and made here without any outside service. Written as an MBTiles file the server
serves at ``/tiles/``.
"""

from __future__ import annotations

import csv
import math
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

TILE = 256
ZOOMS = range(13, 19)
PAD_DEG = 0.006
LAND = (233, 229, 220)
STREET = (255, 255, 255)
CASING = (196, 190, 178)
LABEL = (70, 70, 70)
ADDRESS = (170, 120, 90)


def _pixel(lat: float, lon: float, zoom: int) -> tuple[float, float]:
    """Web Mercator pixel of a point at ``zoom`` (the whole world is 256 * 2**zoom wide)."""
    scale = TILE * (1 << zoom)
    x = (lon + 180.0) / 360.0 * scale
    s = math.sin(math.radians(lat))
    y = (0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)) * scale
    return x, y


def _read_points(csv_path: Path) -> list[tuple[str, float, float]]:
    with csv_path.open(newline="", encoding="utf-8") as handle:
        return [(row["street"], float(row["lat"]), float(row["lon"]))
                for row in csv.DictReader(handle)]


def _streets(points: list[tuple[str, float, float]],
             box: tuple[float, float, float, float]) -> list[tuple[str, tuple[float, float],
                                                               tuple[float, float]]]:
    south, west, north, east = box
    by_street: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for street, lat, lon in points:
        by_street[street].append((lat, lon))
    lines = []
    for street, spots in sorted(by_street.items()):
        lats = [lat for lat, _ in spots]
        lons = [lon for _, lon in spots]
        # Springfield's downtown is a grid: numbered streets run north-south, named ones east-west.
        if street.split()[-2][:1].isdigit():
            lon = sum(lons) / len(lons)
            lines.append((street, (south, lon), (north, lon)))
        else:
            lat = sum(lats) / len(lats)
            lines.append((street, (lat, west), (lat, east)))
    return lines


def _tiles(box: tuple[float, float, float, float]) -> Iterator[tuple[int, int, int]]:
    south, west, north, east = box
    for zoom in ZOOMS:
        x0, y0 = _pixel(north, west, zoom)
        x1, y1 = _pixel(south, east, zoom)
        for x in range(int(x0) // TILE, int(x1) // TILE + 1):
            for y in range(int(y0) // TILE, int(y1) // TILE + 1):
                yield zoom, x, y


def _render(zoom: int, tx: int, ty: int, points: list[tuple[str, float, float]],
            lines: list[tuple[str, tuple[float, float], tuple[float, float]]]) -> bytes:
    image = Image.new("RGB", (TILE, TILE), LAND)
    draw = ImageDraw.Draw(image)
    ox, oy = tx * TILE, ty * TILE
    width = max(2, 2 ** (zoom - 14) * 3)

    def at(lat: float, lon: float) -> tuple[float, float]:
        x, y = _pixel(lat, lon, zoom)
        return x - ox, y - oy

    for outline, colour in ((width + 2, CASING), (width, STREET)):
        for _, start, end in lines:
            draw.line([at(*start), at(*end)], fill=colour, width=outline)
    if zoom >= 17:
        for _, lat, lon in points:
            x, y = at(lat, lon)
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=ADDRESS)
    if zoom >= 16:
        font = ImageFont.load_default(size=11 if zoom < 18 else 13)
        for name, start, end in lines:
            (x0, y0), (_, y1) = at(*start), at(*end)
            # One label per street per tile, where the street crosses the tile's middle.
            if abs(y1 - y0) < 1:
                if 0 <= y0 < TILE:
                    draw.text((TILE / 2, y0 - width), name, fill=LABEL, font=font, anchor="md")
            elif 0 <= x0 < TILE:
                label = Image.new("RGBA", (TILE, 16), (0, 0, 0, 0))
                ImageDraw.Draw(label).text((TILE / 2, 8), name, fill=LABEL, font=font,
                                           anchor="mm")
                turned = label.rotate(90, expand=True)
                image.paste(turned, (int(x0 + width / 2 + 1), 0), turned)
    out = BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def write_basemap(address_points: Path, target: Path) -> int:
    """Draw the basemap of the area around ``address_points`` into the MBTiles file ``target``
    (replaced); returns the number of tiles written."""
    points = _read_points(address_points)
    if not points:
        raise ValueError(f"{address_points} has no address points to draw a basemap around")
    lats = [lat for _, lat, _ in points]
    lons = [lon for _, _, lon in points]
    box = (min(lats) - PAD_DEG, min(lons) - PAD_DEG, max(lats) + PAD_DEG, max(lons) + PAD_DEG)
    lines = _streets(points, box)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    db = sqlite3.connect(partial)
    try:
        db.executescript(
            "CREATE TABLE metadata (name TEXT, value TEXT);"
            "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER,"
            " tile_data BLOB, PRIMARY KEY (zoom_level, tile_column, tile_row));")
        south, west, north, east = box
        db.executemany("INSERT INTO metadata VALUES (?, ?)", [
            ("name", "demo city"), ("format", "png"), ("type", "baselayer"),
            ("minzoom", str(ZOOMS.start)), ("maxzoom", str(ZOOMS.stop - 1)),
            ("bounds", f"{west},{south},{east},{north}"),
            ("attribution", "Streets drawn from the demo's address points")])
        count = 0
        for zoom, x, y in _tiles(box):
            db.execute("INSERT INTO tiles VALUES (?, ?, ?, ?)",
                       (zoom, x, (1 << zoom) - 1 - y, _render(zoom, x, y, points, lines)))
            count += 1
        db.commit()
    finally:
        db.close()
    partial.replace(target)
    return count
