"""Running the simulated ONVIF cameras (``onvif_server.py``) as a child process.

Like the RTSP simulator: no shell, its own process group, the spec (with passwords) written to
its stdin, and it exits when its stdin closes. Its stdout carries one JSON line per observable
action (PTZ moves, synchronization points), kept in ``events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from camsim.child import drain_lines, read_ready, send_spec, spawn, stop_child
from rtcc.errors import RtccError

log = logging.getLogger(__name__)


class OnvifSimUnavailable(RtccError):
    """The ONVIF simulator could not start; the message says why."""


@dataclass(frozen=True, slots=True)
class OnvifProfile:
    token: str
    path: str
    width: int = 640
    height: int = 360
    fps: int = 15
    encoding: str = "H264"


@dataclass(frozen=True, slots=True)
class OnvifDeviceConfig:
    name: str
    profiles: tuple[OnvifProfile, ...]
    username: str = ""
    password: str = field(default="", repr=False)
    ptz: bool = False
    serial: str = ""
    announce: str = ""
    """Base URL the device names as its own in service and snapshot addresses (empty: its
    real one)."""

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name, "username": self.username, "password": self.password,
            "ptz": self.ptz, "serial": self.serial, "port": 0, "announce": self.announce,
            "profiles": [
                {"token": p.token, "path": p.path, "width": p.width, "height": p.height,
                 "fps": p.fps, "encoding": p.encoding}
                for p in self.profiles
            ],
        }


class OnvifSim:
    """Serves ``devices`` while the context is open; ``ports[i]`` is device i's HTTP port."""

    def __init__(
        self,
        devices: list[OnvifDeviceConfig],
        *,
        rtsp_base: str,
        host: str = "127.0.0.1",
        multicast_group: str = "",
        multicast_port: int = 3702,
        ready_timeout: float = 20.0,
    ) -> None:
        self.devices = devices
        self.rtsp_base = rtsp_base
        self.host = host
        self.multicast_group = multicast_group
        self.multicast_port = multicast_port
        self.ports: list[int] = []
        self.discovery_port = 0
        self.events: deque[dict[str, Any]] = deque(maxlen=1000)
        self._ready_timeout = ready_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stderr: deque[str] = deque(maxlen=20)

    def xaddr(self, index: int) -> str:
        return f"http://{self.host}:{self.ports[index]}/onvif/device_service"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> None:
        spec = {
            "host": self.host,
            "rtsp_base": self.rtsp_base,
            "discovery": {"port": 0, "multicast_group": self.multicast_group,
                          "multicast_port": self.multicast_port},
            "devices": [device.spec() for device in self.devices],
        }
        process = await spawn([sys.executable, "-m", "camsim.onvif_server", "-"])
        self._process = process
        assert process.stdout is not None
        assert process.stderr is not None
        self._spawn(drain_lines(process.stderr, self._keep_stderr),
                    f"onvif-sim:{process.pid}:stderr")
        try:
            await send_spec(process, spec)
            async with asyncio.timeout(self._ready_timeout):
                fields = await read_ready(process)
            if fields is None:
                raise OnvifSimUnavailable(
                    f"the ONVIF simulator exited with status {process.returncode}: "
                    + " | ".join(self._stderr)
                )
        except TimeoutError:
            await self.stop()
            raise OnvifSimUnavailable("the ONVIF simulator did not start in time") from None
        except BaseException:
            await self.stop()
            raise
        self.discovery_port = int(fields["discovery"])
        self.ports = [int(port) for port in fields["ports"].split(",") if port]
        self._spawn(self._drain_events(process.stdout), f"onvif-sim:{process.pid}:events")
        log.info("ONVIF simulator (pid %d): %d devices, discovery on udp/%d", process.pid,
                 len(self.ports), self.discovery_port)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)

    def _keep_stderr(self, text: str) -> None:
        self._stderr.append(text)
        log.debug("onvif-sim: %s", text)

    async def _drain_events(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    self.events.append(event)

    def count(self, kind: str, device: str | None = None) -> int:
        return sum(1 for event in self.events if event.get("event") == kind
                   and (device is None or event.get("device") == device))

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            await stop_child(process, 5.0, "ONVIF simulator")
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> OnvifSim:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()
