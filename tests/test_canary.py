"""The canary secrets of the run (tests/fixtures/canary.py) never reach a response, a log line
or a stored file. This module runs last (the plugin moves it there): its final test judges
everything the run did before it; the plugin searches again at the very end of the session."""

from __future__ import annotations

import ast
import asyncio
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from rtcc.config import SecurityConfig, Settings
from rtcc.policy import Role
from server.app import create_app
from tests.fixtures.auth import MakeClient, bearer, login, role_headers
from tests.fixtures.canary import (
    CAMSIM_PASSWORD,
    CAMSIM_USER,
    CANARIES,
    CAPTURE_DIR,
    CanaryState,
    Capture,
    scan_session,
)

TESTS = Path(__file__).resolve().parent
SECRET_NAMES = ("PASSWORD", "CANARY", "SECRET", "TOKEN")
"""A string of 8+ characters assigned to such a name, or given as ``password=``, must be a
registered canary: a new test secret joins the search automatically or this test says so."""
NOT_SECRETS = frozenset({"has_password", "password_ciphertext", "the password"})
MIN_RESPONSES = 10
MIN_LOG_RECORDS = 5

log = logging.getLogger("tests.canary")


async def _leaky_app(served: Path) -> web.Application:
    """A server that gets everything wrong, to prove each kind of leak is seen."""

    async def header(request: web.Request) -> web.Response:  # noqa: ARG001 -- aiohttp handler
        return web.Response(text="ok", headers={"X-Debug": CAMSIM_PASSWORD})

    async def body(request: web.Request) -> web.Response:  # noqa: ARG001 -- aiohttp handler
        url = f"rtsp://{CAMSIM_USER}:{quote(CAMSIM_PASSWORD, safe='')}@10.0.0.1/main"
        return web.json_response({"url": url})

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_compression()  # captured before compression
        await response.prepare(request)
        half = len(CAMSIM_PASSWORD) // 2
        await response.write(b"data: " + CAMSIM_PASSWORD[:half].encode())
        await response.write(CAMSIM_PASSWORD[half:].encode() + b"\n\n")  # split in two writes
        await response.write_eof()
        return response

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"camera": {"password": CAMSIM_PASSWORD}})
        await ws.close()
        return ws

    async def file(request: web.Request) -> web.FileResponse:  # noqa: ARG001 -- aiohttp handler
        return web.FileResponse(served)

    async def logged(request: web.Request) -> web.Response:  # noqa: ARG001 -- aiohttp handler
        try:
            raise ConnectionError(f"cannot open rtsp://{CAMSIM_USER}:{CAMSIM_PASSWORD}@cam")
        except ConnectionError:
            log.exception("camera %s failed", "cam-1")
        return web.Response(text="logged")

    async def echo(request: web.Request) -> web.Response:
        await request.json()
        return web.Response(text="stored")

    async def clean(request: web.Request) -> web.Response:  # noqa: ARG001 -- aiohttp handler
        return web.json_response({"has_password": True, "password_ciphertext": "not shown"})

    app = web.Application()
    app.router.add_get("/header", header)
    app.router.add_get("/body", body)
    app.router.add_get("/stream", streamed)
    app.router.add_get("/ws", socket)
    app.router.add_get("/file", file)
    app.router.add_get("/log", logged)
    app.router.add_post("/echo", echo)
    app.router.add_get("/clean", clean)
    return app


