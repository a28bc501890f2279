"""What the relay benchmarks share: the three servers side by side, viewer processes, CPU windows.

A *peer* is one server under test in its own process(es): ``rtcc`` (this project's relay),
``naive`` (aiortc ``MediaPlayer(decode=False)`` + ``MediaRelay``) or ``janus`` (Debian's Janus
streaming plugin fed over RTP). Its CPU is read from ``/proc/PID/stat`` (utime + stime of every
thread); the feeders of Janus (ffmpeg or ``rtp_feeder``) and the viewer processes are not
counted. A *pool* spreads viewers over several ``relay_viewers`` processes (a process of aiortc
viewers saturates one core near 100 viewers).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from benchmarks.janus_peer import JanusServer, ffmpeg_feeders, janus_available, stop_processes

CLIP_DIR = Path(os.environ.get("RTCC_BENCH_DIR", "/tmp/rtcc-bench"))
RESULTS_DIR = Path(__file__).parent / "results"
VARIANTS = ("rtcc", "naive", "janus")


def process_times(pid: int) -> tuple[float, float]:
    """CPU seconds (user, system) a process has used, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def load_average() -> float:
    return os.getloadavg()[0]


def machine() -> dict[str, Any]:
    return {"cpu_count": os.cpu_count(), "load_average_1m": round(load_average(), 2),
            "python": sys.version.split()[0]}


def _readline(stream: IO[str], what: str) -> str:
    line = stream.readline()
    if not line:
        raise RuntimeError(f"{what} exited before answering")
    return line


def available_variants(requested: str) -> list[str]:
    variants = []
    for variant in requested.split(","):
        if variant.startswith("rtcc@"):
            variants.append(variant)
            continue
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
        if variant == "janus" and (why := janus_available()):
            print(f"skipping janus: {why}", file=sys.stderr)
            continue
        variants.append(variant)
    return variants


