"""``rtcc serve --workers N``: N server processes on one machine, one port, one cluster.

Each worker is a full node (``rtcc serve --worker-index I``) that listens on the shared HTTP
port with SO_REUSEPORT, so the kernel spreads new connections over the workers with no front
process in the path of any request or media packet; each also listens on a port of its own,
which it advertises to the other nodes for the internal hop (the shared port cannot address one
worker). The workers coordinate like nodes on several machines: through Redis (camera leases,
placement) and PostgreSQL (SQLite is one process's). This process only starts them, restarts one
that dies, and stops them all on SIGINT or SIGTERM. The workers start one after the other (the
first one on an empty database creates the first administrator and seeds the catalog).
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from rtcc.config import Settings
from rtcc.errors import ConfigError

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 60.0
_RESTART_PAUSE_S = 1.0


def check_settings(settings: Settings, count: int) -> None:
    if count < 1:
        raise ConfigError("--workers must be at least 1")
    if not settings.cluster.redis_url.get_secret_value():
        raise ConfigError("--workers needs cluster.redis_url: the workers coordinate their "
                          "cameras on Redis")
    if not settings.database.url.get_secret_value().startswith(("postgresql://",
                                                               "postgres://")):
        raise ConfigError("--workers needs a PostgreSQL database.url: SQLite files belong to "
                          "one process")


class _Worker:
    def __init__(self, index: int, command: list[str]) -> None:
        self.index = index
        self.command = command
        self.listening = threading.Event()
        self.url = ""
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.listening.clear()
        # Our own interpreter and module, with the arguments this command was given.
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE,  # noqa: S603
                                        text=True)
        threading.Thread(target=self._read, args=(self.process,), daemon=True,
                         name=f"worker-{self.index}-stdout").start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if "listening on" in line and not self.listening.is_set():
                self.url = line.rsplit(" ", 1)[-1].strip()
                self.listening.set()
                continue
            print(f"[worker {self.index}] {line}", end="", flush=True)

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()


def _reserve_port(host: str, port: int) -> socket.socket:
    """A bound, not listening, SO_REUSEPORT socket: it fixes the port number (port 0: a free
    one) for the workers to bind beside it, and takes no connection itself."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    probe.bind((host, port))
    return probe


def run_workers(config: Path, settings: Settings, count: int, extra: list[str]) -> int:
    """Run ``count`` workers until SIGINT or SIGTERM; 0 when every worker stopped cleanly."""
    check_settings(settings, count)
    probe = _reserve_port(settings.server.host, settings.server.port)
    port = int(probe.getsockname()[1])
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001 -- signal API
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    base = [sys.executable, "-m", "server", "serve", "--config", str(config),
            "--port", str(port), *extra]
    workers = [_Worker(i, [*base, "--worker-index", str(i)]) for i in range(count)]
    try:
        # One after the other: the first to start on an empty database creates the first
        # administrator and seeds the catalog; the others find them there.
        deadline = time.monotonic() + _START_TIMEOUT_S
        for worker in workers:
            worker.start()
            while not worker.listening.wait(0.2):
                if stop.is_set() or worker.exited() is not None or time.monotonic() > deadline:
                    probe.close()
                    print(f"worker {worker.index} did not start (exit status "
                          f"{worker.exited()}); stopping", file=sys.stderr, flush=True)
                    _stop(workers)
                    return 1
        probe.close()
        print(f"RTCC server listening on {workers[0].url} ({count} workers)", flush=True)
        while not stop.wait(0.5):
            for worker in workers:
                status = worker.exited()
                if status is not None and not stop.is_set():
                    log.error("worker %d exited with status %d; starting it again",
                              worker.index, status)
                    time.sleep(_RESTART_PAUSE_S)
                    worker.start()
        print("Stopping the workers...", flush=True)
        return _stop(workers)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        probe.close()


def _stop(workers: list[_Worker]) -> int:
    status = 0
    for worker in workers:
        if worker.process is not None and worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    for worker in workers:
        if worker.process is None:
            continue
        try:
            worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("worker %d did not stop within %.0f s; killed", worker.index,
                      _STOP_TIMEOUT_S)
            worker.process.kill()
            worker.process.wait()
        status = status or (worker.process.returncode != 0)
    return int(status)
