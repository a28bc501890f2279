"""Catalog benchmark: bulk load and geographic queries, SQLite, Redis and PostGIS side by side.

    python -m benchmarks.catalog_bench --cameras 1000000 [--queries 400] [--see-cameras 100000]
        [--clients 8 --rate 25] [--out benchmarks/results/catalog_bench.json]

A synthetic state-wide registry: 70 % of the cameras in ten cities (Gaussian, sigma 5 km; the
centres are as dense as a downtown), 30 % spread over a 440 x 340 km area. Cameras are loaded
from CSV text in batches of 50,000 (each batch is one all-or-nothing import), measuring parsing
and validation, the store write, and both together. Queries start from points near registered
cameras (incidents happen where people are): nearest 20, all within 500 m (first page of 100 and
the total), and "can see" on a registry of ``--see-cameras`` cameras: alone, then under load
(``--clients`` asking ``--rate`` queries a second each), then saturated (the same clients asking
back to back). Prints one JSON document and writes it to ``--out``, with the load average.
Needs ``redis-server`` on the PATH for the Redis side, and Debian's PostgreSQL with PostGIS for
the PostGIS side, which runs a cluster of its own in a temporary folder, started as the tests start
theirs (``tests.fixtures.postgres``: the same settings, fsync off); each is skipped, and said so,
when missing.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import math
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from catalog.io import cameras_from_rows, csv_rows
from catalog.postgis_store import PostgisCatalog
from catalog.redis_store import RedisCatalog
from catalog.sqlite_store import SqliteCatalog
from catalog.store import STORE_ERRORS, CatalogStore
from rtcc.config import DatabaseConfig
from rtcc.db import Database

BATCH = 50_000
RESULTS = Path(__file__).parent / "results" / "catalog_bench.json"
BOX = (38.0, 42.0, -91.0, -87.0)
KINDS = ("public", "business", "residential", "school", "worship", "hospital", "other")
SHARING = ("registry_only", "on_request", "live_emergency", "live_always")


def _cities(rng: random.Random) -> list[tuple[float, float]]:
    return [(rng.uniform(BOX[0] + 0.3, BOX[1] - 0.3), rng.uniform(BOX[2] + 0.3, BOX[3] - 0.3))
            for _ in range(10)]


def _position(rng: random.Random, cities: list[tuple[float, float]]) -> tuple[float, float]:
    if rng.random() < 0.7:
        lat, lon = rng.choice(cities)
        sigma_deg = 5000.0 / 111_195.0
        return (lat + rng.gauss(0, sigma_deg),
                lon + rng.gauss(0, sigma_deg / math.cos(math.radians(lat))))
    return rng.uniform(BOX[0], BOX[1]), rng.uniform(BOX[2], BOX[3])


def csv_batches(count: int, seed: int) -> Iterator[bytes]:
    """The registry as CSV files of at most BATCH rows."""
    rng = random.Random(seed)
    cities = _cities(rng)
    for start in range(0, count, BATCH):
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["id", "name", "lat", "lon", "heading", "fov", "range_m", "kind",
                         "sharing", "owner_id"])
        for i in range(start, min(count, start + BATCH)):
            lat, lon = _position(rng, cities)
            writer.writerow([f"cam-{i:07d}", f"Camera {i}", f"{lat:.6f}", f"{lon:.6f}",
                             f"{rng.uniform(0, 360):.1f}",
                             rng.choice(("60", "90", "90", "110", "360")),
                             rng.choice(("30", "60", "60", "100", "200")),
                             rng.choice(KINDS), rng.choice(SHARING),
                             f"owner-{rng.randrange(count // 20 + 1)}"])
        yield out.getvalue().encode()


def query_points(count: int, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed + 1)
    cities = _cities(random.Random(seed))
    return [_position(rng, cities) for _ in range(count)]


async def load(store: CatalogStore, count: int, seed: int) -> dict[str, float]:
    """Batch k+1 is read and validated (in a thread, as the API does) while batch k is written
    (SQLite and Redis do their part of a write outside the Python interpreter lock). Each batch
    is its own atomic import. The rates per step are measured while the steps overlap."""
    parse_s = write_s = 0.0
    pending: asyncio.Task[float] | None = None

    async def write(cameras: list[Any]) -> float:
        started = time.perf_counter()
        await store.import_cameras(cameras, "create")
        return time.perf_counter() - started

    def parse(data: bytes) -> tuple[list[Any], float]:
        started = time.perf_counter()
        rows, unreadable = csv_rows(data)
        return cameras_from_rows(rows, None, {}, unreadable), time.perf_counter() - started

    wall = time.perf_counter()
    for number, data in enumerate(csv_batches(count, seed)):
        cameras, seconds = await asyncio.to_thread(parse, data)
        parse_s += seconds
        if pending is not None:
            write_s += await pending
        pending = asyncio.create_task(write(cameras), name=f"bench:write:{number}")
    if pending is not None:
        write_s += await pending
    wall = time.perf_counter() - wall
    return {
        "cameras": count,
        "parse_validate_per_s": round(count / parse_s),
        "store_write_per_s": round(count / write_s),
        "csv_to_store_per_s": round(count / wall),
        "seconds": round(wall, 2),
    }


def _percentiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)

    def at(q: float) -> float:
        return round(samples[min(len(samples) - 1, int(len(samples) * q))], 3)

    return {"p50_ms": round(statistics.median(samples), 3), "p95_ms": at(0.95),
            "p99_ms": at(0.99)}


async def latency(points: list[tuple[float, float]],
                  query: Callable[[float, float], Awaitable[int]],
                  clients: int = 1, rate: float = 0.0) -> dict[str, Any]:
    """Each query's time from call to answer, with ``clients`` clients asking at once. With a
    ``rate`` (queries per second per client), each client asks on a schedule whether or not its
    last answer came back, as the map views of a busy console room do: a query's time includes
    its wait behind the others, and a store that falls behind shows it. Without, each client
    asks again as soon as it is answered (the store's saturation throughput)."""
    for lat, lon in points[:20]:  # warm caches
        await query(lat, lon)
    samples: list[float] = []
    found: list[int] = []
    failed: list[str] = []

    async def ask(lat: float, lon: float) -> None:
        started = time.perf_counter()
        try:
            found.append(await query(lat, lon))
        except STORE_ERRORS as exc:  # a store that falls behind under load: counted, not fatal
            failed.append(f"{type(exc).__name__}: {exc}")
            return
        samples.append((time.perf_counter() - started) * 1000.0)

    async def client(number: int, mine: list[tuple[float, float]]) -> None:
        if not rate:
            for lat, lon in mine:
                await ask(lat, lon)
            return
        interval = 1.0 / rate
        start = time.perf_counter() + interval * number / clients  # clients out of step
        async with asyncio.TaskGroup() as asked:
            for k, (lat, lon) in enumerate(mine):
                await asyncio.sleep(max(0.0, start + k * interval - time.perf_counter()))
                asked.create_task(ask(lat, lon), name=f"bench:client:{number}:{k}")

    wall = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for number in range(clients):
            group.create_task(client(number, points[number::clients]),
                              name=f"bench:client:{number}")
    wall = time.perf_counter() - wall
    if not samples:
        return {"failed": len(failed), "first_error": failed[0] if failed else ""}
    return {
        **_percentiles(samples),
        "mean_results": round(statistics.fmean(found), 1),
        "queries": len(samples),
        "failed": len(failed),
        **({"first_error": failed[0]} if failed else {}),
        "clients": clients,
        "offered_per_s": round(clients * rate) if rate else None,
        "queries_per_s": round(len(samples) / wall),
    }


async def queries(store: CatalogStore, points: list[tuple[float, float]],
                  clients: int = 1, rate: float = 0.0) -> dict[str, Any]:
    async def nearest(lat: float, lon: float) -> int:
        return len((await store.nearest(lat, lon, limit=20)).hits)

    async def radius(lat: float, lon: float) -> int:
        return (await store.within_radius(lat, lon, 500.0)).total or 0

    return {"nearest_20": await latency(points, nearest, clients, rate),
            "radius_500m": await latency(points, radius, clients, rate)}


async def can_see(store: CatalogStore, points: list[tuple[float, float]]) -> dict[str, Any]:
    async def sees(lat: float, lon: float) -> int:
        return (await store.can_see(lat, lon)).total or 0

    return await latency(points, sees)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    def __init__(self, workdir: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise FileNotFoundError("redis-server is not installed")
        self.port = _free_port()
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def memory_mb(self) -> float:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"INFO memory\r\n")
            data = b""
            while b"used_memory:" not in data or not data.endswith(b"\r\n"):
                data += sock.recv(65536)
        line = next(x for x in data.decode().splitlines() if x.startswith("used_memory:"))
        return round(int(line.split(":")[1]) / 2**20, 1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


async def run_engine(opener: Callable[[str], Awaitable[CatalogStore]],
                     args: argparse.Namespace, points: list[tuple[float, float]],
                     size: Callable[[], float]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    store = await opener("main")
    try:
        result["bulk_load"] = await load(store, args.cameras, args.seed)
        result["size_mb"] = size()
        result.update(await queries(store, points))
        if args.clients > 1:
            result["under_load"] = await queries(store, points, args.clients, args.rate)
            result["saturated"] = await queries(store, points, args.clients)
        if args.see_cameras == args.cameras:
            result["can_see"] = {"cameras": args.cameras, **await can_see(store, points)}
    finally:
        await store.aclose()
    if args.see_cameras != args.cameras:
        store = await opener("see")
        try:
            await load(store, args.see_cameras, args.seed)
            result["can_see"] = {"cameras": args.see_cameras, **await can_see(store, points)}
        finally:
            await store.aclose()
    return result


async def run_postgis(args: argparse.Namespace, points: list[tuple[float, float]],
                      workdir: Path) -> dict[str, Any]:
    import pytest  # the test cluster's starter skips (pytest's Skipped) without the binaries

    from tests.fixtures.postgres import start_postgres

    try:
        server = await asyncio.to_thread(start_postgres)
    except (pytest.skip.Exception, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return {"skipped": str(exc)}
    databases: list[Database] = []
    try:
        async def postgis_open(_label: str) -> CatalogStore:
            name = await asyncio.to_thread(server.new_database)
            database = Database(DatabaseConfig(url=SecretStr(server.url(name)),
                                               migrate_on_start=True, statement_timeout=600),
                                workdir)
            databases.append(database)
            return await PostgisCatalog.open(database)

        def size() -> float:
            """The main registry's table with its indexes."""
            text = server.psql("SELECT pg_total_relation_size('catalog.cameras')",
                               databases[0].url.rsplit("/", 1)[1])
            return round(int(text) / 2**20, 1)

        return await run_engine(postgis_open, args, points, size)
    finally:
        for database in databases:
            await asyncio.to_thread(database.close)
        await asyncio.to_thread(server.remove)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    points = query_points(args.queries, args.seed)
    report: dict[str, Any] = {
        "benchmark": "catalog",
        "cameras": args.cameras,
        "load": {"clients": args.clients, "per_client_per_s": args.rate},
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "targets": {"nearest_20_p99_ms": 5, "radius_500m_p99_ms": 5, "can_see_100k_p99_ms": 10,
                    "bulk_import_per_s": 50_000},
    }
    with tempfile.TemporaryDirectory(prefix="catalog-bench-") as tmp:
        workdir = Path(tmp)

        async def sqlite(label: str) -> CatalogStore:
            return await SqliteCatalog.open(workdir / f"{label}.sqlite3")

        def sqlite_size() -> float:
            return round(sum(p.stat().st_size for p in workdir.glob("main.sqlite3*")) / 2**20, 1)

        if "sqlite" in args.engines:
            report["sqlite"] = await run_engine(sqlite, args, points, sqlite_size)
            _save(args, report)  # the figures so far, should a later engine fail
        if "postgis" in args.engines:
            report["postgis"] = await run_postgis(args, points, workdir)
            _save(args, report)  # the figures so far, should a later engine fail
        if "redis" not in args.engines:
            return report
        try:
            redis = RedisProcess(workdir)
        except (FileNotFoundError, RuntimeError) as exc:
            report["redis"] = {"skipped": str(exc)}
        else:
            try:
                async def redis_open(label: str) -> CatalogStore:
                    return await RedisCatalog.open(redis.url(0 if label == "main" else 1))

                report["redis"] = await run_engine(redis_open, args, points,
                                                   redis.memory_mb)
            finally:
                redis.stop()
    return report


def _save(args: argparse.Namespace, report: dict[str, Any]) -> None:
    report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    args.out.write_text(json.dumps(report, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.catalog_bench",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--cameras", type=int, default=200_000)
    parser.add_argument("--see-cameras", type=int, default=None,
                        help="registry size for the can-see query (default min(cameras, 100000))")
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--clients", type=int, default=8,
                        help="clients asking at once for the figures under load (1: none)")
    parser.add_argument("--rate", type=float, default=25.0,
                        help="queries per second each client asks under load (default 25: "
                             "200 a second from 8 clients)")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help=f"also write the JSON document to this file (default {RESULTS})")
    parser.add_argument("--engines", default="sqlite,redis,postgis",
                        help="comma-separated: sqlite, redis, postgis (default all three)")
    args = parser.parse_args(argv)
    if args.see_cameras is None:
        args.see_cameras = min(args.cameras, 100_000)
    report = asyncio.run(run(args))
    _save(args, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
