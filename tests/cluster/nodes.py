"""Several ``rtcc serve`` nodes as real subprocesses sharing one PostgreSQL and one Redis."""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.fixtures import canary
from tests.fixtures.server_process import ROOT

CAMERA = "cam1"
PURPOSE = {"purpose": "cluster test"}


@dataclass
class Node:
    name: str
    config: Path
    log: Path
    process: subprocess.Popen[str]
    url: str = ""

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        """SIGINT, as an operator stops a node; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Cluster:
    tmp_path: Path
    redis_url: str
    database_url: str
    camera_url: str
    secret: str = field(default_factory=lambda: secrets.token_hex(32))
    keys: dict[str, str] = field(default_factory=dict)
    camera_options: dict[str, Any] = field(default_factory=dict)
    """More keys of the camera's configuration (``record: true``...)."""
    nodes: dict[str, Node] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        if not self.keys:
            self.keys = {"RTCC_SECRET_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
                         "RTCC_AUDIT_KEY": base64.b64encode(secrets.token_bytes(32)).decode()}
        return {**os.environ, **self.keys, "RTCC_CLUSTER_SECRET": self.secret,
                "RTCC_BOOTSTRAP_TOKEN": canary.BOOTSTRAP_TOKEN, "PYTHONPATH": str(ROOT),
                "RTCC_TEST_DATABASE_URL": self.database_url}

    def config(self, name: str) -> Path:
        document: dict[str, Any] = {
            "data_dir": str(self.tmp_path / name),
            "log_level": "info",
            "database": {"url": "${RTCC_TEST_DATABASE_URL}", "migrate_on_start": True},
            "security": {"allow_private_camera_hosts": ["127.0.0.0/8"],
                         # Long: a revocation must reach the other nodes by message.
                         "enforcement_interval_seconds": 60},
            "hub": {"close_after": 2.0},
            "cluster": {"redis_url": self.redis_url, "node_id": name, "lease_seconds": 3,
                        "secret": "${RTCC_CLUSTER_SECRET}"},
            "cameras": [{"id": CAMERA, "name": "camsim", "lat": 40.0, "lon": -75.0,
                         "sharing": "live_always",
                         "profiles": {"main": {"url": self.camera_url}},
                         **self.camera_options}],
        }
        path = self.tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(document))
        return path

    async def start(self, name: str, *, workers: int = 1) -> Node:
        config = self.config(name)
        log = self.tmp_path / f"{name}.log"
        with log.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "server", "serve", "--config", str(config),
                 "--port", "0", "--workers", str(workers)],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True, env=self.env())
        node = Node(name, config, log, process)
        self.nodes[name] = node
        node.url = await asyncio.to_thread(_listening, node)
        return node

    def close(self) -> None:
        for node in self.nodes.values():
            if node.process.poll() is None:
                node.process.kill()
                node.process.wait()
            if node.process.stdout is not None:
                node.process.stdout.close()


def _listening(node: Node) -> str:
    assert node.process.stdout is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = node.process.stdout.readline()
        if not line:
            raise AssertionError(f"node {node.name} exited before listening:\n{node.stderr()}")
        if "listening on" in line:
            return line.split("listening on ", 1)[1].split()[0]
    raise AssertionError(f"node {node.name} did not listen within 90 s:\n{node.stderr()}")


async def get_json(http: aiohttp.ClientSession, url: str,
                   headers: dict[str, str]) -> dict[str, Any]:
    async with http.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as r:
        assert r.status == 200, await r.text()
        data: dict[str, Any] = await r.json()
        return data


async def pulled_by(http: aiohttp.ClientSession, cluster: Cluster,
                    headers: dict[str, str]) -> list[str]:
    """The live nodes whose hub runs the camera's source now."""
    found = []
    for node in cluster.nodes.values():
        if node.process.poll() is not None:
            continue
        streams = (await get_json(http, f"{node.url}/api/streams", headers))["streams"]
        if any(s.get("camera_id") == CAMERA and s.get("state") != "idle" for s in streams):
            found.append(node.name)
    return found
