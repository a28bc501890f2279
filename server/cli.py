"""The ``rtcc`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rtcc.config import Settings, load_settings
from rtcc.errors import ConfigError
from rtcc.logs import setup_logging

log = logging.getLogger("rtcc")

DEFAULT_CONFIG = Path("configs/demo.yaml")


def _override_server(settings: Settings, args: argparse.Namespace) -> Settings:
    server = settings.server
    changes: dict[str, object] = {}
    if getattr(args, "host", None):
        changes["host"] = args.host
    if getattr(args, "port", None) is not None:
        changes["port"] = args.port
    if getattr(args, "tls_cert", None):
        changes["tls_cert"] = args.tls_cert
    if getattr(args, "tls_key", None):
        changes["tls_key"] = args.tls_key
    if not changes:
        return settings
    return settings.model_copy(update={"server": server.model_copy(update=changes)})


async def _serve(settings: Settings, banner: str = "", with_cad: str | None = None,
                 worker: int | None = None) -> None:
    """Serve until Ctrl-C. ``with_cad``: an integration token; the CAD simulator is started
    beside the server and posts its incidents to it. ``worker``: this process's number under
    ``rtcc serve --workers N``."""
    from server.runner import serving, stop_signals

    with stop_signals() as stop:
        async with serving(settings, worker) as url:
            print(f"RTCC server listening on {url}", flush=True)
            cad = None if with_cad is None else await _start_cadsim(url, with_cad)
            try:
                if banner:
                    print(banner.replace("{url}", url), flush=True)
                await stop.wait()
                print("Stopping: closing viewers and camera sessions...", flush=True)
            finally:
                if cad is not None:
                    await _stop_cadsim(cad)


CADSIM_READY_SECONDS = 20.0


async def _start_cadsim(url: str, token: str) -> asyncio.subprocess.Process | None:
    """``python -m cadsim`` posting EIDOs to this server (the demo's CAD); None if it failed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cadsim", "--host", "127.0.0.1", "--port", "0", "--rate", "0.1",
        "--history-days", "30",
        "--post-to", f"{url}/api/cad/eido", "--log-level", "warning",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "CADSIM_TOKEN": token})
    assert process.stdout is not None
    try:
        async with asyncio.timeout(CADSIM_READY_SECONDS):
            while line := (await process.stdout.readline()).decode():
                if line.startswith("READY"):
                    print(f"CAD simulator: posting incidents to {url}/api/cad/eido "
                          f"(STA-024 at {line.split('url=', 1)[-1].strip()})", flush=True)
                    return process
    except TimeoutError:
        pass
    log.error("the CAD simulator did not start; the demo runs without CAD incidents")
    await _stop_cadsim(process)
    return None


