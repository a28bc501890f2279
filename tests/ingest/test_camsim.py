"""The camera simulator process: start, failure messages, no orphans."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys

import av
import pytest

from camsim.runner import SCRIPT, SYSTEM_PYTHON, Camsim, CamsimUnavailable, run_camsim
from rtcc.config import CamsimCameraConfig, CamsimConfig
from tests.fixtures.camsim import CamsimHandle

needs_system_python = pytest.mark.skipif(
    not SYSTEM_PYTHON.exists(), reason=f"needs {SYSTEM_PYTHON} with python3-gi"
)
TINY = CamsimCameraConfig(name="Tiny", path="tiny", width=160, height=120, fps=5,
                          bitrate_kbps=100)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it counts as gone only once reaped.
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().split()[2] == "Z"


def test_ffprobe_style_pull_with_pyav(camsim: CamsimHandle) -> None:
    """The simulator is a real RTSP server: a plain PyAV client reads it, as in FIELD_NOTES."""
    with av.open(camsim.url("gop4"), options={"rtsp_transport": "tcp"}, timeout=(5, 5)) as c:
        stream = c.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (640, 360)
        assert stream.codec_context.name == "h264"


async def test_stop_reaps_the_process_group(camsim: CamsimHandle) -> None:
    pid = camsim.pid
    assert pid is not None
    assert os.getpgid(pid) == pid  # its own process group
    camsim.freeze()  # even a stopped process is terminated
    await camsim.stop()
    assert _gone(pid)
    await camsim.stop()  # idempotent


async def test_restart_comes_back_on_the_same_port(camsim: CamsimHandle) -> None:
    port, pid = camsim.port, camsim.pid
    await camsim.restart()
    assert camsim.port == port
    assert camsim.pid != pid


@needs_system_python
def test_simulator_exits_when_its_parent_goes_away() -> None:
    spec = {"host": "127.0.0.1", "port": 0, "cameras": [{"path": "tiny", "width": 160,
                                                          "height": 120, "fps": 5}]}
    process = subprocess.Popen(
        [str(SYSTEM_PYTHON), str(SCRIPT), "-"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(json.dumps(spec).encode() + b"\n")
    process.stdin.flush()
    try:
        assert process.stdout.readline().startswith(b"READY port=")
        process.stdin.close()  # what the kernel does when the parent dies
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_missing_system_python_names_the_packages() -> None:
    sim = Camsim(CamsimConfig(cameras=[TINY]), python="/nonexistent/python3")
    with pytest.raises(CamsimUnavailable, match="apt-get install python3 python3-gi"):
        await sim.start()


@pytest.mark.skipif(importlib.util.find_spec("gi") is not None,
                    reason="this interpreter has the GObject bindings: it cannot play one without")
async def test_a_python_without_gi_is_reported() -> None:
    # The test's own interpreter (a venv) has no GObject bindings.
    sim = Camsim(CamsimConfig(cameras=[TINY]), python=sys.executable, port=0)
    with pytest.raises(CamsimUnavailable, match="python3-gi"):
        await sim.start()
    assert not sim.running


@needs_system_python
async def test_port_in_use_is_reported(camsim: CamsimHandle) -> None:
    sim = Camsim(CamsimConfig(cameras=[TINY]), port=camsim.port)
    with pytest.raises(CamsimUnavailable, match="cannot listen"):
        await sim.start()
    assert not sim.running


def test_options_for_unknown_cameras_are_refused() -> None:
    from camsim.runner import CameraOptions

    with pytest.raises(ValueError, match="unknown camera paths"):
        Camsim(CamsimConfig(cameras=[TINY]), options={"other": CameraOptions()})


@needs_system_python
async def test_run_camsim_serves_until_cancelled(
    unused_tcp_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    config = CamsimConfig(port=unused_tcp_port, cameras=[TINY])
    task = asyncio.create_task(run_camsim(config), name="camsim:test")
    try:
        async with asyncio.timeout(20):
            while f"rtsp://127.0.0.1:{unused_tcp_port}/tiny" not in capsys.readouterr().out:
                await asyncio.sleep(0.1)
        with av.open(f"rtsp://127.0.0.1:{unused_tcp_port}/tiny",
                     options={"rtsp_transport": "tcp", "analyzeduration": "300000"},
                     timeout=(5, 5)) as container:
            assert container.streams.video[0].codec_context.width == 160
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
