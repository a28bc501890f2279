"""Agents connected right now: one control WebSocket each, and commands sent over it.

``send_command(agent_id, action, ...)`` sends a ``command`` message and waits (with a timeout)
for the agent's ``result``; a newer connection of the same agent replaces the older one.
Sending never waits on another agent: each connection has its own socket and futures.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from typing import Any

from aiohttp import web

from rtcc import agent_protocol as proto
from rtcc.errors import RtccError

log = logging.getLogger(__name__)

SEND_TIMEOUT = 5.0


class AgentOffline(RtccError):
    def __init__(self, agent_id: str) -> None:
        super().__init__(f"agent {agent_id} is not connected; check that it runs and can reach "
                         "the server")
        self.agent_id = agent_id


class AgentCommandError(RtccError):
    """The agent answered a command with an error, or did not answer in time."""


class AgentConnection:
    def __init__(self, agent_id: str, owner_id: str, ws: web.WebSocketResponse,
                 source: str) -> None:
        self.agent_id = agent_id
        self.owner_id = owner_id
        self.ws = ws
        self.source = source
        self.connected_at = time.time()
        self.last_message = self.connected_at
        self.hostname = ""
        self.version = ""
        self.stats: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._send_lock = asyncio.Lock()
        self.closed = asyncio.Event()

    async def send(self, kind: str, **fields: Any) -> None:
        if self.ws.closed:
            raise AgentOffline(self.agent_id)
        async with self._send_lock:
            try:
                async with asyncio.timeout(SEND_TIMEOUT):
                    await self.ws.send_str(proto.encode(kind, **fields))
            except (ConnectionError, RuntimeError, TimeoutError):
                raise AgentOffline(self.agent_id) from None

    async def command(self, action: str, within: float, **params: Any) -> dict[str, Any]:
        command_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        try:
            await self.send("command", id=command_id, action=action, **params)
            try:
                async with asyncio.timeout(within):
                    result = await future
            except TimeoutError:
                raise AgentCommandError(
                    f"agent {self.agent_id} did not answer {action} within {within:g} s"
                ) from None
        finally:
            self._pending.pop(command_id, None)
        if not result.get("ok"):
            error = proto.text_field(result, "error", limit=300) or "no reason given"
            raise AgentCommandError(f"agent {self.agent_id}: {action} failed: {error}")
        data = result.get("data")
        return data if isinstance(data, dict) else {}

    def resolve(self, message: dict[str, Any]) -> None:
        command_id = message.get("id")
        future = self._pending.get(command_id) if isinstance(command_id, int) else None
        if future is not None and not future.done():
            future.set_result(message)

    def fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(AgentOffline(self.agent_id))
        self._pending.clear()

    async def close(self, code: int, message: str) -> None:
        self.fail_pending()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self.ws.close(code=code, message=message.encode()[:120])

    def as_json(self) -> dict[str, Any]:
        return {"connected_since": round(self.connected_at, 3),
                "last_message": round(self.last_message, 3), "source": self.source,
                "hostname": self.hostname, "version": self.version, "stats": self.stats}


class AgentRegistry:
    def __init__(self) -> None:
        self._connections: dict[str, AgentConnection] = {}
        self._changed = asyncio.Condition()

    def get(self, agent_id: str) -> AgentConnection | None:
        return self._connections.get(agent_id)

    def connected(self) -> list[AgentConnection]:
        return list(self._connections.values())

    async def attach(self, connection: AgentConnection) -> None:
        previous = self._connections.get(connection.agent_id)
        self._connections[connection.agent_id] = connection
        if previous is not None and previous is not connection:
            log.info("agent %s: a newer control connection replaces the previous one",
                     connection.agent_id)
            await previous.close(proto.CLOSE_REPLACED, "replaced by a newer connection")
        async with self._changed:
            self._changed.notify_all()

    async def detach(self, connection: AgentConnection) -> None:
        connection.fail_pending()
        connection.closed.set()
        if self._connections.get(connection.agent_id) is connection:
            del self._connections[connection.agent_id]
        async with self._changed:
            self._changed.notify_all()

    async def wait_connected(self, agent_id: str, within: float) -> AgentConnection | None:
        """The agent's connection, waiting up to ``within`` seconds for it to come."""
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: agent_id in self._connections)
        except TimeoutError:
            return None
        return self._connections.get(agent_id)

    async def send_command(self, agent_id: str, action: str, *, within: float = 15.0,
                           **params: Any) -> dict[str, Any]:
        connection = self._connections.get(agent_id)
        if connection is None:
            raise AgentOffline(agent_id)
        return await connection.command(action, within, **params)

    async def notify(self, agent_id: str, kind: str, **fields: Any) -> bool:
        """Send a message that needs no answer; False when the agent is not connected."""
        connection = self._connections.get(agent_id)
        if connection is None:
            return False
        try:
            await connection.send(kind, **fields)
        except AgentOffline:
            return False
        return True

    async def disconnect(self, agent_id: str, code: int, message: str) -> None:
        connection = self._connections.get(agent_id)
        if connection is not None:
            await connection.close(code, message)

    async def close_all(self, message: str = "server shutting down") -> None:
        connections = list(self._connections.values())
        await asyncio.gather(
            *(connection.close(1001, message) for connection in connections),
            return_exceptions=True,
        )
