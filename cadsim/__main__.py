"""``python -m cadsim``: a CAD that serves NENA STA-024 subscriptions and POSTs EIDOs.

Once listening it prints ``READY port=N url=ws://HOST:N/IncidentData/ent`` on stdout (with
``--port 0`` the system picks the port). It generates the scenario at ``--rate`` EIDOs per second
(0: only what is injected through ``POST /control/eido``), stops generating after ``--count``, and
with ``--once`` exits when the scenario is done and every POST was delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from cadsim.history import history_eidos
from cadsim.notifier import WS_PATH, Notifier, create_app
from cadsim.poster import Poster
from cadsim.scenario import Scenario, tracking_id

log = logging.getLogger("cadsim")

TOKEN_ENV = "CADSIM_TOKEN"  # noqa: S105 -- the name of a variable, not a secret


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cadsim", description=__doc__,
                                               formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8710,
                        help="listen port; 0 picks a free one (default 8710)")
    parser.add_argument("--rate", type=float, default=0.2,
                        help="EIDOs generated per second; 0 generates none (default 0.2)")
    parser.add_argument("--seed", type=int, default=1, help="scenario seed (default 1)")
    parser.add_argument("--count", type=int, help="stop generating after this many EIDOs")
    parser.add_argument("--history-days", type=int, default=0, metavar="DAYS",
                        help="first POST this many past days of closed incidents, about 30 a "
                             "day, to --post-to (default 0)")
    parser.add_argument("--once", action="store_true",
                        help="exit after --count EIDOs (default 20) were generated and posted")
    parser.add_argument("--post-to", metavar="URL",
                        help="also POST every EIDO here, e.g. http://127.0.0.1:8080/api/cad/eido")
    parser.add_argument("--token", help=f"bearer token for --post-to (or set {TOKEN_ENV})")
    parser.add_argument("--max-expires", type=int, default=86400,
                        help="longest subscription granted, in seconds (default 86400)")
    # SUPPRESS: under ``rtcc cadsim`` the main parser's --log-level is kept, not overwritten.
    parser.add_argument("--log-level", default=argparse.SUPPRESS,
                        choices=["debug", "info", "warning", "error"], help="default info")
    return parser


async def _generate(args: argparse.Namespace, notifier: Notifier, stop: asyncio.Event) -> None:
    if args.rate <= 0:
        return
    scenario = Scenario(args.seed)
    limit = args.count if args.count is not None else (20 if args.once else None)
    produced = 0
    while limit is None or produced < limit:
        eido = scenario.next_eido()
        sent = await notifier.publish(eido)
        produced += 1
        log.info("EIDO %d: %s (%d subscriptions)", produced, tracking_id(eido), sent)
        try:
            await asyncio.wait_for(stop.wait(), 1.0 / args.rate)
            return
        except TimeoutError:
            pass


async def serve(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with aiohttp.ClientSession() as session:
        poster = Poster(session, args.post_to, token) if args.post_to else None
        notifier = Notifier(max_expires=args.max_expires,
                            on_publish=poster.submit if poster else None)
        runner = web.AppRunner(create_app(notifier), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port)
        try:
            await site.start()
        except OSError as exc:
            print(f"cadsim cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            await runner.cleanup()
            return 6
        port = runner.addresses[0][1]
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"READY port={port} url=ws://{host}:{port}{WS_PATH}", flush=True)
        async with asyncio.TaskGroup() as group:
            post_task = group.create_task(poster.run(), name="cadsim:post") if poster else None
            if poster is not None and args.history_days > 0:
                posted = 0
                for eido in history_eidos(args.seed, args.history_days, datetime.now(UTC)):
                    await poster.put(eido)
                    posted += 1
                await poster.drain()
                log.info("posted %d past incidents (%d days)", posted, args.history_days)
            generate = group.create_task(_generate(args, notifier, stop), name="cadsim:generate")
            if args.once:
                await generate
                if poster is not None:
                    await poster.drain()
                stop.set()
            await stop.wait()
            generate.cancel()
            if post_task is not None:
                post_task.cancel()
        await runner.cleanup()
    return 0


def main(argv: Sequence[str] | None = None, args: argparse.Namespace | None = None) -> int:
    if args is None:
        args = build_parser().parse_args(argv)
    level = getattr(args, "log_level", None) or "info"
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve(args))
    return 130


if __name__ == "__main__":
    sys.exit(main())
