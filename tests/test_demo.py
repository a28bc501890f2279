"""The README's first command: `rtcc demo` starts the simulator and the server, the demo cameras
are listed, and Ctrl-C stops everything with no process left behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from playwright.async_api import Browser

from tests.fixtures.browser import artifact

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_config(tmp_path: Path) -> Path:
    """configs/demo.yaml with its ports and data folder moved out of the way of a running demo."""
    data = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    rtsp_port = free_port()
    data["camsim"]["port"] = rtsp_port
    for camera in data["cameras"]:
        for profile in camera.get("profiles", {}).values():
            profile["url"] = profile["url"].replace(":8554/", f":{rtsp_port}/")
    data["data_dir"] = str(tmp_path / "data")
    data["notify"]["smtp_port"] = free_port()
    data["store"] = f"sqlite:///{tmp_path / 'data' / 'rtcc.sqlite3'}"
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if marker in line:
            return lines
    raise AssertionError(f"{marker!r} not printed; output so far: {lines}")


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


class Demo:
    def __init__(self, process: subprocess.Popen[str], base: str, user: str, password: str,
                 config: Path) -> None:
        self.process = process
        self.base = base
        self.user = user
        self.password = password
        self.config = config


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """`rtcc demo` as a person runs it, on free ports and a temporary data folder."""
    config = demo_config(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RTCC_BOOTSTRAP_TOKEN"}
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "demo", "--config", str(config), "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    try:
        lines = read_until(process, "Press Ctrl-C", timeout=60)
        base = f"http://127.0.0.1:{port}"
        assert f"{base}/console/" in "\n".join(lines)
        assert f"{base}/register/" in "\n".join(lines)  # the owner portal
        assert f"{base}/play/" in "\n".join(lines)  # the one-camera player
        login_line = next(line for line in lines if "Log in as:" in line)
        user, password = login_line.split(":", 1)[1].strip().split(" / ")
        yield Demo(process, base, user, password, config)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_demo_serves_the_cameras_and_stops_cleanly_on_ctrl_c(demo: Demo) -> None:
    simulator = children_of(demo.process.pid)
    assert simulator, "the camera simulator runs as a child process"
    base = demo.base
    with urllib.request.urlopen(f"{base}/api/health", timeout=10) as response:
        assert json.load(response)["status"] == "ok"

    request = urllib.request.Request(
        f"{base}/api/login",
        data=json.dumps({"username": demo.user, "password": demo.password}).encode(),
        headers={"Content-Type": "application/json", "Origin": base}, method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        cookie = response.headers["Set-Cookie"].split(";", 1)[0]
    streams_request = urllib.request.Request(f"{base}/api/streams", headers={"Cookie": cookie})
    with urllib.request.urlopen(streams_request, timeout=10) as response:
        streams = json.load(response)["streams"]
    config = yaml.safe_load(demo.config.read_text())
    expected = {(c["id"], p) for c in config["cameras"] for p in c.get("profiles", {})}
    assert {(s["camera_id"], s["profile"]) for s in streams} == expected
    assert len(expected) >= 12

    # The CAD simulator (a child too) posts incidents with the demo's integration token.
    incidents: list[dict[str, object]] = []
    deadline = time.monotonic() + 30
    while not incidents and time.monotonic() < deadline:
        board = urllib.request.Request(f"{base}/api/cad/incidents?status=all",
                                       headers={"Cookie": cookie})
        with urllib.request.urlopen(board, timeout=10) as response:
            incidents = json.load(response)["incidents"]
        time.sleep(0.2)
    assert incidents, "no CAD incident arrived from the simulator"
    assert str(incidents[0]["id"]).startswith("urn:emergency:uid:incidentid:")
    simulator = children_of(demo.process.pid)

    demo.process.send_signal(signal.SIGINT)
    assert demo.process.wait(timeout=30) == 0
    for pid in simulator:
        stat = Path(f"/proc/{pid}/stat")
        alive = stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        assert not alive, f"simulator {pid} outlived the demo"


@pytest.mark.slow
@pytest.mark.browser
async def test_a_person_logs_in_sees_the_cameras_and_plays_one(
    demo: Demo, chromium: Browser
) -> None:
    page = await chromium.new_page(viewport={"width": 1280, "height": 800})
    await page.goto(f"{demo.base}/console/")
    await page.wait_for_url("**/login?next=*")
    await page.fill("#username", demo.user)
    await page.fill("#password", demo.password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{demo.base}/console/")
    # The wall console lists the cameras in the map's view, each with whether it may be opened.
    camera = "#results li[data-camera-id='city-hall-plaza']"
    await page.wait_for_selector(f"{camera}[data-access=open]")
    names = [await row.get_attribute("data-camera-id")
             for row in await page.locator("#results li.result").all()]
    assert "city-hall-plaza" in names
    await page.screenshot(path=artifact("demo-console.png"))

    await page.fill("#purpose", "demo walkthrough")
    await page.press("#purpose", "Enter")
    await page.click(f"{camera} button.add")
    tile = "#wall .tile[data-camera='city-hall-plaza']"
    # Polled from Python: the page's CSP forbids evaluating strings as script.
    decoded = 0
    for _ in range(200):
        decoded = int(await page.get_attribute(tile, "data-frames-decoded") or "0")
        if decoded > 0:
            break
        await page.wait_for_timeout(100)
    assert decoded > 0, await page.text_content(f"{tile} .tile-message")
    await page.screenshot(path=artifact("demo-play.png"))
    await page.close()