class Peer:
    """One server under test, started with ``cameras`` cameras replaying ``clip``."""

    def __init__(self, variant: str, clip: Path, cameras: int = 1, stamp: bool = False,
                 server_args: tuple[str, ...] = ()) -> None:
        self.variant = variant
        self.server_args = server_args
        self.clip = clip
        self.cameras = cameras
        self.stamp = stamp
        self.url = ""
        self.pid = 0
        self._server: subprocess.Popen[str] | None = None
        self._janus: JanusServer | None = None
        self._feeders: list[subprocess.Popen[bytes]] = []
        self._feeder: subprocess.Popen[str] | None = None
        self._workdir: Path | None = None

    @property
    def kind(self) -> str:
        return "janus" if self.variant == "janus" else "whep"

    def start(self) -> Peer:
        if self.variant == "janus":
            self._start_janus()
        else:
            cwd = self._checkout() if self.variant.startswith("rtcc@") else None
            variant = "rtcc" if cwd else self.variant
            command = [sys.executable, "-m", "benchmarks.relay_server", "--variant",
                       variant, "--clip", str(self.clip), "--cameras", str(self.cameras)]
            if self.stamp:
                command.append("--stamp")
            command += self.server_args
            self._server = subprocess.Popen(command, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, text=True, cwd=cwd)
            assert self._server.stdout is not None
            while True:
                line = _readline(self._server.stdout, f"the {self.variant} server")
                if line.startswith("READY "):
                    self.url = f"http://127.0.0.1:{int(line.split()[1])}"
                    break
            self.pid = self._server.pid
        return self

    def _checkout(self) -> Path:
        """``rtcc@REV``: the whole tree as committed at REV (``git archive``; the work tree is
        not touched), so an earlier relay runs with the media core and the server it was
        written against, side by side with the current one. A revision older than the
        benchmark server borrows this tree's ``benchmarks``."""
        revision = self.variant.split("@", 1)[1]
        root = Path(__file__).resolve().parent.parent
        self._workdir = Path(tempfile.mkdtemp(prefix="rtcc-relay-"))
        archive = subprocess.run(["git", "-C", str(root), "archive", revision],
                                 check=True, capture_output=True, timeout=60).stdout
        subprocess.run(["tar", "-x", "-C", str(self._workdir)], input=archive, check=True,
                       timeout=60)
        if not (self._workdir / "benchmarks" / "relay_server.py").exists():
            shutil.rmtree(self._workdir / "benchmarks", ignore_errors=True)
            (self._workdir / "benchmarks").symlink_to(root / "benchmarks")
        return self._workdir

    def _start_janus(self) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="rtcc-janus-"))
        janus = self._janus = JanusServer(self._workdir, self.cameras)
        janus.start()
        self.url = janus.url
        self.pid = janus.pid
        ports = [janus.rtp_port(n) for n in range(1, self.cameras + 1)]
        if self.cameras == 1 and not self.stamp:
            # the setup of FIELD_NOTES.md: ffmpeg sends the clip's H.264 as RTP
            self._feeders = ffmpeg_feeders(self.clip, ports)
        else:
            command = [sys.executable, "-m", "benchmarks.rtp_feeder", "--clip", str(self.clip),
                       "--ports", ",".join(map(str, ports))]
            if self.stamp:
                command.append("--stamp")
            self._feeder = subprocess.Popen(command, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, text=True)
            assert self._feeder.stdout is not None
            _readline(self._feeder.stdout, "the RTP feeder")
        time.sleep(1.5)  # the mountpoints have media (and a keyframe) before the first viewer

    def stats(self) -> dict[str, Any]:
        """RSS, asyncio tasks and viewers of a relay_server process (not for Janus)."""
        with urllib.request.urlopen(f"{self.url}/bench/stats", timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data

    def release_memory(self) -> dict[str, Any]:
        """Ask a relay_server process to hand its freed memory back (``rtcc.heap``)."""
        request = urllib.request.Request(f"{self.url}/bench/release", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data

    def rss(self) -> int:
        fields = Path(f"/proc/{self.pid}/statm").read_text().split()
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")

    def stop(self) -> None:
        if self._server is not None:
            _close(self._server)
            self._server = None
        if self._feeder is not None:
            _close(self._feeder)
            self._feeder = None
        stop_processes(self._feeders)
        self._feeders = []
        if self._janus is not None:
            self._janus.stop()
            self._janus = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Peer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _close(process: subprocess.Popen[str]) -> None:
    try:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=30)
    except (subprocess.TimeoutExpired, BrokenPipeError):
        process.kill()
        process.wait()


class ViewerPool:
    """``viewers`` viewers of ``peer`` spread over processes of at most ``per_process`` each."""

    def __init__(self, peer: Peer, viewers: int, per_process: int = 50,
                 latency: bool = False) -> None:
        self.peer = peer
        self.per_process = per_process
        self.latency = latency
        self.clients: list[subprocess.Popen[str]] = []
        self.viewers = viewers
        self.failures = 0

    def start(self) -> ViewerPool:
        processes = max(1, math.ceil(self.viewers / self.per_process))
        first = 0
        for index in range(processes):
            count = self.viewers // processes + (1 if index < self.viewers % processes else 0)
            command = [sys.executable, "-m", "benchmarks.relay_viewers", "--kind",
                       self.peer.kind, "--url", self.peer.url, "--viewers", str(count),
                       "--cameras", str(self.peer.cameras), "--first", str(first)]
            if self.latency:
                command.append("--latency")
            first += count
            self.clients.append(subprocess.Popen(command, stdin=subprocess.PIPE,
                                                 stdout=subprocess.PIPE, text=True))
        for client in self.clients:
            reply = self._reply(client, "connected")
            self.failures += int(reply.get("failures", 0))
        return self

    def _reply(self, client: subprocess.Popen[str], event: str) -> dict[str, Any]:
        assert client.stdout is not None
        while True:
            line = _readline(client.stdout, "a viewer process")
            if line.startswith("{"):
                data: dict[str, Any] = json.loads(line)
                if data.get("event") == event:
                    return data

    def ask(self, command: str, event: str, clients: list[subprocess.Popen[str]] | None = None
            ) -> list[dict[str, Any]]:
        targets = self.clients if clients is None else clients
        for client in targets:
            assert client.stdin is not None
            client.stdin.write(command + "\n")
            client.stdin.flush()
        return [self._reply(client, event) for client in targets]

    def mark(self) -> dict[str, Any]:
        replies = self.ask("mark", "mark")
        merged: dict[str, Any] = {"packets": [], "bytes": [], "lost": [], "expected": []}
        for reply in replies:
            for key in merged:
                merged[key].extend(reply[key])
        merged["failures"] = sum(int(r.get("failures", 0)) for r in replies)
        return merged

    def latency_samples(self) -> list[float]:
        samples: list[float] = []
        for reply in self.ask("latency", "latency"):
            samples.extend(reply["ms"])
        return samples

    def client_cpu(self) -> float:
        return sum(sum(process_times(c.pid)) for c in self.clients if c.poll() is None)

    def stop(self) -> None:
        for client in self.clients:
            with contextlib.suppress(BrokenPipeError):
                _close(client)
        self.clients = []

    def __enter__(self) -> ViewerPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cpu_window(peer: Peer, pool: ViewerPool, seconds: float) -> dict[str, Any]:
    """Server CPU and what the viewers received over ``seconds``."""
    user0, sys0 = process_times(peer.pid)
    client0 = pool.client_cpu()
    mark0 = pool.mark()
    t0 = time.monotonic()
    time.sleep(seconds)
    user1, sys1 = process_times(peer.pid)
    client1 = pool.client_cpu()
    mark1 = pool.mark()
    elapsed = time.monotonic() - t0
    viewers = len(mark1["packets"])
    if len(mark0["packets"]) != viewers:
        raise RuntimeError("viewers came or went during the measurement window")
    packets = [b - a for a, b in zip(mark0["packets"], mark1["packets"], strict=True)]
    octets = sum(b - a for a, b in zip(mark0["bytes"], mark1["bytes"], strict=True))
    lost = sum(b - a for a, b in zip(mark0["lost"], mark1["lost"], strict=True))
    expected = sum(b - a for a, b in zip(mark0["expected"], mark1["expected"], strict=True))
    cpu = (user1 - user0) + (sys1 - sys0)
    cores = cpu / elapsed
    delivered = sum(packets)
    return {
        "viewers": viewers,
        "failed_to_connect": mark1["failures"],
        "seconds": round(elapsed, 2),
        "server_cores": round(cores, 4),
        "server_user_cores": round((user1 - user0) / elapsed, 4),
        "server_system_cores": round((sys1 - sys0) / elapsed, 4),
        "server_cores_per_viewer": round(cores / viewers, 5) if viewers else None,
        "viewers_per_core": round(viewers / cores, 1) if cores else None,
        "server_us_per_packet": round(1e6 * cpu / delivered, 2) if delivered else None,
        "packets_delivered": delivered,
        "packets_per_viewer_per_s": round(delivered / viewers / elapsed, 1) if viewers else 0,
        "min_viewer_packets_per_s": round(min(packets) / elapsed, 1) if packets else 0,
        "loss": round(lost / expected, 5) if expected else None,
        "mbit_per_viewer": round(8 * octets / viewers / elapsed / 1e6, 3) if viewers else 0,
        "client_cores": round((client1 - client0) / elapsed, 3),
        "load_average_1m": round(load_average(), 2),
    }


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def progress(data: dict[str, Any]) -> None:
    print(json.dumps(data), file=sys.stderr, flush=True)
