"""Sphere geometry, index boxes, shapes and input checks."""

from __future__ import annotations

import math
import random

import pytest

from catalog.errors import FieldError
from catalog.geo import (
    circle_boxes,
    cone_boxes,
    cone_contains,
    destination,
    haversine_m,
    initial_bearing_deg,
    parse_point,
)
from catalog.shapes import parse_polygon, parse_route
from catalog.validate import parse_windows_text


def test_distances_and_bearings_on_the_sphere() -> None:
    # Paris to London, about 343.5 km on the mean-radius sphere
    assert haversine_m(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343_550, rel=2e-3)
    # one degree of longitude at the equator
    assert haversine_m(0, 0, 0, 1) == pytest.approx(111_195, rel=1e-4)
    # across the antimeridian is short, not the long way round
    assert haversine_m(-17.7, 179.9995, -17.7, -179.9995) == pytest.approx(106, abs=1)
    assert initial_bearing_deg(0, 0, 1, 0) == pytest.approx(0.0)
    assert initial_bearing_deg(0, 0, 0, 1) == pytest.approx(90.0)
    assert initial_bearing_deg(0, 179.9, 0, -179.9) == pytest.approx(90.0)
    assert initial_bearing_deg(0, -179.9, 0, 179.9) == pytest.approx(270.0)
    lat, lon = destination(89.9999, 0.0, 0.0, 50.0)  # over the pole
    assert lon == pytest.approx(-180.0) or lon == pytest.approx(180.0)
    assert haversine_m(89.9999, 0.0, lat, lon) == pytest.approx(50.0, abs=1e-3)


def _inside_any(boxes: list, lat: float, lon: float) -> bool:  # type: ignore[type-arg]
    return any(b.contains(lat, lon) for b in boxes)


@pytest.mark.parametrize("center", [(0.0, 0.0), (-17.7, 179.999), (51.5, -179.9999),
                                    (89.99, 12.0), (-89.999, -150.0), (85.05, 179.5),
                                    (60.0, -0.0001)])
def test_circle_and_cone_boxes_never_miss_a_point(center: tuple[float, float]) -> None:
    rng = random.Random(hash(center))
    for radius in (5.0, 60.0, 900.0, 5000.0):
        boxes = circle_boxes(*center, radius)
        assert all(b.min_lon <= b.max_lon and b.min_lon >= -180 and b.max_lon <= 180
                   for b in boxes)
        heading, fov = rng.uniform(0, 360), rng.choice([10.0, 90.0, 200.0, 360.0])
        cones = cone_boxes(*center, heading, fov, radius)
        for _ in range(300):
            bearing = rng.uniform(0, 360)
            distance = radius * math.sqrt(rng.random()) * 0.999
            lat, lon = destination(*center, bearing, distance)
            assert _inside_any(boxes, lat, lon), (center, radius, bearing, distance)
            if cone_contains(*center, heading, fov, radius, lat, lon):
                assert _inside_any(cones, lat, lon), (center, radius, heading, fov, bearing)


def test_boxes_split_at_the_antimeridian_and_cover_the_pole() -> None:
    fiji = circle_boxes(-17.7, 179.9995, 500)
    assert len(fiji) == 2
    assert {b.max_lon for b in fiji} >= {180.0}
    assert {b.min_lon for b in fiji} >= {-180.0}
    pole = circle_boxes(89.999, 0.0, 500)
    assert len(pole) == 1
    assert (pole[0].min_lon, pole[0].max_lon, pole[0].max_lat) == (-180.0, 180.0, 90.0)


def test_cone_contains_wraps_north() -> None:
    north = destination(10, 10, 2, 50)
    assert cone_contains(10, 10, 355, 20, 60, *north)
    assert not cone_contains(10, 10, 330, 20, 60, *north)
    assert cone_contains(10, 10, 0, 360, 60, *destination(10, 10, 181, 59))
    assert cone_contains(10, 10, 0, 1, 60, 10, 10)  # the camera's own position


def test_polygon_across_the_antimeridian() -> None:
    polygon = parse_polygon({"type": "Polygon", "coordinates": [[
        [179.9, -18.0], [-179.9, -18.0], [-179.9, -17.0], [179.9, -17.0], [179.9, -18.0]]]})
    assert polygon.contains(-17.5, 180.0)
    assert polygon.contains(-17.5, -179.95)
    assert polygon.contains(-17.5, 179.95)
    assert not polygon.contains(-17.5, 0.0)
    assert not polygon.contains(-17.5, 179.8)
    assert len(polygon.boxes()) == 2


