"""Civic addresses matched offline against the demo city's address points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from incidents.geocode import load_address_points, parse_address
from incidents.model import CivicLocation
from rtcc.errors import ConfigError

DEMO = Path(__file__).parent.parent.parent / "configs" / "demo-address-points.csv"


def test_demo_points_load_around_the_capitol() -> None:
    index = load_address_points(DEMO)
    assert len(index) >= 40
    assert all(39.79 < p.lat < 39.81 and -89.66 < p.lon < -89.64 for p in index.points)


@pytest.mark.parametrize("text", [
    "401 S 2nd St, Springfield, IL 62701",
    "401 South Second Street, Springfield",
    "401 s. 2nd street",
])
def test_spellings_of_one_address_match(text: str) -> None:
    result = load_address_points(DEMO).geocode(text)
    assert result.point is not None
    assert (result.point.lat, result.point.lon) == (39.7983, -89.6544)
    assert result.score >= 85


def test_civic_location_matches_by_its_fields() -> None:
    civic = CivicLocation((("HNO", "401"), ("PRD", "S"), ("RD", "2nd"), ("STS", "Street"),
                           ("A3", "Springfield")), "401 S 2nd Street, Springfield")
    result = load_address_points(DEMO).geocode(civic)
    assert result.point is not None
    assert result.point.label == "401 S 2nd St, Springfield"


@pytest.mark.parametrize(("text", "reason"), [
    ("999 Nowhere Rd, Springfield", "no address point matches '999 Nowhere Rd, Springfield'"),
    ("401 S 2nd St, Chicago", "no address point matches '401 S 2nd St, Chicago'"),
    ("402 S 2nd St", "no address point matches '402 S 2nd St'"),
    ("the park", "could not read a house number and street in 'the park'"),
])
def test_unmatched_addresses_say_why(text: str, reason: str) -> None:
    result = load_address_points(DEMO).geocode(text)
    assert result.point is None
    assert result.reason == reason


def test_geojson_points(tmp_path: Path) -> None:
    path = tmp_path / "points.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-89.6492, 39.8001]},
         "properties": {"address": "500 E Monroe St", "city": "Springfield"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [-89.6478, 39.7975]},
         "properties": {"number": "610", "street": "East Jackson Street"}},
    ]}))
    index = load_address_points(path)
    hit = index.geocode("500 East Monroe Street, Springfield, IL")
    assert hit.point is not None
    assert (hit.point.lat, hit.point.lon) == (39.8001, -89.6492)
    hit = index.geocode("610 E Jackson St")
    assert hit.point is not None
    assert hit.point.street == "E JACKSON ST"


def test_bad_files_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_text("number,street,city,lat,lon\n1,Main St,X,39.8,-89.6\n2,Main St,X,north,-89.6\n")
    with pytest.raises(ConfigError, match=r"line 3: lat and lon must be numbers"):
        load_address_points(path)
    path.write_text("num,street,lat,lon\n")
    with pytest.raises(ConfigError, match="missing column"):
        load_address_points(path)


def test_parse_address_normalises() -> None:
    parsed = parse_address("12 North Fifth Avenue, Springfield")
    assert parsed is not None
    assert (parsed.number, parsed.street, parsed.city) == ("12", "N 5TH AVE", "SPRINGFIELD")
