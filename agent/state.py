"""The agent's state directory: its credential (file mode 0600, directory 0700) and enrolling.

The credential is written once, atomically, readable only by the agent's user; the enrollment
token is spent by the exchange and never stored.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from rtcc.errors import RtccError

log = logging.getLogger(__name__)

CREDENTIAL_FILE = "credential.json"
ENROLL_TIMEOUT = 20.0


class AgentSetupError(RtccError):
    """The agent cannot start: not enrolled, enrollment refused, unreadable state."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True)
class Credential:
    server: str
    agent_id: str
    owner_id: str
    secret: str = field(repr=False)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


def normalize_server(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AgentSetupError(f"--server must be an http:// or https:// URL (got {url[:80]!r})")
    if parts.username or parts.password:
        raise AgentSetupError("--server must not contain credentials")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def load_credential(state_dir: Path) -> Credential | None:
    path = state_dir / CREDENTIAL_FILE
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s was readable by other users: restricting it to mode 0600", path)
        path.chmod(0o600)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Credential(str(data["server"]), str(data["agent_id"]), str(data["owner_id"]),
                          str(data["credential"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AgentSetupError(f"{path} cannot be read ({type(exc).__name__}); delete it and "
                              "enroll again with a new token") from None


def save_credential(state_dir: Path, credential: Credential) -> Path:
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    path = state_dir / CREDENTIAL_FILE
    temporary = state_dir / f".{CREDENTIAL_FILE}.{os.getpid()}"
    body = json.dumps({"server": credential.server, "agent_id": credential.agent_id,
                       "owner_id": credential.owner_id, "credential": credential.secret})
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


async def enroll(server: str, token: str, name: str) -> Credential:
    """Trade the one-time enrollment token for this agent's credential."""
    url = f"{server}/api/agent/enroll"
    try:
        timeout = aiohttp.ClientTimeout(total=ENROLL_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as http, \
                http.post(url, json={"token": token, "name": name}) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = {}
            status = response.status
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise AgentSetupError(f"cannot reach {server} to enroll ({type(exc).__name__}); "
                              "check --server and the network", exit_code=4) from None
    if status != 201 or not isinstance(body, dict) or "credential" not in body:
        reason = body.get("error") if isinstance(body, dict) else None
        raise AgentSetupError(f"enrollment refused (HTTP {status}): "
                              f"{reason or 'no reason given'}", exit_code=4)
    return Credential(server, str(body["agent_id"]), str(body["owner_id"]),
                      str(body["credential"]))
