"""PIDF-LO read safely: shapes, civic addresses, messy feeds, hostile payloads refused."""

from __future__ import annotations

import pytest

from incidents.model import CivicLocation, PointLocation, PolygonLocation
from incidents.pidf import PidfError, parse_pidf

HEAD = ('<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"'
        ' xmlns:gml="http://www.opengis.net/gml" xmlns:gs="http://www.opengis.net/pidflo/1.0">'
        '<tuple id="a"><status><gp:geopriv><gp:location-info>')
TAIL = "</gp:location-info></gp:geopriv></status></tuple></presence>"


def wrap(shape: str) -> str:
    return HEAD + shape + TAIL


def test_point_pos_is_lat_lon() -> None:
    assert parse_pidf(wrap('<gml:Point srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>39.7983 '
                           "-89.6544</gml:pos></gml:Point>")) == PointLocation(39.7983, -89.6544)


def test_ellipse_becomes_a_circle_of_its_semi_major_axis() -> None:
    got = parse_pidf(wrap(
        '<gs:Ellipse srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>39.79 -89.65</gml:pos>'
        '<gs:semiMajorAxis uom="urn:ogc:def:uom:EPSG::9001">120</gs:semiMajorAxis>'
        '<gs:semiMinorAxis uom="urn:ogc:def:uom:EPSG::9001">40</gs:semiMinorAxis>'
        '<gs:orientation uom="urn:ogc:def:uom:EPSG::9102">30</gs:orientation></gs:Ellipse>'))
    assert got == PointLocation(39.79, -89.65, 120.0, "ellipse")


def test_polygon_of_pos_elements() -> None:
    got = parse_pidf(wrap(
        '<gml:Polygon srsName="urn:ogc:def:crs:EPSG::4326"><gml:exterior><gml:LinearRing>'
        "<gml:pos>39.80 -89.65</gml:pos><gml:pos>39.80 -89.64</gml:pos>"
        "<gml:pos>39.79 -89.64</gml:pos><gml:pos>39.80 -89.65</gml:pos>"
        "</gml:LinearRing></gml:exterior></gml:Polygon>"))
    assert got == PolygonLocation(((39.80, -89.65), (39.80, -89.64), (39.79, -89.64)))


def test_polygon_poslist_in_3d() -> None:
    got = parse_pidf(wrap(
        '<gml:Polygon srsName="urn:ogc:def:crs:EPSG::4979"><gml:exterior><gml:LinearRing>'
        "<gml:posList>39.80 -89.65 10 39.80 -89.64 10 39.79 -89.64 10 39.80 -89.65 10"
        "</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon>"))
    assert isinstance(got, PolygonLocation)
    assert len(got.vertices) == 3


def test_undeclared_prefixes_and_stray_whitespace_are_tolerated() -> None:
    messy = ('\n   <?xml version="1.0"?>  <presence xmlns="urn:ietf:params:xml:ns:pidf">'
             "<gp:location-info><gs:Circle srsName=\"urn:ogc:def:crs:EPSG::4326\">"
             "<gml:pos>\n  39.7983   -89.6544 \n</gml:pos><gs:radius uom=\"urn:ogc:def:uom:EPSG::9001\">"
             "  15 </gs:radius></gs:Circle></gp:location-info></presence>")
    assert parse_pidf(messy) == PointLocation(39.7983, -89.6544, 15.0, "circle")


def test_civic_address() -> None:
    got = parse_pidf(wrap('<ca:civicAddress xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr">'
                          "<ca:country>US</ca:country><ca:A1>IL</ca:A1><ca:A3>Springfield</ca:A3>"
                          "<ca:HNO>500</ca:HNO><ca:PRD>E</ca:PRD><ca:RD>Monroe</ca:RD><ca:STS>St</ca:STS>"
                          "</ca:civicAddress>"))
    assert isinstance(got, CivicLocation)
    assert got.text == "500 E Monroe St, Springfield, IL"


@pytest.mark.parametrize(("xml", "message"), [
    ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
     "<lolz>&lol2;</lolz>", "holds a DTD"),
    ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "http://192.0.2.1/x">]><r>&xxe;</r>',
     "holds a DTD"),
    ('<!DOCTYPE r SYSTEM "http://192.0.2.1/r.dtd"><r/>', "holds a DTD"),
    (wrap('<gml:Point srsName="urn:ogc:def:crs:EPSG::3857"><gml:pos>1 2</gml:pos></gml:Point>'),
     "only EPSG 4326 and 4979"),
    (wrap("<gml:Point><gml:pos>-89.6544 39.7983 1 2</gml:pos></gml:Point>"), "'lat lon'"),
    (wrap("<gml:Point><gml:pos>139.7 -89.6</gml:pos></gml:Point>"), "is not a latitude"),
    (wrap("<gml:Point><gml:pos>nan 1</gml:pos></gml:Point>"), "not a finite number"),
    (wrap('<gs:Circle><gml:pos>39 -89</gml:pos><gs:radius uom="ft">3</gs:radius></gs:Circle>'),
     "only metres"),
    (wrap("<gs:ArcBand/>"), "ArcBand is not supported"),
    (wrap(""), "no geodetic shape and no civicAddress"),
    ("<presence>", "not well-formed"),
    ("x" * 70_000, "more than the 65536 allowed"),
])
def test_refusals_say_why(xml: str, message: str) -> None:
    with pytest.raises(PidfError, match=message.replace("(", r"\(")):
        parse_pidf(xml)
