"""Offline geocoding of civic addresses against the department's address points file.

The file is CSV (columns ``number``, ``street``, ``city``, ``lat``, ``lon``; ``state`` and
``zip`` optional) or GeoJSON (Point features with ``number``/``street``/``city`` properties, or
``address`` holding the whole line). Every function here is plain and synchronous: loading reads a
file and matching is CPU work, so the caller runs them off the event loop (in its executor).

An address is parsed with ``usaddress``, normalised (USPS suffix and direction abbreviations,
upper case), and matched with ``rapidfuzz``: the house number must be equal, the street is
compared fuzzily, the city (when both sides have one) must agree.
``configs/demo-address-points.csv`` holds synthetic points on real downtown streets of
Springfield, Illinois, for the demo.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

# usaddress ships a .pyi without a py.typed marker, so mypy will not read it.
import usaddress  # type: ignore[import-untyped]
from rapidfuzz import fuzz, process

from incidents.model import CivicLocation
from rtcc.errors import ConfigError

DEFAULT_THRESHOLD = 85.0
MAX_POINTS = 2_000_000

_SUFFIXES = {
    "STREET": "ST", "STR": "ST", "AVENUE": "AVE", "AV": "AVE", "AVN": "AVE", "BOULEVARD": "BLVD",
    "BOUL": "BLVD", "DRIVE": "DR", "DRV": "DR", "ROAD": "RD", "LANE": "LN", "COURT": "CT",
    "PLACE": "PL", "PARKWAY": "PKWY", "PKY": "PKWY", "HIGHWAY": "HWY", "TERRACE": "TER",
    "CIRCLE": "CIR", "SQUARE": "SQ", "PLAZA": "PLZ", "TRAIL": "TRL", "WAY": "WAY",
    "EXPRESSWAY": "EXPY", "ALLEY": "ALY", "CENTER": "CTR",
}
_DIRECTIONS = {
    "NORTH": "N", "SOUTH": "S", "EAST": "E", "WEST": "W", "NORTHEAST": "NE", "NORTHWEST": "NW",
    "SOUTHEAST": "SE", "SOUTHWEST": "SW", "NO": "N", "SO": "S",
}
_ORDINALS = {
    "FIRST": "1ST", "SECOND": "2ND", "THIRD": "3RD", "FOURTH": "4TH", "FIFTH": "5TH",
    "SIXTH": "6TH", "SEVENTH": "7TH", "EIGHTH": "8TH", "NINTH": "9TH", "TENTH": "10TH",
}


@dataclass(frozen=True, slots=True)
class AddressPoint:
    number: str
    street: str  # normalised: "S 2ND ST"
    city: str  # upper case, may be ""
    lat: float
    lon: float
    label: str  # as written in the file, for people


@dataclass(frozen=True, slots=True)
class GeocodeResult:
    """``point`` and ``score`` (0-100) on a match; otherwise ``point`` is None and ``reason``
    says why."""

    point: AddressPoint | None
    score: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ParsedAddress:
    number: str
    street: str
    city: str


class AddressIndex:
    """Address points grouped by house number, for matching."""

    def __init__(self, points: list[AddressPoint]) -> None:
        self.points = tuple(points)
        self._by_number: dict[str, list[AddressPoint]] = {}
        for point in points:
            self._by_number.setdefault(point.number, []).append(point)

    def __len__(self) -> int:
        return len(self.points)

    def geocode(self, address: str | CivicLocation, *,
                threshold: float = DEFAULT_THRESHOLD) -> GeocodeResult:
        """The best address point for ``address`` scoring at least ``threshold``."""
        text = address.text if isinstance(address, CivicLocation) else address
        parsed = parse_address(address)
        if parsed is None:
            return GeocodeResult(None, 0.0, f"could not read a house number and street in "
                                            f"{text[:120]!r}")
        candidates = [p for p in self._by_number.get(parsed.number, ())
                      if not parsed.city or not p.city or p.city == parsed.city]
        if candidates:
            best = process.extractOne(parsed.street, [p.street for p in candidates],
                                      scorer=fuzz.token_sort_ratio)
            if best is not None and best[1] >= threshold:
                return GeocodeResult(candidates[best[2]], float(best[1]))
        return GeocodeResult(None, 0.0, f"no address point matches {text[:120]!r}")


def normalise_street(text: str) -> str:
    words = re.sub(r"[.,#]", " ", text.upper()).split()
    out = []
    for i, word in enumerate(words):
        last = i == len(words) - 1
        if word in _DIRECTIONS and (i == 0 or last) and len(words) > 1:
            out.append(_DIRECTIONS[word])
        elif word in _SUFFIXES and last and i > 0:
            out.append(_SUFFIXES[word])
        else:
            out.append(_ORDINALS.get(word, word))
    return " ".join(out)


def parse_address(address: str | CivicLocation) -> ParsedAddress | None:
    """House number, normalised street and city of a one-line address or a civic location."""
    if isinstance(address, CivicLocation):
        number = " ".join(v for v in (address.get("HNO"), address.get("HNS")) if v)
        street = " ".join(v for k in ("PRD", "RD", "STS", "POD") if (v := address.get(k)))
        if number and street:
            return ParsedAddress(number.upper().replace(" ", ""), normalise_street(street),
                                 (address.get("A3") or "").upper())
        address = address.text
    try:
        tags, _ = usaddress.tag(address[:300])
    except usaddress.RepeatedLabelError:
        tags = {}
    number = tags.get("AddressNumber", "")
    street = " ".join(tags[k] for k in ("StreetNamePreDirectional", "StreetNamePreType",
                                        "StreetName", "StreetNamePostType",
                                        "StreetNamePostDirectional") if tags.get(k))
    city = tags.get("PlaceName", "")
    if not number or not street:
        match = re.match(r"\s*(\d+[A-Za-z]?)\s+([^,]+)(?:,\s*([^,]+))?", address)
        if match is None:
            return None
        number, street, city = match.group(1), match.group(2), match.group(3) or ""
    return ParsedAddress(number.upper(), normalise_street(street), city.strip().upper())


# -- Loading (blocking: run in an executor) -----------------------------------------------------


def load_address_points(path: Path) -> AddressIndex:
    """Read a CSV or GeoJSON address points file. Blocking; raises ConfigError naming the file
    and the row or feature that is wrong."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"address points file {path}: cannot be read ({exc})") from None
    if path.suffix.lower() in (".geojson", ".json"):
        return AddressIndex(_from_geojson(text, path))
    return AddressIndex(_from_csv(text, path))


