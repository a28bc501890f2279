"""PIDF-LO ``locationByValue`` (RFC 4119, 5139, 5491) read into a location, safely.

The XML is parsed with defusedxml: a DTD, an entity declaration or an external reference is
refused before anything is expanded or fetched. Real feeds are messy, so a few things are
tolerated: leading whitespace before the XML declaration, prefixes used without a declaration
(``gs:``, ``gml:``, ``con:``...), whitespace around numbers. Elements are matched by local name.
GML ``pos`` is "lat lon [alt]" for EPSG 4326 and 4979, the only reference systems accepted.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

from incidents.model import CivicLocation, PointLocation, PolygonLocation
from rtcc.errors import RtccError

from . import _defused

MAX_PIDF_BYTES = 64 * 1024
MAX_VERTICES = 1000

_KNOWN_PREFIXES = {
    "gml": "http://www.opengis.net/gml",
    "gs": "http://www.opengis.net/pidflo/1.0",
    "gp": "urn:ietf:params:xml:ns:pidf:geopriv10",
    "gbp": "urn:ietf:params:xml:ns:pidf:geopriv10:basicPolicy",
    "ca": "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr",
    "cl": "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr",
    "dm": "urn:ietf:params:xml:ns:pidf:data-model",
    "con": "urn:ietf:params:xml:ns:geopriv:conf",
}
_USED_PREFIX = re.compile(r"</?([A-Za-z_][\w.\-]*):[A-Za-z_]|\s([A-Za-z_][\w.\-]*):[\w.\-]+\s*=")
_DECLARED_PREFIX = re.compile(r"xmlns:([A-Za-z_][\w.\-]*)\s*=")
_ROOT_TAG = re.compile(r"<([A-Za-z_][\w.\-:]*)")
_CRS_OK = re.compile(r"(?:urn:ogc:def:crs:EPSG:[\d.]*:|EPSG:)(4326|4979)$", re.IGNORECASE)
_METRES = {"urn:ogc:def:uom:EPSG::9001", "m", "metre", "meter", "metres", "meters"}

Shape = PointLocation | PolygonLocation | CivicLocation

# CA element order for the one-line text (RFC 4776 / 5139 names).
_CIVIC_LINE = ("HNO", "HNS", "PRD", "RD", "STS", "POD")


class PidfError(RtccError):
    """A PIDF-LO document could not be read; the message says what and why."""


def parse_pidf(data: str | bytes, *, max_bytes: int = MAX_PIDF_BYTES) -> Shape:
    """The first location in a PIDF-LO document: a geodetic shape, else a civic address.

    Raises PidfError (hostile, malformed, too large, no readable location).
    """
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise PidfError(f"the PIDF-LO document is {len(raw)} bytes, more than the {max_bytes} "
                        "allowed")
    raw = raw.lstrip(b"\xef\xbb\xbf \t\r\n")
    root = _parse_xml(raw)
    scope = [e for e in root.iter() if _local(e.tag) == "location-info"] or [root]
    civic: CivicLocation | None = None
    for info in scope:
        for element in info.iter():
            name = _local(element.tag)
            if name in _GEODETIC:
                return _GEODETIC[name](element)
            if name in ("ArcBand", "Prism"):
                raise PidfError(f"the PIDF-LO shape {name} is not supported; send a Point, "
                                "Circle, Ellipse, Ellipsoid, Sphere or Polygon")
            if name == "civicAddress" and civic is None:
                civic = _civic(element)
    if civic is not None:
        return civic
    raise PidfError("the PIDF-LO document holds no geodetic shape and no civicAddress")


# -- XML ---------------------------------------------------------------------------------------


def _parse_xml(raw: bytes) -> ET.Element:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None  # let the parser honour another declared encoding
    if text is not None:
        raw = _declare_missing_prefixes(text).encode("utf-8")
    try:
        return _defused.fromstring(raw)
    except _defused.Forbidden as exc:
        what = _defused.forbidden_what(exc)
        raise PidfError(f"the PIDF-LO document was refused: it holds {what}; DTDs, entities "
                        "and external references are never processed") from None
    except ET.ParseError as exc:
        raise PidfError(f"the PIDF-LO document is not well-formed XML ({exc})") from None
    except (ValueError, LookupError) as exc:  # unknown or mismatched declared encoding
        raise PidfError(f"the PIDF-LO document could not be decoded ({exc})") from None


def _declare_missing_prefixes(text: str) -> str:
    used = {m.group(1) or m.group(2) for m in _USED_PREFIX.finditer(text)}
    missing = sorted(used - set(_DECLARED_PREFIX.findall(text)) - {"xml", "xmlns"})
    if not missing:
        return text
    for match in _ROOT_TAG.finditer(text):
        before = text[max(0, match.start() - 1):match.start()]
        if before in ("?", "!"):
            continue
        decls = "".join(
            f' xmlns:{p}="{_KNOWN_PREFIXES.get(p, "urn:x-undeclared:" + p)}"' for p in missing)
        return text[:match.end()] + decls + text[match.end():]
    return text


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _children(element: ET.Element, name: str) -> Iterator[ET.Element]:
    return (e for e in element.iter() if _local(e.tag) == name)


def _child(element: ET.Element, name: str) -> ET.Element:
    for found in _children(element, name):
        return found
    raise PidfError(f"the {_local(element.tag)} shape has no {name} element")


# -- Geodetic shapes ---------------------------------------------------------------------------


def _check_crs(element: ET.Element) -> None:
    srs = (element.get("srsName") or "").strip()
    if srs and not _CRS_OK.search(srs):
        raise PidfError(f"the {_local(element.tag)} shape uses the reference system {srs[:80]!r}; "
                        "only EPSG 4326 and 4979 (WGS 84, 'lat lon') are accepted")


def _numbers(text: str | None, what: str) -> list[float]:
    parts = (text or "").split()
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise PidfError(f"{what} must hold numbers, found {(text or '').strip()[:60]!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise PidfError(f"{what} holds a value that is not a finite number")
    return values


def _lat_lon(lat: float, lon: float, what: str) -> tuple[float, float]:
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise PidfError(f"{what} ({lat}, {lon}) is not a latitude and longitude "
                        "(GML pos is 'lat lon' for EPSG 4326/4979)")
    return lat, lon


def _pos(element: ET.Element) -> tuple[float, float]:
    values = _numbers(_child(element, "pos").text, "gml:pos")
    if len(values) not in (2, 3):
        raise PidfError(f"gml:pos must hold 'lat lon' or 'lat lon alt', found {len(values)} "
                        "numbers")
    return _lat_lon(values[0], values[1], "gml:pos")


def _length(element: ET.Element, name: str) -> float:
    node = _child(element, name)
    uom = (node.get("uom") or "urn:ogc:def:uom:EPSG::9001").strip()
    if uom not in _METRES:
        raise PidfError(f"{name} is in {uom[:60]!r}; only metres (EPSG::9001) are accepted")
    values = _numbers(node.text, name)
    if len(values) != 1 or values[0] < 0:
        raise PidfError(f"{name} must be one non-negative length in metres")
    return values[0]


def _point(element: ET.Element) -> PointLocation:
    _check_crs(element)
    lat, lon = _pos(element)
    return PointLocation(lat, lon, None, "point")


def _round(radius_name: str, shape: str) -> Callable[[ET.Element], PointLocation]:
    def read(element: ET.Element) -> PointLocation:
        _check_crs(element)
        lat, lon = _pos(element)
        return PointLocation(lat, lon, _length(element, radius_name), shape)
    return read


def _polygon(element: ET.Element) -> PolygonLocation:
    _check_crs(element)
    pos_list = list(_children(element, "posList"))
    if pos_list:
        values = _numbers(pos_list[0].text, "gml:posList")
        dim = 3 if (pos_list[0].get("srsDimension") or element.get("srsDimension")) == "3" \
            or "4979" in (element.get("srsName") or "") else 2
        if len(values) % dim:
            raise PidfError(f"gml:posList holds {len(values)} numbers, not a multiple of {dim}")
        points = [(values[i], values[i + 1]) for i in range(0, len(values), dim)]
    else:
        points = []
        for pos in _children(element, "pos"):
            values = _numbers(pos.text, "gml:pos")
            if len(values) not in (2, 3):
                raise PidfError("each gml:pos of a Polygon must hold 'lat lon' or 'lat lon alt'")
            points.append((values[0], values[1]))
    if len(points) > MAX_VERTICES + 1:
        raise PidfError(f"the Polygon has {len(points)} vertices, more than {MAX_VERTICES}")
    vertices = [_lat_lon(lat, lon, "a Polygon vertex") for lat, lon in points]
    if len(vertices) > 1 and vertices[0] == vertices[-1]:
        vertices.pop()
    if len(vertices) < 3:
        raise PidfError(f"the Polygon has {len(vertices)} distinct vertices; at least 3 are needed")
    return PolygonLocation(tuple(vertices))


_GEODETIC: dict[str, Callable[[ET.Element], PointLocation | PolygonLocation]] = {
    "Point": _point,
    "Circle": _round("radius", "circle"),
    "Sphere": _round("radius", "sphere"),
    "Ellipse": _round("semiMajorAxis", "ellipse"),
    "Ellipsoid": _round("semiMajorAxis", "ellipsoid"),
    "Polygon": _polygon,
}


# -- Civic -------------------------------------------------------------------------------------


def _civic(element: ET.Element) -> CivicLocation:
    fields: list[tuple[str, str]] = []
    for child in element:
        value = " ".join((child.text or "").split())
        if value and len(fields) < 40:
            fields.append((_local(child.tag), value[:200]))
    if not fields:
        raise PidfError("the civicAddress element is empty")
    values = dict(fields)
    street = " ".join(values[k] for k in _CIVIC_LINE if k in values)
    parts = [p for p in (street, values.get("A3"), " ".join(
        v for v in (values.get("A1"), values.get("PC")) if v)) if p]
    return CivicLocation(tuple(fields), ", ".join(parts))
