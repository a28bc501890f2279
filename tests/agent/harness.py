"""Real processes for agent tests: the server (the real application on a fixed loopback port,
restartable), the agent (``python -m rtcc agent`` as a child process), and HTTP helpers that
keep every response body so tests can search them for secrets."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ingest.agentlink.whip_source import WhipTimings
from ingest.agentlink.wiring import AGENT_TIMINGS
from rtcc.access import CameraConsent
from rtcc.appkeys import CAMERA_DIRECTORY, HUB
from rtcc.config import HubConfig, Settings
from rtcc.hub import StreamHub
from server.app import create_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Directory:
    """What the catalog would answer about consent, for the cameras a test registers."""

    def __init__(self) -> None:
        self.consents: dict[str, CameraConsent] = {}

    async def consent_of(self, camera_id: str) -> CameraConsent | None:
        return self.consents.get(camera_id)


def agent_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", hub=HubConfig(start_timeout=25.0, close_after=1.0))


@dataclass
class ServerHarness:
    settings: Settings
    port: int = field(default_factory=free_port)
    directory: Directory = field(default_factory=Directory)
    test_directory: bool = True
    """False: consent comes from the real catalog, as in production."""
    configure: Callable[[web.Application], None] | None = None
    app: web.Application | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hub(self) -> StreamHub:
        assert self.app is not None
        return self.app[HUB]

    async def start(self) -> None:
        app = create_app(self.settings)
        app[AGENT_TIMINGS] = WhipTimings(backoff_initial=0.5, backoff_max=2.0)
        if self.test_directory:
            app[CAMERA_DIRECTORY] = self.directory
        if self.configure is not None:
            self.configure(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self.app, self._runner = app, runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self.app = None


@dataclass
class Api:
    """HTTP calls to the server; every response body is kept in ``seen``."""

    base: str
    http: aiohttp.ClientSession
    seen: list[str] = field(default_factory=list)

    async def call(self, method: str, path: str, headers: dict[str, str] | None = None,
                   **kwargs: Any) -> tuple[int, Any]:
        async with self.http.request(method, self.base + path, headers=headers,
                                     **kwargs) as response:
            body = await response.read()
            self.seen.append(body.decode("latin-1"))
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, body

    async def ok(self, method: str, path: str, headers: dict[str, str] | None = None,
                 expect: int = 200, **kwargs: Any) -> Any:
        status, body = await self.call(method, path, headers, **kwargs)
        assert status == expect, (method, path, status, body)
        return body


async def account(api: Api, admin: dict[str, str], username: str, role: str, *,
                  owner_id: str | None = None, token_name: str = "test") -> dict[str, str]:
    """A new account (made by the administrator) and a bearer header for it."""
    fields = {"username": username, "role": role, "password": "correct horse battery staple"}
    if owner_id is not None:
        fields["owner_id"] = owner_id
    user = await api.ok("POST", "/api/users", admin, 201, json=fields)
    token = await api.ok("POST", f"/api/users/{user['user']['id']}/tokens", admin, 201,
                         json={"name": token_name})
    return {"Authorization": f"Bearer {token['token']}"}


async def bootstrap(api: Api, admin: dict[str, str], owner_id: str) -> dict[str, str]:
    """An owner account and a bearer header for it."""
    return await account(api, admin, f"owner-{owner_id}", "owner", owner_id=owner_id)


async def enrollment_token(api: Api, owner: dict[str, str]) -> str:
    """A one-time enrollment token for one of the owner's agents."""
    enrollment = await api.ok("POST", "/api/agent/enrollments", owner, 201, json={})
    return str(enrollment["token"])


async def list_agents(api: Api, owner: dict[str, str]) -> list[dict[str, Any]]:
    """The owner's agents, each with its cameras."""
    agents: list[dict[str, Any]] = (await api.ok("GET", "/api/agents", owner))["agents"]
    return agents


async def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.2)


class AgentProcess:
    """``python -m rtcc agent ...`` with its log in a file."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, args: list[str], env: dict[str, str]) -> None:
        log = self.log_path.open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server", "--log-level", "debug", "agent", *args,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                env={**os.environ, **env}, start_new_session=True,
            )
        finally:
            log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait(self, timeout: float) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