def _point(number: object, street: object, city: object, lat: object, lon: object,
           where: str) -> AddressPoint:
    try:
        lat_f, lon_f = float(str(lat)), float(str(lon))
    except ValueError:
        raise ConfigError(f"{where}: lat and lon must be numbers, found {lat!r}, {lon!r}") from None
    if not (math.isfinite(lat_f) and math.isfinite(lon_f)
            and -90 <= lat_f <= 90 and -180 <= lon_f <= 180):
        raise ConfigError(f"{where}: ({lat_f}, {lon_f}) is not a latitude and longitude")
    number_s, street_s = str(number or "").strip(), str(street or "").strip()
    if not number_s or not street_s:
        raise ConfigError(f"{where}: number and street are required")
    city_s = str(city or "").strip()
    label = f"{number_s} {street_s}" + (f", {city_s}" if city_s else "")
    return AddressPoint(number_s.upper().replace(" ", ""), normalise_street(street_s),
                        city_s.upper(), lat_f, lon_f, label)


def _from_csv(text: str, path: Path) -> list[AddressPoint]:
    reader = csv.DictReader(text.splitlines())
    columns = {c.strip().lower(): c for c in reader.fieldnames or ()}
    missing = [c for c in ("number", "street", "lat", "lon") if c not in columns]
    if missing:
        raise ConfigError(f"address points file {path}: missing column(s) {', '.join(missing)}; "
                          "the header needs number, street, city, lat, lon")
    points: list[AddressPoint] = []
    for line, row in enumerate(reader, start=2):
        if len(points) >= MAX_POINTS:
            raise ConfigError(f"address points file {path}: more than {MAX_POINTS} rows")
        points.append(_point(row.get(columns["number"]), row.get(columns["street"]),
                             row.get(columns.get("city", "city"), ""),
                             row.get(columns["lat"]), row.get(columns["lon"]),
                             f"address points file {path}, line {line}"))
    return points


def _from_geojson(text: str, path: Path) -> list[AddressPoint]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"address points file {path}: not JSON ({exc})") from None
    features = data.get("features") if isinstance(data, dict) else None
    if not isinstance(features, list):
        raise ConfigError(f"address points file {path}: expected a GeoJSON FeatureCollection")
    points: list[AddressPoint] = []
    for i, feature in enumerate(features[:MAX_POINTS]):
        where = f"address points file {path}, feature {i}"
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        props = feature.get("properties") if isinstance(feature, dict) else None
        coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
        if not (isinstance(geometry, dict) and geometry.get("type") == "Point"
                and isinstance(coords, list) and len(coords) >= 2 and isinstance(props, dict)):
            raise ConfigError(f"{where}: expected a Point feature with address properties")
        number, street = props.get("number"), props.get("street")
        if (not number or not street) and isinstance(props.get("address"), str):
            parsed = parse_address(props["address"])
            if parsed is not None:
                number, street = parsed.number, parsed.street
                props = {**props, "city": props.get("city") or parsed.city}
        # GeoJSON coordinates are [lon, lat].
        points.append(_point(number, street, props.get("city"), coords[1], coords[0], where))
    return points