async def test_the_search_finds_every_kind_of_leak(canary_state: CanaryState) -> None:
    with tempfile.TemporaryDirectory(prefix="canary-selftest-") as scratch:
        root = Path(scratch)
        served = root / "served.txt"
        served.write_text(f"password={CAMSIM_PASSWORD}\n")
        (root / "store").mkdir()
        (root / "store" / "db.sqlite3").write_bytes(b"\x00SQLite" + CAMSIM_PASSWORD.encode())
        (root / "store" / "clean.bin").write_bytes(b"\x00" * 4096)
        private = Capture(root / CAPTURE_DIR)
        with canary_state.diverted(private):
            client = TestClient(TestServer(await _leaky_app(served)))
            await client.start_server()
            try:
                for path in ("/header", "/body", "/stream", "/file", "/log", "/clean"):
                    response = await client.get(path, headers={"Accept-Encoding": "gzip"})
                    assert response.status == 200, path
                    await response.read()
                async with client.ws_connect("/ws") as ws:
                    assert (await ws.receive_json())["camera"]["password"] == CAMSIM_PASSWORD
                response = await client.post("/echo", json={"password": CAMSIM_PASSWORD})
                assert await response.text() == "stored"
            finally:
                await client.close()
        private.scan_captured()
        private.scan_tree(root)
        private.close()

    found = {(leak.kind, leak.where.split(" -> ")[0], leak.form) for leak in private.leaks
             if leak.canary == "camsim-password"}
    assert ("response", "GET /header", "plain") in found
    assert ("response", "GET /body", "percent-encoded") in found
    assert ("response", "GET /stream", "plain") in found
    assert ("websocket", "WebSocket /ws", "plain") in found
    assert ("served file", "GET /file", "plain") in found
    assert ("log", "tests.canary ERROR", "plain") in found
    assert ("file", "store/db.sqlite3", "plain") in found
    assert ("file", "served.txt", "plain") in found
    assert not [leak for leak in private.leaks if "/clean" in leak.where or "/echo" in leak.where
                or "clean.bin" in leak.where], private.leaks
    assert all(CAMSIM_PASSWORD not in leak.describe() for leak in private.leaks)
    assert private.uses["camsim-password"] == 1  # the POST body: a request, not a leak
    assert private.responses >= 8
    assert private.websocket_frames >= 1


async def test_camera_registered_with_a_canary_password_never_shows_it(
    tmp_path: Path, bootstrap_token: str, make_client: MakeClient, canary_state: CanaryState,
    request: pytest.FixtureRequest,
) -> None:
    settings = Settings(data_dir=tmp_path / "data",
                        security=SecurityConfig(allow_private_camera_hosts=["10.0.0.0/8"]))
    client = await make_client(create_app(settings))
    admin = bearer(bootstrap_token)
    camera = {"id": "canary-cam", "name": "Canary camera", "lat": 39.8, "lon": -89.6,
              "sharing": "live_always",
              "profiles": {"main": {"url": "rtsp://10.66.0.1:9/main", "username": CAMSIM_USER,
                                    "password": CAMSIM_PASSWORD}}}
    answers: list[str] = []

    async def call(method: str, path: str, expect: int, **kwargs: object) -> None:
        response = await client.request(method, path, headers=admin, **kwargs)  # type: ignore[arg-type]
        answers.append(await response.text())
        assert response.status == expect, (method, path, answers[-1])

    await call("POST", "/api/cameras", 201, json=camera)
    await call("GET", "/api/cameras/canary-cam", 200)
    await call("GET", "/api/cameras?limit=10", 200)
    await call("GET", "/api/cameras/export", 200)
    await call("PATCH", "/api/cameras/canary-cam", 200, json={"name": "Renamed"})
    with_credentials = f"rtsp://{CAMSIM_USER}:{quote(CAMSIM_PASSWORD, safe='')}@10.66.0.1/main"
    await call("POST", "/api/cameras", 400, json={
        **camera, "id": "bad-cam", "profiles": {"main": {"url": with_credentials}}})
    await call("POST", "/api/cameras", 400, json={
        **camera, "id": "bad-cam2", "profiles": {"main": {"url": "rtsp://10.66.0.1/",
                                                         "password": [CAMSIM_PASSWORD]}}})
    await call("GET", "/api/streams", 200)
    await call("GET", "/metrics", 200)
    analyst, _ = await role_headers(client, admin, Role.ANALYST)
    await login(client, analyst)
    response = await client.get("/console/")
    answers.append(await response.text())

    for text in answers:
        assert CAMSIM_PASSWORD not in text
        assert quote(CAMSIM_PASSWORD, safe="") not in text
    await asyncio.sleep(0)
    canary_state.capture.scan_captured()
    mine = [leak for leak in canary_state.capture.leaks if leak.test == request.node.nodeid]
    assert not mine, "\n".join(leak.describe() for leak in mine)
    assert canary_state.capture.uses["camsim-password"] >= 1


