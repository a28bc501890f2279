"""Janus (Debian ``janus``, a C WebRTC gateway) as the side-by-side peer of the relay benchmarks.

``JanusServer`` writes a configuration folder that loads only the streaming plugin and the HTTP
transport, with one RTP mountpoint per camera (id ``n``, H.264 on UDP port ``rtp_base + 2(n-1)``)
and ``ice_enforce_list = "lo"`` (without it Janus offers no loopback candidate), starts
``janus -F FOLDER`` and waits for its HTTP API. Feeding the mountpoints is up to the benchmark:
``ffmpeg -re -stream_loop -1 -i clip.ts -an -c:v copy -f rtp rtp://127.0.0.1:PORT?pkt_size=1200``
(``ffmpeg_feeders``), or ``benchmarks.rtp_feeder`` when frames must carry a capture time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType

JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
ETC_JANUS = Path("/etc/janus")


def janus_available() -> str | None:
    """Why Janus cannot run here, or None."""
    if shutil.which("janus") is None:
        return "the janus binary is not installed (Debian package janus)"
    if not (JANUS_LIB / "plugins" / "libjanus_streaming.so").exists():
        return f"the Janus streaming plugin is missing from {JANUS_LIB}/plugins"
    return None


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_udp_base(count: int) -> int:
    """A base port with ``2 * count`` free UDP ports after it (RTP and RTCP of each camera)."""
    for _ in range(50):
        base = free_port(socket.SOCK_DGRAM) & ~1
        socks = []
        try:
            for offset in range(2 * count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no run of {2 * count} free UDP ports found")


_MOUNTPOINT = """
cam{n}: {{
    type = "rtp"
    id = {n}
    description = "camera {n}"
    audio = false
    video = true
    videoport = {port}
    videopt = 96
    videocodec = "h264"
    videofmtp = "profile-level-id=42e01f;packetization-mode=1"
}}
"""


class JanusServer:
    """One Janus process with ``cameras`` RTP mountpoints; a context manager."""

    def __init__(self, workdir: Path, cameras: int = 1) -> None:
        self.workdir = workdir
        self.cameras = cameras
        self.http_port = free_port()
        self.rtp_base = free_udp_base(cameras)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/janus"

    def rtp_port(self, camera: int) -> int:
        """The mountpoint's video port of camera ``camera`` (1-based)."""
        return self.rtp_base + 2 * (camera - 1)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _configure(self) -> Path:
        conf = self.workdir / "conf"
        if conf.exists():
            shutil.rmtree(conf)
        conf.mkdir(parents=True)
        folders = {}
        for kind, keep in (("plugins", "libjanus_streaming.so"), ("transports", "libjanus_http.so"),
                           ("events", None), ("loggers", None)):
            folder = self.workdir / kind
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir()
            if keep is not None:
                (folder / keep).symlink_to(JANUS_LIB / kind / keep)
            folders[kind] = folder
        (conf / "janus.jcfg").write_text(f"""
general: {{
    configs_folder = "{conf}"
    plugins_folder = "{folders['plugins']}"
    transports_folder = "{folders['transports']}"
    events_folder = "{folders['events']}"
    loggers_folder = "{folders['loggers']}"
    debug_level = 3
    admin_secret = "{os.urandom(12).hex()}"
    protected_folders = ["/bin", "/boot", "/dev", "/etc", "/initrd", "/lib", "/lib32",
        "/lib64", "/proc", "/sbin", "/sys", "/usr", "/var"]
}}
certificates: {{
}}
media: {{
}}
nat: {{
    nice_debug = false
    ice_enforce_list = "lo"
    ignore_mdns = true
}}
plugins: {{
}}
transports: {{
}}
events: {{
}}
""")
        (conf / "janus.transport.http.jcfg").write_text(f"""
general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    port = {self.http_port}
    ip = "127.0.0.1"
    https = false
}}
admin: {{
    admin_http = false
}}
""")
        (conf / "janus.plugin.streaming.jcfg").write_text(
            "general: {\n}\n" + "".join(
                _MOUNTPOINT.format(n=n, port=self.rtp_port(n)) for n in range(1, self.cameras + 1)
            )
        )
        return conf

    def start(self, timeout: float = 20.0) -> None:
        conf = self._configure()
        log = (self.workdir / "janus.log").open("wb")
        self.process = subprocess.Popen(["janus", "-F", str(conf), "-o", "-N",
                                         "-L", str(self.workdir / "janus.out")],
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"janus exited with {self.process.returncode}; see "
                                   f"{self.workdir / 'janus.out'}")
            with contextlib.suppress(OSError), \
                    urllib.request.urlopen(f"{self.url}/info", timeout=2) as response:
                info = json.loads(response.read())
                if "janus.plugin.streaming" in info.get("plugins", {}):
                    return
            time.sleep(0.2)
        raise RuntimeError("janus did not answer on its HTTP API in time")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> JanusServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def ffmpeg_feeders(clip: Path, ports: list[int]) -> list[subprocess.Popen[bytes]]:
    """One ``ffmpeg -re`` per port sending the clip's H.264 as RTP (payload type 96)."""
    return [
        subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
             "-i", str(clip), "-an", "-c:v", "copy", "-payload_type", "96", "-f", "rtp",
             f"rtp://127.0.0.1:{port}?pkt_size=1200"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )
        for port in ports
    ]


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
