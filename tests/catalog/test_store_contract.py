"""One contract, three engines: every test runs against a SQLite file, a real redis-server and a
real PostgreSQL with PostGIS."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import SecretStr

from catalog.errors import CameraExists, ImportConflict, ImportRejected
from catalog.geo import cone_contains, destination, haversine_m, initial_bearing_deg
from catalog.model import (
    Agent,
    Camera,
    CameraStatus,
    Owner,
    Profile,
    Registrar,
    Site,
    TransferOffer,
    camera_public,
)
from catalog.postgis_store import PostgisCatalog
from catalog.query import Filters, Page
from catalog.redis_store import RedisCatalog
from catalog.shapes import parse_polygon, parse_route
from catalog.sqlite_store import SqliteCatalog
from catalog.store import CatalogStore
from rtcc.config import CameraKind, DatabaseConfig, SharingLevel, TimeWindow
from rtcc.db import Database
from security.secretbox import AesGcmBox

FIJI = (-17.7134, 179.9995)


async def _open(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> CatalogStore:
    if engine == "sqlite":
        return await SqliteCatalog.open(tmp_path / "catalog.sqlite3")
    if engine == "postgis":
        url = request.getfixturevalue("postgres_url")
        database = Database(DatabaseConfig(url=SecretStr(url), migrate_on_start=True), tmp_path)
        return await PostgisCatalog.open(database, owns_database=True)
    url = request.getfixturevalue("redis_url")
    return await RedisCatalog.open(url)


@pytest.fixture(params=["sqlite", "redis", "postgis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CatalogStore]:
    opened = await _open(request.param, tmp_path, request)
    try:
        yield opened
    finally:
        await opened.aclose()


def cam(camera_id: str, lat: float, lon: float, **fields: object) -> Camera:
    fields.setdefault("name", f"Camera {camera_id}")
    return Camera(id=camera_id, lat=lat, lon=lon, **fields)  # type: ignore[arg-type]


def ids(result: object) -> list[str]:
    return [hit.camera.id for hit in result.hits]  # type: ignore[attr-defined]


# -- records ----------------------------------------------------------------------------------


async def test_round_trip_keeps_every_field_and_hides_the_password(store: CatalogStore) -> None:
    box = AesGcmBox(os.urandom(32))
    camera = cam(
        "front-door", 39.8017, -89.6438, owner_id="acme", site_id="acme-hq", heading=181.5,
        fov=75.0, range_m=42.0, kind=CameraKind.SCHOOL, sharing=SharingLevel.LIVE_EMERGENCY,
        windows=(TimeWindow(days=["mon", "fri"], start="08:00", end="17:30"),),
        timezone="America/Chicago", ptz_allowed=True, preload=True, record=True, via_agent=True,
        profiles={"main": Profile("rtsp://10.0.0.5/main", "viewer", box.encrypt("canary-pw-9"),
                                  "tcp"),
                  "sub": Profile("rtsp://10.0.0.5/sub", transport="udp")},
        registered_by=Registrar.OWNER, owner_sharing=SharingLevel.LIVE_ALWAYS,
        transfer=TransferOffer("front-door.0a1b2c3d", "globex", "pat", 1700000000.5),
    )
    await store.create(camera)
    loaded = await store.get("front-door")
    assert loaded == camera
    await store.put(replace(camera, registered_by=Registrar.DEPARTMENT, owner_sharing=None,
                            transfer=None))
    plain = await store.get("front-door")
    assert plain is not None
    assert (plain.registered_by, plain.owner_sharing, plain.transfer) == (
        Registrar.DEPARTMENT, None, None)
    await store.put(camera)
    loaded = await store.get("front-door")
    assert loaded == camera
    assert box.decrypt(loaded.profiles["main"].password_ciphertext) == "canary-pw-9"
    public = camera_public(loaded, urls=True)
    text = repr(public)
    assert "canary-pw-9" not in text
    assert loaded.profiles["main"].password_ciphertext not in text
    assert public["profiles"]["main"]["has_password"] is True
    assert public["profiles"]["sub"]["has_password"] is False
    hidden = camera_public(loaded, urls=False)
    assert hidden["profiles"] == {name: {"transport": p.transport}
                                  for name, p in loaded.profiles.items()}
    consent = await store.consent_of("front-door")
    assert consent is not None
    assert (consent.owner_id, consent.sharing, consent.ptz_allowed, consent.timezone) == (
        "acme", SharingLevel.LIVE_EMERGENCY, True, "America/Chicago")
    assert consent.windows[0].start == "08:00"
    assert await store.consent_of("nobody") is None
    assert await store.get("nobody") is None


async def test_create_put_delete(store: CatalogStore) -> None:
    await store.create(cam("a", 10.0, 10.0))
    with pytest.raises(CameraExists):
        await store.create(cam("a", 11.0, 11.0))
    assert (await store.get("a")).lat == 10.0  # type: ignore[union-attr]
    assert await store.set_status("a", CameraStatus.LIVE, 1700000000.5)
    replaced = await store.put(cam("a", 12.0, 12.0, name="Renamed"))
    assert replaced is True
    again = await store.get("a")
    assert again is not None
    assert (again.lat, again.name, again.status, again.last_frame_time) == (
        12.0, "Renamed", CameraStatus.LIVE, 1700000000.5)
    # the moved camera is found at its new place only
    assert ids(await store.within_radius(12.0, 12.0, 10)) == ["a"]
    assert ids(await store.within_radius(10.0, 10.0, 10)) == []
    assert await store.put(cam("b", 0.0, 0.0)) is False
    assert await store.count() == 2
    assert await store.delete("a") is True
    assert await store.delete("a") is False
    assert await store.get("a") is None
    assert ids(await store.within_radius(12.0, 12.0, 10)) == []
    assert await store.set_status("a", CameraStatus.LIVE, None) is False
    assert await store.count() == 1


async def test_status_keeps_last_frame_time_when_none_given(store: CatalogStore) -> None:
    await store.create(cam("s", 1.0, 1.0))
    assert (await store.get("s")).status is CameraStatus.UNKNOWN  # type: ignore[union-attr]
    await store.set_status("s", CameraStatus.LIVE, 100.25)
    await store.set_status("s", CameraStatus.RECONNECTING, None)
    loaded = await store.get("s")
    assert loaded is not None
    assert (loaded.status, loaded.last_frame_time) == (CameraStatus.RECONNECTING, 100.25)


async def test_failed_bulk_import_changes_nothing(store: CatalogStore) -> None:
    await store.create(cam("existing", 5.0, 5.0))
    batch = [cam(f"new-{i}", 5.0 + i * 1e-4, 5.0) for i in range(50)] + [cam("existing", 6.0, 6.0)]
    with pytest.raises(ImportConflict) as conflict:
        await store.import_cameras(batch, mode="create")
    assert conflict.value.camera_ids == ["existing"]
    assert await store.count() == 1
    assert (await store.get("existing")).lat == 5.0  # type: ignore[union-attr]
    assert ids(await store.within_radius(5.0, 5.0, 1000)) == ["existing"]

    with pytest.raises(ImportRejected) as rejected:
        await store.import_cameras([cam("x", 1.0, 1.0), cam("y", 1.0, 1.0), cam("x", 2, 2)])
    assert [(e.row, e.field) for e in rejected.value.errors] == [(3, "id")]
    assert await store.count() == 1

    assert await store.import_cameras(batch, mode="upsert") == 51
    assert await store.count() == 51
    assert (await store.get("existing")).lat == 6.0  # type: ignore[union-attr]


async def test_reopen_keeps_the_catalog(request: pytest.FixtureRequest, tmp_path: Path,
                                        store: CatalogStore) -> None:
    await store.import_cameras([cam("p1", 1.0, 2.0), cam("p2", 1.0, 2.001)])
    await store.set_status("p1", CameraStatus.ERROR, 5.0)
    other = await _open(store.engine, tmp_path, request)
    try:
        assert await other.count() == 2
        assert (await other.get("p1")).status is CameraStatus.ERROR  # type: ignore[union-attr]
        assert ids(await other.nearest(1.0, 2.0, limit=1)) == ["p1"]
    finally:
        await other.aclose()


# -- geographic queries -----------------------------------------------------------------------


async def test_nearest_gives_distance_and_bearing(store: CatalogStore) -> None:
    lat, lon = 39.8017, -89.6438
    cameras = [cam(f"c{i}", *destination(lat, lon, bearing, dist))
               for i, (bearing, dist) in enumerate([(0, 30), (90, 10), (200, 500), (270, 2500),
                                                    (45, 40_000)])]
    await store.import_cameras(cameras)
    result = await store.nearest(lat, lon, limit=3)
    assert ids(result) == ["c1", "c0", "c2"]
    first = result.hits[0]
    assert first.distance_m == pytest.approx(10.0, abs=0.01)
    assert first.bearing_deg == pytest.approx(90.0, abs=0.01)
    assert result.hits[2].bearing_deg == pytest.approx(200.0, abs=0.01)
    # nearest-N looks as far as needed, up to the radius
    assert ids(await store.nearest(lat, lon, limit=10)) == ["c1", "c0", "c2", "c3", "c4"]
    assert ids(await store.nearest(lat, lon, limit=10, radius_m=1000)) == ["c1", "c0", "c2"]
    assert ids(await store.nearest(lat, lon, limit=2, offset=2)) == ["c2", "c3"]


async def test_radius_boundary_and_paging(store: CatalogStore) -> None:
    lat, lon = 51.5, -0.12
    await store.import_cameras([
        cam("in", *destination(lat, lon, 33, 499.0)),
        cam("out", *destination(lat, lon, 33, 501.0)),
        *[cam(f"n{i:02d}", *destination(lat, lon, i * 17, 10.0 + i)) for i in range(25)],
    ])
    result = await store.within_radius(lat, lon, 500, page=Page(offset=20, limit=10))
    assert result.total == 26
    assert ids(result) == ["n20", "n21", "n22", "n23", "n24", "in"]
    assert all(h.distance_m is not None and h.distance_m <= 500 for h in result.hits)


async def test_antimeridian(store: CatalogStore) -> None:
    east = cam("fiji-east", FIJI[0], 179.9995)
    west = cam("fiji-west", FIJI[0], -179.9995)
    far = cam("greenwich", FIJI[0], 0.0)
    await store.import_cameras([east, west, far])
    # 0.001 degrees of longitude apart across the date line: about 106 m
    result = await store.within_radius(FIJI[0], 180.0, 200)
    assert sorted(ids(result)) == ["fiji-east", "fiji-west"]
    assert ids(await store.nearest(FIJI[0], -179.9999, limit=2)) == ["fiji-west", "fiji-east"]
    near_west = await store.nearest(FIJI[0], -179.9999, limit=2)
    assert near_west.hits[1].distance_m == pytest.approx(
        haversine_m(FIJI[0], -179.9999, FIJI[0], 179.9995), abs=0.01)
    polygon = parse_polygon({"type": "Polygon", "coordinates": [[
        [179.999, -17.72], [-179.999, -17.72], [-179.999, -17.70], [179.999, -17.70],
        [179.999, -17.72]]]})
    assert ids(await store.within_polygon(polygon)) == ["fiji-east", "fiji-west"]
    route = parse_route({"type": "LineString", "coordinates": [[179.99, -17.7134],
                                                              [-179.99, -17.7134]]}, 50)
    along = await store.along_route(route)
    assert ids(along) == ["fiji-east", "fiji-west"]
    assert along.hits[0].along_m < along.hits[1].along_m  # type: ignore[operator]
    looking_east = cam("fiji-looks-east", FIJI[0], 179.9995, heading=90, fov=30, range_m=200)
    await store.put(looking_east)
    seeing = await store.can_see(FIJI[0], -179.9993)
    assert ids(seeing) == ["fiji-looks-east"]
    assert seeing.hits[0].sees is True


async def test_near_the_poles(store: CatalogStore) -> None:
    await store.import_cameras([
        cam("north-a", 89.999, 0.0),
        cam("north-b", 89.999, 180.0),
        cam("arctic", 86.0, 45.0),  # beyond the latitude Redis GEO can index
        cam("south", -89.9995, 120.0, fov=360, range_m=100),
        cam("edge", 85.0, 10.0),
    ])
    across = await store.within_radius(90.0, 0.0, 300)
    assert sorted(ids(across)) == ["north-a", "north-b"]
    assert ids(await store.nearest(89.999, 90.0, limit=2)) == ["north-a", "north-b"] or ids(
        await store.nearest(89.999, 90.0, limit=2)) == ["north-b", "north-a"]
    assert ids(await store.within_radius(86.0005, 45.0, 100)) == ["arctic"]
    assert ids(await store.nearest(85.0, 10.0, limit=1)) == ["edge"]
    sees = await store.can_see(-90.0, 0.0)
    assert ids(sees) == ["south"]
    assert ids(await store.within_radius(-90.0, -60.0, 100)) == ["south"]


async def test_can_see_cone_edges(store: CatalogStore) -> None:
    lat, lon = 40.0, -75.0
    await store.put(cam("cone", lat, lon, heading=90.0, fov=60.0, range_m=100.0))
    cases = {
        (119.5, 50.0): True,   # inside the edge of the 60-degree cone
        (120.5, 50.0): False,  # just outside it
        (60.5, 50.0): True,
        (59.5, 50.0): False,
        (90.0, 99.0): True,    # inside the range
        (90.0, 101.0): False,  # beyond it
    }
    for (bearing, dist), expected in cases.items():
        p_lat, p_lon = destination(lat, lon, bearing, dist)
        assert cone_contains(lat, lon, 90.0, 60.0, 100.0, p_lat, p_lon) is expected
        found = ids(await store.can_see(p_lat, p_lon))
        assert found == (["cone"] if expected else []), (bearing, dist)


async def test_can_see_wraps_north_and_ranks_seeing_first(store: CatalogStore) -> None:
    lat, lon = -33.86, 151.21
    target = destination(lat, lon, 0.0, 5.0)
    await store.import_cameras([
        # 150 m south, looking north across 0/360 with a 40 degree cone: sees the target
        cam("far-north-looker", *destination(*target, 180.0, 150.0), heading=350.0, fov=40.0,
            range_m=200.0),
        # 3 m away but looking away
        cam("close-but-away", *destination(*target, 90.0, 3.0), heading=90.0, fov=60.0),
        # a fisheye 20 m away
        cam("fisheye", *destination(*target, 270.0, 20.0), fov=360.0, range_m=25.0),
        cam("too-far", *destination(*target, 0.0, 400.0), heading=180.0, fov=90.0, range_m=60),
    ])
    result = await store.can_see(*target, near_m=100.0)
    assert ids(result) == ["fisheye", "far-north-looker", "close-but-away"]
    assert [h.sees for h in result.hits] == [True, True, False]
    assert result.total == 3
    assert result.hits[1].distance_m == pytest.approx(150.0, abs=0.01)
    assert result.hits[1].bearing_deg == pytest.approx(180.0, abs=0.01)
    only = await store.can_see(*target)
    assert ids(only) == ["fisheye", "far-north-looker"]


async def test_polygon_with_hole_and_route(store: CatalogStore) -> None:
    await store.import_cameras([
        cam("inside", 0.5, 0.5), cam("in-hole", 0.25, 0.25), cam("outside", 1.5, 0.5),
        cam("on-route-1", 0.0005, 0.2), cam("on-route-2", -0.0005, 0.9),
        cam("off-route", 0.01, 0.5),
    ])
    polygon = parse_polygon({"type": "Polygon", "coordinates": [
        [[0.1, 0.1], [0.99, 0.1], [0.99, 0.99], [0.1, 0.99], [0.1, 0.1]],
        [[0.2, 0.2], [0.3, 0.2], [0.3, 0.3], [0.2, 0.3], [0.2, 0.2]],
    ]})
    assert ids(await store.within_polygon(polygon)) == ["inside"]
    route = parse_route({"type": "LineString", "coordinates": [[0.0, 0.0], [1.0, 0.0]]}, 100)
    result = await store.along_route(route)
    assert ids(result) == ["on-route-1", "on-route-2"]
    assert result.hits[0].distance_m == pytest.approx(55.6, abs=0.5)


async def test_filters_and_listing(store: CatalogStore) -> None:
    cameras = []
    for i in range(30):
        cameras.append(cam(
            f"f{i:02d}", 20.0 + i * 1e-5, 30.0, heading=0, fov=360, range_m=100,
            sharing=[SharingLevel.LIVE_ALWAYS, SharingLevel.REGISTRY_ONLY][i % 2],
            kind=[CameraKind.PUBLIC, CameraKind.SCHOOL, CameraKind.BUSINESS][i % 3],
            owner_id=f"owner-{i % 5}",
        ))
    await store.import_cameras(cameras)
    await store.set_status("f00", CameraStatus.LIVE, 1.0)
    await store.set_status("f06", CameraStatus.LIVE, 1.0)
    live_public = Filters(sharing=frozenset({SharingLevel.LIVE_ALWAYS}),
                          kind=frozenset({CameraKind.PUBLIC}))
    expected = [f"f{i:02d}" for i in range(30) if i % 2 == 0 and i % 3 == 0]
    assert ids(await store.nearest(20.0, 30.0, limit=30, filters=live_public)) == expected
    assert sorted(ids(await store.within_radius(20.0, 30.0, 500, filters=live_public,
                                                page=Page(limit=100)))) == expected
    assert sorted(ids(await store.can_see(20.0, 30.0, filters=live_public,
                                          page=Page(limit=100)))) == expected
    live = Filters(status=frozenset({CameraStatus.LIVE}))
    assert sorted(ids(await store.within_radius(20.0, 30.0, 500, filters=live))) == ["f00", "f06"]
    owners = Filters(owner=frozenset({"owner-1", "owner-2"}))
    page1 = await store.list_cameras(owners, limit=5)
    page2 = await store.list_cameras(owners, after=page1[-1].id, limit=100)
    listed = [c.id for c in page1 + page2]
    assert listed == [f"f{i:02d}" for i in range(30) if i % 5 in (1, 2)]
    assert len([c async for c in store.iter_cameras(batch=7)]) == 30


async def test_owners_sites_agents(store: CatalogStore) -> None:
    await store.put_owner(Owner("acme", "ACME Hardware", "Pat", "pat@acme.test", "555-0100"))
    await store.put_site(Site("acme-hq", "acme", "1 Main St", ((0.0, 0.0), (0.001, 0.0),
                                                                (0.001, 0.001)), True))
    await store.put_agent(Agent("agent-1", "acme", ("front-door", "dock"), 1700000000.0))
    assert await store.get_owner("acme") == Owner("acme", "ACME Hardware", "Pat",
                                                  "pat@acme.test", "555-0100")
    site = await store.get_site("acme-hq")
    assert site is not None
    assert site.soft_target is True
    assert site.outline[1] == (0.001, 0.0)
    assert (await store.list_agents())[0].camera_ids == ("front-door", "dock")
    assert [o.id for o in await store.list_owners()] == ["acme"]
    assert [s.id for s in await store.list_sites()] == ["acme-hq"]
    assert await store.delete_agent("agent-1") is True
    assert await store.get_agent("agent-1") is None
    assert await store.delete_owner("nobody") is False
    assert await store.delete_site("acme-hq") is True


async def test_random_registry_matches_brute_force(store: CatalogStore) -> None:
    rng = random.Random(5)
    center = (64.1466, -21.9426)
    cameras = [
        cam(f"r{i:04d}", center[0] + rng.uniform(-0.02, 0.02), center[1] + rng.uniform(-0.04, 0.04),
            heading=rng.uniform(0, 360), fov=rng.choice([30.0, 60.0, 90.0, 120.0, 360.0]),
            range_m=rng.choice([20.0, 60.0, 150.0, 400.0, 1200.0]))
        for i in range(1500)
    ]
    await store.import_cameras(cameras)
    for _ in range(15):
        p = (center[0] + rng.uniform(-0.02, 0.02), center[1] + rng.uniform(-0.04, 0.04))
        seeing = {c.id for c in cameras
                  if cone_contains(c.lat, c.lon, c.heading, c.fov, c.range_m, *p)}
        result = await store.can_see(*p, page=Page(limit=1000))
        assert set(ids(result)) == seeing
        within = sorted((haversine_m(*p, c.lat, c.lon), c.id) for c in cameras
                        if haversine_m(*p, c.lat, c.lon) <= 700)
        got = await store.within_radius(*p, 700, page=Page(limit=1000))
        assert ids(got) == [i for _, i in within]
        nearest = await store.nearest(*p, limit=7)
        assert ids(nearest) == [i for _, i in within[:7]]
        assert nearest.hits[0].bearing_deg == pytest.approx(initial_bearing_deg(
            *p, *next((c.lat, c.lon) for c in cameras if c.id == within[0][1])))


async def test_put_changes_the_view_cone(store: CatalogStore) -> None:
    base = cam("turns", 10.0, 10.0, heading=0.0, fov=20.0, range_m=100.0)
    await store.put(base)
    north = destination(10.0, 10.0, 0.0, 50.0)
    south = destination(10.0, 10.0, 180.0, 50.0)
    assert ids(await store.can_see(*north)) == ["turns"]
    await store.put(replace(base, heading=180.0, range_m=1500.0))
    assert ids(await store.can_see(*north)) == []
    assert ids(await store.can_see(*south)) == ["turns"]
    assert ids(await store.can_see(*destination(10.0, 10.0, 180.0, 1400.0))) == ["turns"]


async def test_dense_downtown_nearest_matches_brute_force_with_ties(store: CatalogStore) -> None:
    """Thousands of cameras within a few hundred metres, some sharing a position: nearest-N
    (which narrows its circle where cameras are dense) and the radius query still rank by
    distance then id, return whole records with their live status, and honour filters."""
    rng = random.Random(11)
    center = (41.8781, -87.6298)
    cameras: list[Camera] = []
    for i in range(3000):
        if i % 10 == 0 and cameras:  # a second camera on the same pole as an earlier one
            twin = cameras[rng.randrange(len(cameras))]
            lat, lon = twin.lat, twin.lon
        else:
            lat = center[0] + rng.gauss(0, 0.002)
            lon = center[1] + rng.gauss(0, 0.0027)
        cameras.append(cam(f"d{i:04d}", lat, lon, heading=rng.uniform(0, 360),
                           sharing=rng.choice(list(SharingLevel)),
                           range_m=rng.choice([30.0, 60.0, 200.0])))
    await store.import_cameras(cameras)
    for camera in cameras[:300:7]:
        assert await store.set_status(camera.id, CameraStatus.LIVE, 1_700_000_000.5)
    stored = await store.get_many([c.id for c in cameras])
    live = Filters(sharing=frozenset({SharingLevel.LIVE_ALWAYS}))
    for _ in range(12):
        p = (center[0] + rng.gauss(0, 0.002), center[1] + rng.gauss(0, 0.0027))
        ranked = sorted((haversine_m(*p, c.lat, c.lon), c.id) for c in cameras)
        for limit, offset in ((20, 0), (5, 3), (1, 0)):
            result = await store.nearest(*p, limit=limit, offset=offset)
            assert ids(result) == [i for _, i in ranked[offset:offset + limit]]
            assert [h.camera for h in result.hits] == [stored[h.camera.id] for h in result.hits]
        shared = [i for _, i in ranked if stored[i].sharing == SharingLevel.LIVE_ALWAYS]
        assert ids(await store.nearest(*p, limit=20, filters=live)) == shared[:20]
        within = [i for d, i in ranked if d <= 300.0]
        got = await store.within_radius(*p, 300.0, page=Page(offset=50, limit=100))
        assert ids(got) == within[50:150]
        assert got.total == len(within)
        assert [h.camera for h in got.hits] == [stored[i] for i in within[50:150]]


async def test_an_owner_lowering_sharing_shows_in_the_very_next_search(
    store: CatalogStore,
) -> None:
    """Decoded cameras are cached between searches; a consent change must never be served from
    that cache: the very next search of every kind shows the lowered sharing."""
    from catalog.search import DECODED

    shared = cam("porch", 20.0, 20.0, owner_id="owner-1", sharing=SharingLevel.LIVE_ALWAYS,
                 owner_sharing=SharingLevel.LIVE_ALWAYS, heading=0.0, fov=360.0, range_m=100.0)
    await store.put(shared)
    await store.put(cam("street", 20.0001, 20.0, sharing=SharingLevel.LIVE_ALWAYS))
    live = Filters(sharing=frozenset({SharingLevel.LIVE_ALWAYS}))
    point = destination(20.0, 20.0, 90.0, 30.0)

    async def searches() -> list[dict[str, SharingLevel]]:
        results = [await store.nearest(*point), await store.within_radius(*point, 500.0),
                   await store.can_see(*point, near_m=500.0)]
        return [{h.camera.id: h.camera.sharing for h in r.hits} for r in results]

    await searches()
    hits_before = DECODED.hits
    assert all(found["porch"] == SharingLevel.LIVE_ALWAYS for found in await searches())
    assert DECODED.hits > hits_before  # the cache is warm and answering
    assert "porch" in ids(await store.within_radius(*point, 500.0, filters=live))

    await store.put(replace(shared, sharing=SharingLevel.REGISTRY_ONLY,
                            owner_sharing=SharingLevel.REGISTRY_ONLY))
    assert all(found["porch"] == SharingLevel.REGISTRY_ONLY for found in await searches())
    assert ids(await store.within_radius(*point, 500.0, filters=live)) == ["street"]
    assert ids(await store.nearest(*point, filters=live)) == ["street"]
    consent = await store.consent_of("porch")
    assert consent is not None
    assert consent.sharing == SharingLevel.REGISTRY_ONLY