async def _stop_cadsim(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            async with asyncio.timeout(5):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def _demo(settings: Settings) -> None:
    if settings.camsim is None or not settings.camsim.cameras:
        raise ConfigError("the demo configuration has no 'camsim' cameras to simulate")
    from server.demo_account import demo_school, reset_demo_admin
    from server.demo_mail import mail_sink, seed_facilities

    user, password = await reset_demo_admin(settings)
    await _demo_basemap(settings)
    enrol = await demo_school(settings)
    facilities = await seed_facilities(settings)
    with mail_sink(settings) as mailboxes:
        await _demo_city(settings, user, password, enrol, facilities, mailboxes)


async def _demo_basemap(settings: Settings) -> None:
    """Draws the demo city's basemap from its address points, once, where the console serves
    its tiles from."""
    target = settings.console.tiles_path
    points = settings.incidents.address_points
    if target is None or points is None or target.exists():
        return
    from server.demo_basemap import write_basemap

    count = await asyncio.to_thread(write_basemap, points, target)
    print(f"Drew the demo basemap: {count} map tiles in {target}", flush=True)


async def _demo_city(settings: Settings, user: str, password: str, enrol: str, facilities: int,
                     mailboxes: Path | None) -> None:
    from camsim.runner import Camsim
    from server.demo_account import demo_cad_token

    assert settings.camsim is not None
    mail = (f"  Notified mailboxes: {mailboxes}/ (index.txt; {facilities} soft targets,\n"
            "                      panel at {url}/console/notify/)\n" if mailboxes is not None
            else "  Notifications:     no local mail server (pip install aiosmtpd)\n")
    async with Camsim(settings.camsim) as sim:
        print(f"Simulated cameras: {len(settings.camsim.cameras)} streams at "
              f"rtsp://{settings.camsim.host}:{sim.port}/", flush=True)
        banner = (
            "\n  Open the console:  {url}/console/\n"
            "  Owner portal:      {url}/register/\n"
            "  Panic app (phone): {url}/panic/#enrol=" + enrol + "\n"
            "  One camera:        {url}/play/CAMERA_ID\n"
            f"  Log in as:         {user} / {password}\n"
            "  Stream status:     {url}/api/streams   (metrics: {url}/metrics)\n"
            + mail +
            "  Press Ctrl-C to stop everything.\n"
        )
        await _serve(settings, banner, with_cad=await demo_cad_token(settings))


async def _camsim(settings: Settings) -> None:
    from camsim.runner import run_camsim

    if settings.camsim is None:
        raise ConfigError("the configuration has no 'camsim' section")
    await run_camsim(settings.camsim)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtcc", description=__doc__)
    parser.add_argument("--log-format", choices=["text", "json"],
                        help="text (default) or json lines; overrides log_format in the config")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--config", type=Path, required=True)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--tls-cert", type=Path)
    serve.add_argument("--tls-key", type=Path)
    serve.add_argument("--workers", type=int, default=1,
                       help="server processes on this machine, sharing the port (needs "
                            "cluster.redis_url and a PostgreSQL database.url)")
    serve.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)

    demo = sub.add_parser("demo", help="run the server with simulated cameras (embedded storage)")
    demo.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    demo.add_argument("--host")
    demo.add_argument("--port", type=int)

    camsim = sub.add_parser("camsim", help="serve simulated RTSP cameras")
    camsim.add_argument("--config", type=Path, default=DEFAULT_CONFIG)

    from cadsim.__main__ import build_parser as build_cadsim_parser

    build_cadsim_parser(sub.add_parser(
        "cadsim", help="simulate a CAD: serve NENA STA-024 EIDO subscriptions, POST EIDOs"))

    from agent.cli import add_parser as add_agent_parser

    add_agent_parser(sub)

    check = sub.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("config", type=Path)

    audit = sub.add_parser("audit", help="the tamper-evident audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check every entry's hash chain")
    verify.add_argument("--config", type=Path, default=DEFAULT_CONFIG)

    export = sub.add_parser("export", help="export a camera's recordings, or an evidence item "
                                           "taken in from a file, as signed evidence")
    export.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    export.add_argument("--item", help="an evidence item id (item-...), instead of --camera, "
                                       "--from, --to and --case")
    export.add_argument("--camera")
    export.add_argument("--from", dest="start",
                        help="ISO-8601 time with a zone (2024-05-01T12:00:00Z) or epoch seconds")
    export.add_argument("--to", dest="end")
    export.add_argument("--case")
    export.add_argument("--reason", default="")
    export.add_argument("--out", type=Path, help="package file (default: in the data folder)")
    export.add_argument("--watermark", action="store_true",
                        help="add a copy with case, camera and time burned in")
    check_export = sub.add_parser("verify", help="check an export package's signature and hashes")
    check_export.add_argument("file", type=Path)
    check_export.add_argument("--config", type=Path,
                              help="the server's configuration: compare with its stored "
                                   "segments and key, and audit the verification")
    check_export.add_argument("--key", type=Path, help="the trusted public key (PEM)")

    backup = sub.add_parser("backup", help="copy the stores, keys and audit checkpoints "
                                           "(recordings are listed by hash, not copied)")
    backup.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    backup.add_argument("--to", dest="target", type=Path, required=True,
                        help="a new or empty folder, outside the data directory")
    restore = sub.add_parser("restore", help="check a backup's hashes and restore it into the "
                                             "configuration's data directory")
    restore.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    restore.add_argument("--from", dest="source", type=Path, required=True)
    restore.add_argument("--force", action="store_true",
                         help="overwrite the stores and keys of a non-empty data directory")

    from server.db_commands import add_parser as add_db_parser

    add_db_parser(sub)

    user = sub.add_parser("user", help="manage accounts")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create an account (prompts for the password)")
    add.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    add.add_argument("username")
    add.add_argument("--role", required=True)
    add.add_argument("--owner-id")
    add.add_argument("--display-name", default="")
    unlock = user_sub.add_parser("unlock", help="unlock an account locked by failed logins")
    unlock.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    unlock.add_argument("username")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "agent":  # runs on the owner's network: no server configuration
        from agent.cli import main as agent_main

        setup_logging(args.log_level or "info", args.log_format or "text")
        return agent_main(args)
    if args.command == "cadsim":  # a separate program: no server configuration
        from cadsim.__main__ import main as cadsim_main

        return cadsim_main(args=args)
    if args.command == "verify" and args.config is None:  # anyone may check a package
        from evidence import verify_main

        return verify_main(args.file, key_path=args.key)
    if args.command == "db" and args.db_command == "copy":  # two URLs, no configuration
        from server.db_commands import db_main
        from server.schemas import store_schemas

        setup_logging(args.log_level or "info", args.log_format or "text")
        return db_main(args, None, store_schemas())
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level or settings.log_level, args.log_format or settings.log_format)
    try:
        if args.command == "check-config":
            print(f"{args.config}: OK ({len(settings.cameras)} cameras)")
            return 0
        if args.command == "audit":
            from security.cli import audit_verify_main

            return audit_verify_main(settings)
        if args.command == "export" and args.item:
            from evidence.cli import export_item_main
            from security.cli import open_audit_log

            return export_item_main(settings, args.item, args.out, audit_log=open_audit_log,
                                    reason=args.reason)
        if args.command == "export":
            from evidence import export_main
            from security.cli import open_audit_log

            if not (args.camera and args.start and args.end and args.case):
                print("rtcc export: give --camera, --from, --to and --case (or --item ID)",
                      file=sys.stderr)
                return 2
            return export_main(settings, args.camera, args.start, args.end, args.case, args.out,
                               args.watermark, audit_log=open_audit_log, reason=args.reason)
        if args.command == "verify":
            from evidence import verify_main
            from security.cli import open_audit_log

            return verify_main(args.file, settings, key_path=args.key, audit_log=open_audit_log)
        if args.command == "db":
            from server.db_commands import db_main
            from server.schemas import store_schemas

            return db_main(args, settings, store_schemas())
        if args.command == "backup":
            from server.backup import backup_main

            return backup_main(settings, args.target)
        if args.command == "restore":
            from server.backup import restore_main

            return restore_main(settings, args.source, force=args.force)
        if args.command == "user":
            from security.cli import user_add_main, user_unlock_main

            if args.user_command == "add":
                return user_add_main(settings, args.username, args.role, owner_id=args.owner_id,
                                     display_name=args.display_name)
            return user_unlock_main(settings, args.username)
        settings = _override_server(settings, args)
        if args.command == "serve" and args.workers > 1 and args.worker_index is None:
            from server.worker_processes import run_workers

            extra: list[str] = []
            for name, flag in (("host", "--host"), ("tls_cert", "--tls-cert"),
                               ("tls_key", "--tls-key")):
                if getattr(args, name):
                    extra += [flag, str(getattr(args, name))]
            return run_workers(args.config, settings, args.workers, extra)
        if args.command == "serve":
            asyncio.run(_serve(settings, worker=args.worker_index))
        elif args.command == "demo":
            asyncio.run(_demo(settings))
        elif args.command == "camsim":
            asyncio.run(_camsim(settings))
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


__all__ = ["main"]
