"""Running the camera simulator (``gst_server.py``) as a child process of the system Python.

The simulator needs GStreamer's Python bindings, which Debian installs for ``/usr/bin/python3``
only, so it runs as its own process: no shell, its own process group, the camera spec (with
any passwords) written to its stdin rather than to a file or the command line. It exits when its
stdin closes, so it cannot outlive this process even if this process is killed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

from camsim.child import (
    drain_lines,
    read_ready,
    send_spec,
    signal_group,
    spawn,
    stop_child,
)
from rtcc.config import CamsimCameraConfig, CamsimConfig
from rtcc.errors import RtccError

log = logging.getLogger(__name__)

SCRIPT = Path(__file__).with_name("gst_server.py")
SYSTEM_PYTHON = Path("/usr/bin/python3")
APT_PACKAGES = (
    "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
    "gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-x"
)
_EXIT_MEANINGS = {
    2: "the camera spec was refused",
    3: "Python's GObject bindings are missing",
    4: "GStreamer's RTSP server library is missing",
    5: "a GStreamer element is missing",
    6: "the simulator cannot listen on its address",
}


class CamsimUnavailable(RtccError):
    """The camera simulator could not start; the message says why and what to install."""


@dataclass(frozen=True, slots=True)
class CameraOptions:
    """Simulator-only settings of one camera, beyond what ``CamsimCameraConfig`` holds."""

    codec: Literal["h264", "h265"] = "h264"
    bframes: int = 0
    audio: Literal["", "pcma", "opus", "aac"] = ""
    parameter_sets_in_band: bool = True
    """False: SPS/PPS only in the SDP, never repeated before keyframes (like some cameras)."""
    pattern: str = "smpte"
    """A ``videotestsrc`` pattern (smpte, ball, snow, ...)."""
    auth: Literal["digest", "basic"] = "digest"
    """How a camera with a user name asks for it. The server offers Basic only if every such
    camera uses it."""
    session_timeout: int = 0
    """Seconds an RTSP session lives without a request from its client (0: the server's 60).
    The smallest one set applies to every session of the simulator."""


def camera_spec(camera: CamsimCameraConfig, options: CameraOptions) -> dict[str, object]:
    return {
        "name": camera.name,
        "path": camera.path,
        "width": camera.width,
        "height": camera.height,
        "fps": camera.fps,
        "bitrate_kbps": camera.bitrate_kbps,
        "gop_seconds": camera.gop_seconds,
        "profile": camera.profile,
        "username": camera.username,
        "password": camera.password.get_secret_value(),
        "codec": options.codec,
        "bframes": options.bframes,
        "audio": options.audio,
        "parameter_sets_in_band": options.parameter_sets_in_band,
        "pattern": options.pattern,
        "session_timeout": options.session_timeout,
        "auth": options.auth,
    }


class Camsim:
    """Serves ``config.cameras`` over RTSP while the context is open.

    ``port`` overrides ``config.port``; 0 lets the system choose a free port (read ``.port``
    after start). ``restart()`` comes back on the same port.
    """

    def __init__(
        self,
        config: CamsimConfig,
        *,
        options: Mapping[str, CameraOptions] | None = None,
        port: int | None = None,
        python: Path | str = SYSTEM_PYTHON,
        ready_timeout: float = 30.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.config = config
        self._options = dict(options or {})
        unknown = set(self._options) - {camera.path for camera in config.cameras}
        if unknown:
            raise ValueError(f"options given for unknown camera paths: {sorted(unknown)}")
        self._port = config.port if port is None else port
        self._python = Path(python)
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._drains: set[asyncio.Task[None]] = set()
        self._stderr_tail: deque[str] = deque(maxlen=20)
        self._paused = False

    # -- facts --------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def port(self) -> int:
        return self._port

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def url(self, path: str) -> str:
        """The camera's URL, without credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"rtsp://{host}:{self._port}/{path}"

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self.running:
            return
        if not self._python.exists():
            raise CamsimUnavailable(
                f"{self._python} was not found: the camera simulator runs on the system Python "
                f"with GStreamer's bindings (Debian: apt-get install python3 {APT_PACKAGES})"
            )
        spec = {
            "host": self.config.host,
            "port": self._port,
            "cameras": [
                camera_spec(camera, self._options.get(camera.path, CameraOptions()))
                for camera in self.config.cameras
            ],
        }
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
        process = await spawn([str(self._python), "-u", str(SCRIPT), "-"], env=env)
        self._process = process
        self._paused = False
        self._stderr_tail.clear()
        try:
            await send_spec(process, spec)
            self._port = await self._wait_ready(process)
        except BaseException:
            await self.stop()
            raise
        log.info("camera simulator (pid %d) serves %d cameras at rtsp://%s:%d/",
                 process.pid, len(self.config.cameras), self.host, self._port)

    async def _wait_ready(self, process: asyncio.subprocess.Process) -> int:
        assert process.stdout is not None
        assert process.stderr is not None
        stderr_task = asyncio.create_task(
            drain_lines(process.stderr, self._log_stderr), name=f"camsim:{process.pid}:stderr"
        )
        self._drains.add(stderr_task)
        try:
            async with asyncio.timeout(self._ready_timeout):
                fields = await read_ready(process)
        except TimeoutError:
            raise CamsimUnavailable(
                f"the camera simulator did not start listening within {self._ready_timeout:g} s"
                f"{self._tail_text()}"
            ) from None
        if fields is None:
            await asyncio.wait({stderr_task}, timeout=1.0)
            raise CamsimUnavailable(self._exit_message(process.returncode))
        stdout_task = asyncio.create_task(
            drain_lines(process.stdout, self._log_stdout), name=f"camsim:{process.pid}:stdout"
        )
        self._drains.add(stdout_task)
        return int(fields.get("port", self._port))

    def _exit_message(self, status: int | None) -> str:
        meaning = _EXIT_MEANINGS.get(status or 0, f"it exited with status {status}")
        missing = [line for line in self._stderr_tail if line.startswith(("MISSING", "ERROR"))]
        detail = f": {missing[-1]}" if missing else self._tail_text()
        hint = "" if status in (2, 6) else f" (Debian: apt-get install {APT_PACKAGES})"
        return f"the camera simulator could not start, {meaning}{detail}{hint}"

    def _tail_text(self) -> str:
        return (": " + " | ".join(self._stderr_tail)) if self._stderr_tail else ""

    def _log_stderr(self, line: str) -> None:
        if line:
            self._stderr_tail.append(line)
            log.debug("camsim: %s", line)

    def _log_stdout(self, line: str) -> None:
        if line:
            log.debug("camsim: %s", line)

    async def stop(self) -> None:
        """Terminate the simulator and its process group and reap it. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            await stop_child(process, self._stop_timeout, "camera simulator")
        drains, self._drains = self._drains, set()
        for task in drains:
            task.cancel()
        if drains:
            await asyncio.gather(*drains, return_exceptions=True)
        self._paused = False

    async def restart(self) -> None:
        """Stop and start again on the same port (a camera rebooting)."""
        await self.stop()
        await self.start()

    async def wait(self) -> int:
        """Wait until the simulator exits; returns its exit status."""
        process = self._process
        if process is None:
            raise RuntimeError("the camera simulator is not running")
        return await process.wait()

    def pause(self) -> None:
        """Freeze the simulator (SIGSTOP): connections stay open, no data flows."""
        if self._process is None or self._process.returncode is not None:
            raise RuntimeError("the camera simulator is not running")
        signal_group(self._process.pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        if self._process is not None and self._paused:
            signal_group(self._process.pid, signal.SIGCONT)
        self._paused = False

    async def __aenter__(self) -> Camsim:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def run_camsim(
    config: CamsimConfig, *, options: Mapping[str, CameraOptions] | None = None
) -> None:
    """Serve the configured cameras until cancelled (the ``rtcc camsim`` command)."""
    if not config.cameras:
        raise CamsimUnavailable("the camsim configuration lists no cameras")
    async with Camsim(config, options=options) as sim:
        for camera in config.cameras:
            auth = " (digest auth)" if camera.username else ""
            print(f"{camera.name}: {sim.url(camera.path)}{auth}", flush=True)
        status = await sim.wait()
        raise CamsimUnavailable(f"the camera simulator stopped unexpectedly (status {status})")
