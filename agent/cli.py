"""``rtcc agent``: the program that runs on the camera owner's network and connects out.

    rtcc agent --server https://rtcc.example.org --enroll TOKEN \\
        [--state-dir DIR] [--name NAME] \\
        [--camera rtsp://HOST/PATH ...] \\
        [--onvif HOST[:PORT] ... --onvif-user USER --onvif-password-env VAR] \\
        [--no-discovery | --discovery-target HOST[:PORT] ...] \\
        [--buffer-hours H [--buffer-dir DIR] [--buffer-max-mb MB] [--upload-kbps K]]

The first start trades the enrollment token for a credential kept in the state directory
(mode 0600); later starts need no token. Camera passwords come from environment variables,
never the command line, and never leave this machine.

With --buffer-hours the agent records every camera on this machine for that many hours (and at
most --buffer-max-mb), each segment hashed as it is written, and answers the footage requests
the owner approves by uploading the segments that cover them. Without it nothing is recorded
and approved requests are reported as failed.

Exit status: 0 stopped by a signal, 2 bad usage, 3 credential refused or revoked,
4 enrollment refused.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from agent.state import (
    AgentSetupError,
    Credential,
    enroll,
    load_credential,
    normalize_server,
    save_credential,
)
from ingest.onvif.discovery import MULTICAST, DiscoveryTarget
from rtcc.config import IngestConfig

if TYPE_CHECKING:
    from agent.buffer import BufferOptions

log = logging.getLogger("agent")

DEFAULT_STATE_DIR = Path.home() / ".rtcc-agent"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agent = sub.add_parser("agent", help="run the on-premises camera agent",
                           description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    agent.add_argument("--server", required=True, help="the RTCC server's URL")
    agent.add_argument("--enroll", metavar="TOKEN", help="one-time enrollment token (first start)")
    agent.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    agent.add_argument("--name", default="", help="how the owner portal shows this agent")
    agent.add_argument("--camera", action="append", default=[], metavar="RTSP_URL",
                       help="a camera's RTSP URL (repeatable)")
    agent.add_argument("--onvif", action="append", default=[], metavar="HOST[:PORT]|URL",
                       help="an ONVIF camera's address (repeatable)")
    agent.add_argument("--onvif-user", default="", help="ONVIF (and RTSP) user name")
    agent.add_argument("--onvif-password-env", metavar="VAR",
                       help="environment variable holding the ONVIF password")
    agent.add_argument("--no-discovery", action="store_true", help="do not probe the LAN")
    agent.add_argument("--discovery-target", action="append", default=[], metavar="HOST[:PORT]",
                       help="where WS-Discovery probes go (default 239.255.255.250:3702)")
    agent.add_argument("--discovery-wait", type=float, default=2.0)
    agent.add_argument("--inventory-interval", type=float, default=300.0)
    agent.add_argument("--backoff-max", type=float, default=30.0,
                       help="longest wait between reconnection attempts (seconds)")
    agent.add_argument("--stun", action="append", default=[], metavar="URL",
                       help="STUN/TURN server for WebRTC (none by default)")
    buffer = agent.add_argument_group("rolling buffer (footage requests)")
    buffer.add_argument("--buffer-hours", type=float, default=0.0, metavar="H",
                        help="hours of footage kept per camera (default 0: no buffer)")
    buffer.add_argument("--buffer-dir", type=Path, metavar="DIR",
                        help="where the buffer is kept (default STATE_DIR/buffer)")
    buffer.add_argument("--buffer-max-mb", type=int, default=10240, metavar="MB",
                        help="size limit of the buffer, oldest evicted first (default 10240; "
                             "0: none)")
    buffer.add_argument("--buffer-segment-seconds", type=float, default=10.0, metavar="S",
                        help="length of a buffered segment, cut at keyframes (default 10)")
    buffer.add_argument("--buffer-min-free-mb", type=int, default=512, metavar="MB",
                        help="free disk space below which buffering stops (default 512)")
    buffer.add_argument("--upload-kbps", type=float, default=0.0, metavar="K",
                        help="upper limit of the footage upload rate in kbit/s (default 0: "
                             "none)")


async def _credential(args: argparse.Namespace, server: str) -> Credential:
    state_dir: Path = args.state_dir
    credential = load_credential(state_dir)
    if credential is not None:
        if credential.server != server:
            raise AgentSetupError(f"{state_dir} holds the credential for {credential.server}; "
                                  "use another --state-dir for another server")
        if args.enroll:
            log.warning("already enrolled as agent %s: --enroll is ignored",
                        credential.agent_id)
        return credential
    if not args.enroll:
        raise AgentSetupError("this agent is not enrolled yet: start it once with "
                              "--enroll TOKEN (from the owner portal)")
    credential = await enroll(server, args.enroll, args.name or os.uname().nodename)
    path = save_credential(state_dir, credential)
    log.info("enrolled as agent %s for owner %s; credential stored in %s (mode 0600)",
             credential.agent_id, credential.owner_id, path)
    return credential


def _buffer_options(args: argparse.Namespace) -> BufferOptions | None:
    from agent.buffer import BufferOptions

    hours: float = args.buffer_hours
    if hours < 0 or hours > 24 * 90:
        raise AgentSetupError("--buffer-hours must be between 0 and 2160 (90 days)")
    if hours == 0:
        return None
    if not 2.0 <= args.buffer_segment_seconds <= 300.0:
        raise AgentSetupError("--buffer-segment-seconds must be between 2 and 300")
    if args.buffer_max_mb < 0 or args.buffer_min_free_mb < 0:
        raise AgentSetupError("--buffer-max-mb and --buffer-min-free-mb cannot be negative")
    if args.upload_kbps < 0:
        raise AgentSetupError("--upload-kbps cannot be negative")
    directory: Path = args.buffer_dir or (args.state_dir / "buffer")
    return BufferOptions(directory=directory, hours=hours,
                         max_bytes=args.buffer_max_mb * 2**20,
                         segment_seconds=args.buffer_segment_seconds,
                         min_free_bytes=args.buffer_min_free_mb * 2**20,
                         upkeep_interval=min(30.0, max(1.0, hours * 3600.0 / 10)))


async def _main(args: argparse.Namespace) -> int:
    from agent.cameras import Credentials, Inventory
    from agent.control import Agent, AgentOptions, CredentialRefused

    for noisy in ("onvif", "zeep"):  # their debug output dumps SOAP envelopes
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    server = normalize_server(args.server)
    password = ""
    if args.onvif_password_env:
        if args.onvif_password_env not in os.environ:
            raise AgentSetupError(f"environment variable {args.onvif_password_env} is not set")
        password = os.environ[args.onvif_password_env]
    try:
        targets = tuple(DiscoveryTarget.parse(t) for t in args.discovery_target) or (MULTICAST,)
    except ValueError as exc:
        raise AgentSetupError(str(exc)) from None
    buffer = _buffer_options(args)
    credential = await _credential(args, server)
    inventory = Inventory(
        rtsp_urls=args.camera, onvif_addresses=args.onvif,
        onvif_credentials=Credentials(args.onvif_user, password),
        discover=not args.no_discovery, discovery_targets=targets,
        discovery_wait=args.discovery_wait,
    )
    options = AgentOptions(inventory_interval=args.inventory_interval,
                           backoff_max=args.backoff_max, ice_servers=list(args.stun),
                           ingest=IngestConfig(), buffer=buffer, upload_kbps=args.upload_kbps)
    agent = Agent(credential, inventory, options)
    loop = asyncio.get_running_loop()
    task = loop.create_task(agent.run(), name="agent")
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        log.info("stopping")
        return 0
    except BaseExceptionGroup as group:
        refused: BaseException | None = group.subgroup(CredentialRefused)
        if refused is None:
            raise
        while isinstance(refused, BaseExceptionGroup):
            refused = refused.exceptions[0]
        log.error("%s", refused)
        return 3
    finally:
        await agent.aclose()
    return 0


def main(args: argparse.Namespace) -> int:
    """Run the agent until a signal; returns the exit status."""
    try:
        return asyncio.run(_main(args))
    except AgentSetupError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        return 0


def standalone(argv: list[str] | None = None) -> int:
    """``python -m agent ...`` (the same options as ``rtcc agent``)."""
    from rtcc.logs import setup_logging

    parser = argparse.ArgumentParser(prog="rtcc")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                        default="info")
    parser.add_argument("--log-format", choices=["text", "json"], default="text")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["agent", *(argv or [])] if argv is not None else None)
    setup_logging(args.log_level, args.log_format)
    return main(args)
