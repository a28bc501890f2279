"""The agent's control connection: one WebSocket to the server, kept open with heartbeats and
reopened with capped, jittered backoff when it drops (the server restarts, the link fails).

On the connection: ``hello``, the inventory (again after every refresh), heartbeats with
counters, and the answers to the server's commands, each run as its own task so a slow camera
does not delay the others. Publishes live as long as the connection that asked for them.
A revoked or unknown credential stops the agent with exit status 3.

With a rolling buffer (``AgentOptions.buffer``) every camera is also recorded on this machine
(``agent.buffer``), and approved footage requests are uploaded from it
(``agent.footage``): ordered by ``upload_footage`` commands, and looked up after every
connection. Uploads do not depend on the control connection and survive a restart.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from agent.buffer import BufferedCamera, BufferOptions, RollingBuffer
from agent.cameras import AgentCamera, Inventory
from agent.footage import FootageUploader
from agent.publisher import Publisher, PublishError
from agent.snapshot import grab_jpeg
from agent.state import Credential
from ingest.backoff import Backoff
from ingest.onvif.models import OnvifError
from rtcc import agent_protocol as proto
from rtcc.camera_url import scrub
from rtcc.cameras import CameraId, camera_id_for
from rtcc.config import IngestConfig
from rtcc.errors import RtccError

log = logging.getLogger(__name__)

VERSION = "rtcc-agent/1"
CONNECT_TIMEOUT = 10.0
INVENTORY_WAIT = 40.0


class CredentialRefused(RtccError):
    """The server no longer accepts this agent's credential."""


class CommandFailed(RtccError):
    pass


@dataclass
class AgentOptions:
    inventory_interval: float = 300.0
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    ice_servers: list[str] = field(default_factory=list)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    buffer: BufferOptions | None = None
    """Keep a rolling buffer of every camera (None: no buffer, footage requests fail)."""
    upload_kbps: float = 0.0
    """Upper limit of the footage upload rate (0: none)."""