LEAKY_RUN = """
import logging
from tests.fixtures.canary import CAMSIM_PASSWORD

def test_clean(tmp_path):
    (tmp_path / "clean.txt").write_text("nothing to see")

def test_leaks_into_a_log_line_and_a_file(tmp_path):
    logging.getLogger("rtcc.leaky").warning("pulling rtsp://viewer:%s@cam/", CAMSIM_PASSWORD)
    (tmp_path / "store.sqlite3").write_bytes(b"\\x00" + CAMSIM_PASSWORD.encode())
"""


def test_a_leak_fails_the_whole_session_with_a_report() -> None:
    """The plugin on its own in a separate pytest run: the tests pass, the session fails."""
    with tempfile.TemporaryDirectory(prefix="canary-session-") as scratch:  # not under basetemp
        root = Path(scratch)
        (root / "test_leaky.py").write_text(LEAKY_RUN)
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "tests.fixtures.canary",
             "-p", "no:cacheprovider", f"--basetemp={root / 'basetemp'}", "--rootdir", scratch,
             str(root / "test_leaky.py")],
            cwd=TESTS.parent, capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "PYTHONPATH": str(TESTS.parent)},
        )
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "2 passed" in output
    assert "LEAK(S)" in output
    assert "log: rtcc.leaky WARNING (test test_leaky.py::test_leaks_into_a_log_line" in output
    assert "file: test_leaks_into_a_log_line_and0/store.sqlite3" in output
    assert "<camsim-password>" in output
    assert CAMSIM_PASSWORD not in output


def _secret_literals(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []

    def consider(node: ast.AST | None, line: int) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
            if len(value) >= 8 and value not in NOT_SECRETS and "{" not in value:
                found.append((line, value))

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if any(word in name.upper() for name in names for word in SECRET_NAMES):
                consider(node.value, node.lineno)
        elif isinstance(node, ast.keyword) and node.arg and "password" in node.arg:
            consider(node.value, node.value.lineno)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "password":
                    consider(value, value.lineno)
        elif isinstance(node, ast.Call) and any(
                isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                and "canary" in arg.value.lower() for arg in node.args):
            for arg in node.args:  # e.g. RtspTarget(url, "user", "wrong-password-canary")
                if isinstance(arg, ast.Constant) and "canary" in str(arg.value).lower():
                    consider(arg, arg.lineno)
    return found


def test_every_secret_literal_in_the_tests_is_a_canary() -> None:
    known = {canary.value for canary in CANARIES}
    missing: list[str] = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.name in ("canary.py", "test_canary.py"):
            continue
        for line, value in _secret_literals(ast.parse(path.read_text(), str(path))):
            if value not in known and not any(value in k or k in value for k in known):
                missing.append(f"{path.relative_to(TESTS.parent)}:{line}: {value!r}")
    assert not missing, ("secret-looking strings the canary search does not know; add them to "
                         "CANARIES in tests/fixtures/canary.py:\n" + "\n".join(missing))


def test_the_run_leaked_no_canary(canary_state: CanaryState,
                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    """Last test of the run: everything captured so far and every file under basetemp."""
    leaks = scan_session(canary_state, tmp_path_factory.getbasetemp())
    capture = canary_state.capture
    assert not leaks, f"{len(leaks)} leak(s) of a canary secret:\n" + "\n".join(
        leak.describe() for leak in leaks[:50])
    assert capture.responses >= MIN_RESPONSES, capture.figures()
    assert capture.log_records >= MIN_LOG_RECORDS, capture.figures()
    assert capture.files_scanned >= 1, capture.figures()
    assert sum(capture.uses.values()) >= 1, "no canary reached a server: the search proves nothing"
    unused = [canary.name for canary in CANARIES
              if canary.sent_by in canary_state.passed_files and not capture.uses[canary.name]]
    assert not unused, (f"{unused} should have reached a server in a request (their tests passed) "
                        f"but the capture never saw them: {capture.figures()}")
