"""Viewers served by one and by two worker processes of ``rtcc serve``, side by side in one run.

``python -m benchmarks cluster_workers [--workers 1,2] [--viewers 30,90] [--cameras 2]
[--seconds 10] [--per-process 30]`` starts a real PostgreSQL (PostGIS), a redis-server and a
GStreamer camera simulator (``--cameras`` cameras, 640x360 15 fps 600 kbit/s, keyframe every
second), then for each worker count a full ``rtcc serve`` (``--workers N``; 1: one node) on a
fresh database, and connects viewers (``relay_viewers`` processes: aiortc peer connections that
count packets without decoding, logged in with the bootstrap token) through the shared port,
viewer ``i`` watching camera ``i % cameras + 1``. At each viewer count it reads, over a window,
the CPU time of every server process (the workers and the process that started them), of
redis-server, of PostgreSQL and of the viewers, and what the viewers received. Prints JSON:
cores per viewer, viewers per server core, the busiest process's share, the packets each viewer
got, and the ratios of two workers to one; writes ``results/cluster_workers.json``.

The viewers run on the same cores as the server: on a small machine they, not the server, are
what runs out first, so the figures are CPU per viewer at a fixed number of viewers, and the
viewers a worker serves at a CPU budget follow from them (``viewers_per_server_core``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from benchmarks.relay_bench import Peer, ViewerPool, machine, process_times, progress, save
from camsim.runner import Camsim
from rtcc.config import CamsimCameraConfig, CamsimConfig
from tests.fixtures.canary import BOOTSTRAP_TOKEN
from tests.fixtures.postgres import PostgresServer, start_postgres
from tests.fixtures.redis_server import RedisServer, start_redis

ROOT = Path(__file__).resolve().parent.parent
PURPOSE = "purpose=cluster+benchmark"


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (read from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found = [pid]
    for parent in found:
        found.extend(child for child, of in parents.items() if of == parent)
    return found


def cpu_of(pids: list[int]) -> dict[int, float]:
    times: dict[int, float] = {}
    for pid in pids:
        try:
            user, system = process_times(pid)
        except OSError:
            continue  # ended meanwhile
        times[pid] = user + system
    return times


class Server:
    """``rtcc serve`` with ``workers`` worker processes, on a database of its own."""

    def __init__(self, workdir: Path, workers: int, cameras: int, postgres: PostgresServer,
                 redis: RedisServer, sim: Camsim) -> None:
        self.workers = workers
        self.workdir = workdir / f"workers-{workers}"
        self.workdir.mkdir(parents=True)
        redis.command("FLUSHALL")
        self.env = {**os.environ, "PYTHONPATH": str(ROOT),
                    "RTCC_SECRET_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
                    "RTCC_AUDIT_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
                    "RTCC_CLUSTER_SECRET": secrets.token_hex(32),
                    "RTCC_BOOTSTRAP_TOKEN": BOOTSTRAP_TOKEN,
                    "RTCC_BENCH_DATABASE_URL": postgres.url(postgres.new_database())}
        document = {
            "data_dir": str(self.workdir / "data"),
            "log_level": "warning",
            "database": {"url": "${RTCC_BENCH_DATABASE_URL}", "migrate_on_start": True},
            "security": {"allow_private_camera_hosts": ["127.0.0.0/8"]},
            "relay": {"max_sessions_per_user": 10000},
            "cluster": {"redis_url": redis.url, "lease_seconds": 3,
                        "secret": "${RTCC_CLUSTER_SECRET}"},
            "cameras": [{"id": f"cam{i}", "name": f"camera {i}", "lat": 40.0, "lon": -75.0,
                         "sharing": "live_always",
                         "profiles": {"main": {"url": sim.url(f"cam{i}")}}}
                        for i in range(1, cameras + 1)],
        }
        self.config = self.workdir / "rtcc.yaml"
        self.config.write_text(yaml.safe_dump(document))
        self.url = ""
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Server:
        command = [sys.executable, "-m", "server", "serve", "--config", str(self.config),
                   "--port", "0"]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        log = (self.workdir / "server.log").open("w")
        self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, text=True,
                                        stdout=subprocess.PIPE, stderr=log)
        assert self.process.stdout is not None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"rtcc serve exited before listening; see {log.name}")
            if "listening on" in line:
                self.url = line.split("listening on ", 1)[1].split()[0]
                break
        else:
            raise RuntimeError(f"rtcc serve did not listen within 180 s; see {log.name}")
        # Keep reading its output, so a full pipe never stalls a worker.
        threading.Thread(target=self.process.stdout.read, daemon=True,
                         name="rtcc-serve-stdout").start()
        while len([n for n in self.cluster()["nodes"] if n["alive"]]) < self.workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.workers} nodes did not join within 180 s")
            time.sleep(0.5)
        return self

    def cluster(self) -> dict[str, Any]:
        request = urllib.request.Request(f"{self.url}/api/cluster",
                                         headers={"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            data: dict[str, Any] = json.loads(answer.read())
            return data

    def pids(self) -> list[int]:
        assert self.process is not None
        return [pid for pid in descendants(self.process.pid)
                if "server" in _cmdline(pid)]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def window(server: Server, pool: ViewerPool, redis: RedisServer, postgres: PostgresServer,
           seconds: float) -> dict[str, Any]:
    pids = server.pids()
    database = descendants(postgres.process.pid)
    cpu0, redis0, db0 = cpu_of(pids), cpu_of([redis.process.pid]), cpu_of(database)
    client0 = pool.client_cpu()
    mark0 = pool.mark()
    t0 = time.monotonic()
    time.sleep(seconds)
    cpu1, redis1, db1 = cpu_of(pids), cpu_of([redis.process.pid]), cpu_of(database)
    client1 = pool.client_cpu()
    mark1 = pool.mark()
    elapsed = time.monotonic() - t0
    viewers = len(mark1["packets"])
    if len(mark0["packets"]) != viewers:
        raise RuntimeError("viewers came or went during the measurement window")
    packets = [b - a for a, b in zip(mark0["packets"], mark1["packets"], strict=True)]
    lost = sum(b - a for a, b in zip(mark0["lost"], mark1["lost"], strict=True))
    expected = sum(b - a for a, b in zip(mark0["expected"], mark1["expected"], strict=True))
    per_process = sorted(((cpu1[pid] - cpu0[pid]) / elapsed for pid in cpu1 if pid in cpu0),
                         reverse=True)
    cores = sum(per_process)
    status = server.cluster()

    def spent(before: dict[int, float], after: dict[int, float]) -> float:
        return round(sum(after[p] - before[p] for p in after if p in before) / elapsed, 4)

    return {
        "workers": server.workers,
        "viewers": viewers,
        "failed_to_connect": mark1["failures"],
        "seconds": round(elapsed, 2),
        "server_cores": round(cores, 4),
        "server_cores_by_process": [round(c, 4) for c in per_process],
        "busiest_process_cores": round(per_process[0], 4) if per_process else 0.0,
        "server_cores_per_viewer": round(cores / viewers, 5) if viewers else None,
        "viewers_per_server_core": round(viewers / cores, 1) if cores else None,
        "packets_per_viewer_per_s": round(sum(packets) / viewers / elapsed, 1) if viewers else 0,
        "min_viewer_packets_per_s": round(min(packets) / elapsed, 1) if packets else 0,
        "loss": round(lost / expected, 5) if expected else None,
        "redis_cores": spent(redis0, redis1),
        "postgres_cores": spent(db0, db1),
        "viewer_client_cores": round((client1 - client0) / elapsed, 3),
        "leases": status["leases"],
        "nodes": [{key: node[key] for key in ("node_id", "cameras", "viewers", "cpu")}
                  for node in status["nodes"] if node["alive"]],
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def run_workers(workers: int, levels: list[int], args: argparse.Namespace, workdir: Path,
                postgres: PostgresServer, redis: RedisServer, sim: Camsim) -> list[dict[str, Any]]:
    server = Server(workdir, workers, args.cameras, postgres, redis, sim).start()
    results = []
    try:
        # The load generator of the relay benchmarks, pointed at the shared port.
        target = Peer("rtcc", Path(os.devnull), cameras=args.cameras)
        target.url = server.url
        for level in levels:
            with ViewerPool(target, level, args.per_process) as pool:
                time.sleep(args.warmup)
                result = window(server, pool, redis, postgres, args.seconds)
                result["viewers_requested"] = level
                progress(result)
                results.append(result)
    finally:
        server.stop()
    return results


def compare(runs: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per viewer count: N workers' figure over one worker's."""
    out: dict[str, dict[str, float | None]] = {}
    one = {r["viewers_requested"]: r for r in runs if r["workers"] == 1}
    for run in runs:
        base = one.get(run["viewers_requested"])
        if run["workers"] == 1 or base is None:
            continue
        key = f"{run['workers']}_workers_over_1_at_{run['viewers_requested']}_viewers"
        out[key] = {
            name: (round(run[name] / base[name], 2) if base[name] and run[name] else None)
            for name in ("server_cores", "server_cores_per_viewer", "busiest_process_cores",
                         "viewers_per_server_core", "packets_per_viewer_per_s")}
    return out


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    levels = [int(v) for v in args.viewers.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="rtcc-cluster-bench-"))
    cameras = [CamsimCameraConfig(name=f"camera {i}", path=f"cam{i}", width=640, height=360,
                                  fps=15, bitrate_kbps=600, gop_seconds=1.0)
               for i in range(1, args.cameras + 1)]
    sim = Camsim(CamsimConfig(cameras=cameras), port=0)
    postgres = start_postgres()
    redis = start_redis(workdir)
    await sim.start()
    os.environ["RTCC_BENCH_AUTHORIZATION"] = f"Bearer {BOOTSTRAP_TOKEN}"
    os.environ["RTCC_BENCH_WHEP_QUERY"] = PURPOSE
    runs: list[dict[str, Any]] = []
    try:
        for workers in (int(w) for w in args.workers.split(",")):
            runs += await asyncio.to_thread(run_workers, workers, levels, args, workdir,
                                            postgres, redis, sim)
    finally:
        await sim.stop()
        redis.process.terminate()
        redis.process.wait(timeout=30)
        postgres.remove()
    return {"runs": runs, "ratios": compare(runs)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks cluster_workers",
                                     description=__doc__)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--viewers", default="30,90", help="viewer counts")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--per-process", type=int, default=30, help="viewers per viewer process")
    args = parser.parse_args(argv)
    started = machine()
    measured = asyncio.run(measure(args))
    output = {
        "benchmark": "cluster_workers",
        "command": "python -m benchmarks cluster_workers " + " ".join(argv or []),
        "camera": "camsim 640x360 15 fps 600 kbit/s, keyframe every 1 s",
        "machine_at_start": started,
        "machine_at_end": machine(),
        **measured,
    }
    save("cluster_workers", output)
    print(json.dumps(output, indent=2))


if __name__ == "__main__":
    main()