def test_polygon_around_a_pole_and_with_a_hole() -> None:
    ring = [[lon, 89.95] for lon in range(-180, 180, 30)]
    cap = parse_polygon({"type": "Polygon", "coordinates": [[*ring, ring[0]]]})
    assert cap.contains(89.99, 77.0)
    assert cap.contains(90.0, 0.0)
    assert not cap.contains(89.9, 77.0)
    assert cap.boxes()[0].max_lat == 90.0
    holed = parse_polygon({"type": "Polygon", "coordinates": [
        [[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]],
        [[0.4, 0.4], [0.6, 0.4], [0.6, 0.6], [0.4, 0.6], [0.4, 0.4]]]})
    assert holed.contains(0.2, 0.2)
    assert not holed.contains(0.5, 0.5)


@pytest.mark.parametrize(("coordinates", "field", "reason"), [
    ([[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]], "polygon", "intersects"),
    ([[[0, 0], [2, 0], [2, 2], [1, 0], [0, 2], [0, 0]]], "polygon", "intersects"),  # touches
    ([[[0, 0], [1, 0], [2, 0], [0, 0]]], "polygon.coordinates[0]", "no area"),
    ([[[0, 0], [1, 0], [0, 0]]], "polygon.coordinates[0]", "at least 3"),
    ([[[0, 0], [1, 0], [1, 91], [0, 0]]], "polygon.coordinates[0][2]", "out of range"),
    ([[[0, 0], [1, 0], ["a", 1], [0, 0]]], "polygon.coordinates[0][2]", "not a number"),
    ([[[0, 0], [5, 0], [5, 5], [0, 5], [0, 0]]], "polygon", "too large"),
])
def test_bad_polygons(coordinates: list, field: str, reason: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(FieldError) as error:
        parse_polygon({"type": "Polygon", "coordinates": coordinates})
    assert (error.value.field, reason in error.value.reason) == (field, True), error.value


def test_polygon_vertex_limit() -> None:
    ring = [[0.001 * math.cos(a / 200), 0.001 * math.sin(a / 200)] for a in range(1257)]
    with pytest.raises(FieldError) as error:
        parse_polygon({"type": "Polygon", "coordinates": [ring]})
    assert error.value.allowed == "at most 1000"


def test_route_distance_and_order() -> None:
    route = parse_route({"type": "LineString", "coordinates": [[0, 0], [0.01, 0], [0.01, 0.01]]},
                        30)
    on_first = route.locate(0.0001, 0.005)
    assert on_first.distance_m == pytest.approx(11.12, abs=0.05)
    assert on_first.along_m == pytest.approx(556.0, abs=1.0)
    corner = route.locate(-0.0001, 0.0101)  # beyond the corner: distance to the vertex
    assert corner.distance_m == pytest.approx(haversine_m(-0.0001, 0.0101, 0, 0.01), abs=0.01)
    on_second = route.locate(0.005, 0.0101)
    assert on_second.along_m > corner.along_m
    with pytest.raises(FieldError) as error:
        parse_route({"type": "LineString", "coordinates": [[0, 0]]}, 30)
    assert error.value.field == "route"
    with pytest.raises(FieldError) as error:
        parse_route({"type": "LineString", "coordinates": [[0, 0], [3, 0]]}, 30)
    assert "at most 200000 m" in error.value.allowed
    with pytest.raises(FieldError) as error:
        parse_route({"type": "LineString", "coordinates": [[0, 0], [0.1, 0]]}, float("nan"))
    assert error.value.field == "buffer_m"


@pytest.mark.parametrize(("text", "reason"), [
    ("91,0", "out of range"), ("-91,0", "out of range"), ("0,181", "out of range"),
    ("NaN,0", "finite"), ("0,-inf", "finite"), ("1e400,0", "finite"), ("x,0", "not a number"),
    ("1", "LAT,LON"), ("1,2,3", "LAT,LON"),
])
def test_point_parsing_names_the_range(text: str, reason: str) -> None:
    with pytest.raises(FieldError) as error:
        parse_point(text, "near")
    assert error.value.field == "near"
    assert reason in error.value.reason or reason in error.value.allowed or \
        reason in str(error.value)


def test_window_text() -> None:
    windows = parse_windows_text("mon-fri 08:00-18:00; sat,sun 10:00-14:00; fri-mon 22:00-24:00")
    assert [w.days for w in windows] == [["mon", "tue", "wed", "thu", "fri"], ["sat", "sun"],
                                         ["fri", "sat", "sun", "mon"]]
    with pytest.raises(FieldError) as error:
        parse_windows_text("mon 08:00-25:00")
    assert error.value.field == "windows[0].end"
    with pytest.raises(FieldError) as error:
        parse_windows_text("someday 08:00-09:00")
    assert error.value.field == "windows[0]"