class Agent:
    def __init__(self, credential: Credential, inventory: Inventory,
                 options: AgentOptions | None = None) -> None:
        self.credential = credential
        self.inventory = inventory
        self.options = options or AgentOptions()
        self.camera_ids: dict[str, str] = {}
        self.publishers: dict[tuple[str, str], Publisher] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._commands: set[asyncio.Task[None]] = set()
        self.connects = 0
        buffer_options = self.options.buffer
        self.buffer = RollingBuffer(buffer_options, self.options.ingest) \
            if buffer_options is not None else None
        self.footage = FootageUploader(credential, self.buffer, my_cameras=self.my_camera_ids,
                                       kbps=self.options.upload_kbps,
                                       backoff_max=max(self.options.backoff_max, 1.0))

    def camera_id(self, key: str) -> CameraId:
        """The server's id of this agent's camera ``key`` (the server derives it the same way)."""
        return camera_id_for(self.credential.agent_id, key)

    def my_camera_ids(self) -> set[str]:
        found: set[str] = {self.camera_id(key) for key in self.inventory.cameras}
        if self.buffer is not None:
            found.update(self.buffer.store.cameras_with_segments())
        return found

    @property
    def ws_url(self) -> str:
        server = self.credential.server
        scheme = "wss" if server.startswith("https:") else "ws"
        return f"{scheme}{server[server.index(':'):]}/api/agent/ws"

    async def run(self) -> None:
        """Until cancelled; raises CredentialRefused when the server refuses the credential."""
        if self.buffer is not None:
            await self.buffer.open()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._refresh_loop(), name="agent:inventory")
            group.create_task(self._control_loop(), name="agent:control")
            group.create_task(self.footage.run(), name="agent:footage")
            if self.buffer is not None:
                group.create_task(self.buffer.run(), name="agent:buffer")

    # -- inventory ----------------------------------------------------------------------------

    async def _refresh_loop(self) -> None:
        while True:
            try:
                changed = await self.inventory.refresh()
            except Exception as exc:  # noqa: BLE001 -- supervisor: the next refresh tries again
                log.error("the camera inventory could not be refreshed: %s",
                          scrub(repr(exc), *self.inventory.secrets()))
                changed = False
            if changed or self.inventory.refreshes == 1:
                await self._send_inventory()
            if self.buffer is not None:
                try:
                    await self.buffer.follow({
                        self.camera_id(camera.key): BufferedCamera(camera.key,
                                                                   camera.rtsp["main"])
                        for camera in self.inventory.cameras.values() if "main" in camera.rtsp})
                except Exception:  # the next refresh tries again; live video keeps working
                    log.exception("the buffered cameras could not be updated")
            await asyncio.sleep(self.options.inventory_interval)

    async def _send_inventory(self) -> None:
        ws = self._ws
        if ws is None or ws.closed or not self.inventory.ready.is_set():
            return
        cameras = [report.to_json() for report in self.inventory.reports()]
        try:
            await ws.send_str(proto.encode("inventory", cameras=cameras))
        except (ConnectionError, RuntimeError) as exc:
            log.debug("inventory not sent: %s", exc)

    # -- connection ---------------------------------------------------------------------------

    async def _control_loop(self) -> None:
        options = self.options
        backoff = Backoff(options.backoff_initial, options.backoff_max)
        while True:
            try:
                await self._connection(backoff)
                reason = "the server closed the control connection"
            except CredentialRefused:
                raise
            except (aiohttp.ClientError, OSError, TimeoutError, proto.ProtocolError) as exc:
                reason = f"{type(exc).__name__}: {str(exc)[:200]}"
            except Exception as exc:  # a bug must not leave the owner's cameras offline
                log.exception("the control connection failed unexpectedly")
                reason = f"unexpected {type(exc).__name__}"
            finally:
                self._ws = None
                await self._end_session()
            delay = backoff.next_delay()
            log.warning("control connection lost (%s); reconnecting in %.1f s", reason, delay)
            await asyncio.sleep(delay)

    async def _connection(self, backoff: Backoff) -> None:
        timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0)
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT)
        ) as http:
            try:
                ws = await http.ws_connect(
                    self.ws_url, headers=self.credential.headers(), timeout=timeout,
                    heartbeat=proto.HEARTBEAT_SECONDS * 2, max_msg_size=proto.MAX_MESSAGE_BYTES,
                )
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status in (401, 403):
                    raise CredentialRefused(
                        f"the server refused this agent's credential (HTTP {exc.status}): it "
                        "was revoked or belongs to another server; enroll again") from None
                raise
            async with ws:
                close_code = await self._serve(ws, backoff)
            if close_code == proto.CLOSE_REVOKED:
                raise CredentialRefused("the server revoked this agent's credential")

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse, backoff: Backoff) -> int | None:
        """Until the connection closes; returns the server's close code, if it sent one."""
        await ws.send_str(proto.encode("hello", version=VERSION, hostname=socket.gethostname(),
                                       protocol=proto.VERSION))
        async with asyncio.timeout(CONNECT_TIMEOUT):
            welcome = proto.decode(await ws.receive_str())
        if welcome.get("type") != "welcome":
            raise proto.ProtocolError("the server did not welcome the agent")
        self._ws = ws
        self.connects += 1
        backoff.reset()
        log.info("connected to %s as agent %s", self.credential.server, self.credential.agent_id)
        await self._send_inventory()
        lookup = asyncio.get_running_loop().create_task(
            self._look_for_footage(), name="agent:footage:lookup")
        self._commands.add(lookup)
        lookup.add_done_callback(self._commands.discard)
        heartbeat = asyncio.get_running_loop().create_task(
            self._heartbeat(ws), name="agent:heartbeat")
        try:
            while True:
                message = await ws.receive()
                if message.type == aiohttp.WSMsgType.TEXT:
                    self._dispatch(ws, proto.decode(message.data))
                elif message.type == aiohttp.WSMsgType.CLOSE:
                    return int(message.data) if isinstance(message.data, int) else None
                elif message.type != aiohttp.WSMsgType.BINARY:
                    return ws.close_code
        finally:
            heartbeat.cancel()
            await asyncio.wait({heartbeat})

    async def _look_for_footage(self) -> None:
        """Approved footage requests the agent missed while it was away."""
        try:
            async with asyncio.timeout(INVENTORY_WAIT):
                await self.inventory.ready.wait()
        except TimeoutError:
            pass  # the cameras with buffered footage are known anyway
        try:
            found = await self.footage.sync()
        except Exception:  # looked up again in a while; the connection carries on
            log.exception("approved footage requests could not be looked up")
            return
        if found:
            log.info("%d approved footage requests found on the server", found)

    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(proto.HEARTBEAT_SECONDS)
            stats = {"cameras": len(self.inventory.cameras), "publishing": len(self.publishers),
                     "frames": sum(p.track.frames_out for p in self.publishers.values()),
                     "footage_segments_sent": self.footage.segments_sent}
            if self.buffer is not None:
                stats["buffer_bytes"] = self.buffer.bytes_held()
            try:
                await ws.send_str(proto.encode("heartbeat", stats=stats))
            except (ConnectionError, RuntimeError):
                return  # the receive loop sees the closed connection and reconnects

    async def _end_session(self) -> None:
        commands, self._commands = self._commands, set()
        for task in commands:
            task.cancel()
        if commands:
            await asyncio.wait(commands)
        publishers, self.publishers = self.publishers, {}
        for publisher in publishers.values():
            await publisher.stop("the control connection ended", delete=False)

    # -- commands -----------------------------------------------------------------------------

    def _dispatch(self, ws: aiohttp.ClientWebSocketResponse, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "inventory_ack":
            for item in message.get("cameras") or []:
                if isinstance(item, dict) and isinstance(item.get("key"), str):
                    self.camera_ids[item["key"]] = str(item.get("camera_id", ""))
        elif kind == "command":
            task = asyncio.get_running_loop().create_task(
                self._run_command(ws, message),
                name=f"agent:command:{proto.text_field(message, 'action', limit=20)}")
            self._commands.add(task)
            task.add_done_callback(self._commands.discard)
        elif kind == "error":
            log.warning("the server says: %s", proto.text_field(message, "error", limit=300))

    async def _run_command(self, ws: aiohttp.ClientWebSocketResponse,
                           message: dict[str, Any]) -> None:
        command_id = message.get("id", 0)
        action = message.get("action")
        try:
            if action not in proto.ACTIONS:
                raise CommandFailed(f"unknown action {str(action)[:40]!r}")
            handler = getattr(self, f"_do_{action}")
            data: dict[str, Any] = await handler(message)
            reply = proto.encode("result", id=command_id, ok=True, data=data)
        except (CommandFailed, OnvifError, PublishError, proto.ProtocolError, RtccError) as exc:
            error = scrub(str(exc), *self.inventory.secrets())
            log.warning("command %s failed: %s", action, error)
            reply = proto.encode("result", id=command_id, ok=False, error=error[:300])
        except Exception as exc:  # noqa: BLE001 -- a bug in one command must not end the connection
            log.error("command %s failed unexpectedly: %s", action,
                      scrub(repr(exc), *self.inventory.secrets()))
            reply = proto.encode("result", id=command_id, ok=False,
                                 error=f"the agent failed unexpectedly ({type(exc).__name__})")
        if command_id and not ws.closed:
            try:
                await ws.send_str(reply)
            except (ConnectionError, RuntimeError):
                log.info("the answer to %s was not sent: the connection closed", action)

    async def _camera(self, message: dict[str, Any]) -> AgentCamera:
        key = proto.camera_key(message.get("key"))
        if not self.inventory.ready.is_set():  # just started: the cameras are being probed
            try:
                async with asyncio.timeout(INVENTORY_WAIT):
                    await self.inventory.ready.wait()
            except TimeoutError:
                raise CommandFailed("the agent is still looking for its cameras") from None
        camera = self.inventory.get(key)
        if camera is None:
            raise CommandFailed(f"no camera {key!r} on this agent")
        return camera

    async def _do_start_stream(self, message: dict[str, Any]) -> dict[str, Any]:
        camera = await self._camera(message)
        profile = proto.profile_name(message.get("profile"))
        path = proto.text_field(message, "path", limit=300, required=True)
        if not path.startswith("/whip/"):
            raise CommandFailed("the publish path must start with /whip/")
        target = camera.rtsp.get(profile)
        if target is None:
            raise CommandFailed(f"camera {camera.key} has no {profile} profile "
                                f"({camera.report.error or 'not available'})")
        previous = self.publishers.pop((camera.key, profile), None)
        if previous is not None:
            await previous.stop("the server asked again")
        if camera.onvif is not None and profile in camera.tokens:
            try:  # a keyframe soon: the first picture does not wait a whole GOP
                await camera.onvif.set_synchronization_point(camera.tokens[profile])
            except OnvifError as exc:
                log.info("camera %s: no synchronization point (%s)", camera.key, exc)
        publisher = Publisher(
            name=f"{camera.key}/{profile}", whip_url=self.credential.server + path,
            headers=self.credential.headers(), target=target, ingest=self.options.ingest,
            ice_servers=self.options.ice_servers,
        )
        await publisher.start()
        self.publishers[(camera.key, profile)] = publisher
        watcher = asyncio.get_running_loop().create_task(
            self._watch(camera.key, profile, publisher), name=f"agent:publish:{camera.key}")
        self._commands.add(watcher)
        watcher.add_done_callback(self._commands.discard)
        return {"publishing": True}

    async def _watch(self, key: str, profile: str, publisher: Publisher) -> None:
        await publisher.ended.wait()
        if self.publishers.get((key, profile)) is publisher:
            del self.publishers[(key, profile)]
            await publisher.stop(publisher.reason)
            log.info("camera %s/%s: publish ended (%s)", key, profile, publisher.reason)

    async def _do_stop_stream(self, message: dict[str, Any]) -> dict[str, Any]:
        camera = await self._camera(message)
        profile = proto.profile_name(message.get("profile"))
        publisher = self.publishers.pop((camera.key, profile), None)
        if publisher is not None:
            await publisher.stop("the server stopped the stream")
            log.info("camera %s/%s: publish stopped (nobody watches)", camera.key, profile)
        return {"stopped": publisher is not None}

    async def _do_snapshot(self, message: dict[str, Any]) -> dict[str, Any]:
        camera = await self._camera(message)
        profile = proto.profile_name(message.get("profile", "main"))
        if camera.onvif is not None and camera.report.snapshot and profile in camera.tokens:
            image = await camera.onvif.snapshot(camera.tokens[profile],
                                                proto.MAX_SNAPSHOT_BYTES)
        else:
            target = camera.rtsp.get(profile) or camera.rtsp.get("main")
            if target is None:
                raise CommandFailed(f"camera {camera.key} has no stream to take a picture from")
            image = await grab_jpeg(target, self.options.ingest.open_timeout + 10.0)
        return {"jpeg": base64.b64encode(image).decode("ascii"), "bytes": len(image)}

    async def _do_ptz(self, message: dict[str, Any]) -> dict[str, Any]:
        camera = await self._camera(message)
        if message.get("ptz_allowed") is not True:
            raise CommandFailed("PTZ refused: the server did not say the owner allows it")
        if camera.onvif is None or not camera.report.ptz or "main" not in camera.tokens:
            raise CommandFailed(f"camera {camera.key} has no PTZ")
        token = camera.tokens["main"]
        if message.get("presets") is True:
            found = await camera.onvif.ptz_presets(token)
            return {"presets": [{"token": p.token, "name": p.name}
                                for p in found[:proto.MAX_PRESETS]]}
        if "goto_preset" in message:
            preset = proto.preset_token(message["goto_preset"])
            await camera.onvif.ptz_goto_preset(token, preset)
            return {"preset": preset}
        move = message.get("move")
        if isinstance(move, dict):
            await camera.onvif.ptz_move(
                token,
                proto.number_field(move, "pan", low=-1, high=1),
                proto.number_field(move, "tilt", low=-1, high=1),
                proto.number_field(move, "zoom", low=-1, high=1),
                proto.number_field(move, "timeout", low=0.1, high=60, default=1.0),
            )
            return {"moving": True}
        await camera.onvif.ptz_stop(token)
        return {"moving": False}

    async def _do_sync_point(self, message: dict[str, Any]) -> dict[str, Any]:
        camera = await self._camera(message)
        profile = proto.profile_name(message.get("profile", "main"))
        if camera.onvif is None or profile not in camera.tokens:
            raise CommandFailed(f"camera {camera.key} does not support synchronization points")
        await camera.onvif.set_synchronization_point(camera.tokens[profile])
        return {}

    async def _do_upload_footage(self, message: dict[str, Any]) -> dict[str, Any]:
        order = proto.FootageOrder.from_json(message)
        key = proto.camera_key(message.get("key"))
        if self.camera_id(key) != order.camera_id:
            raise CommandFailed(f"camera {order.camera_id} is not this agent's camera {key!r}")
        return {"accepted": True, "state": self.footage.order(order)}

    async def aclose(self) -> None:
        await self._end_session()
        await self.footage.aclose()
        if self.buffer is not None:
            await self.buffer.aclose()
        await self.inventory.aclose()
