"""A simulator's child process: started without a shell in its own process group, given its spec
(with any passwords) on stdin rather than on the command line, announcing ``READY key=value ...``
on stdout once it serves, and ended by signalling its whole group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

Process = asyncio.subprocess.Process


async def spawn(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> Process:
    """The child, with pipes for stdin, stdout and stderr."""
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group: stop_child() reaps everything in it
        env=env,
    )


async def send_spec(process: Process, spec: Mapping[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps(spec).encode() + b"\n")
    await process.stdin.drain()


async def read_ready(process: Process) -> dict[str, str] | None:
    """The ``key=value`` fields of the child's ``READY`` line, or None when it exited first (it
    is reaped then). The caller bounds the wait."""
    assert process.stdout is not None
    while True:
        line = (await process.stdout.readline()).decode(errors="replace").strip()
        if line.startswith("READY"):
            return dict(item.split("=", 1) for item in line.split()[1:] if "=" in item)
        if not line and process.stdout.at_eof():
            await process.wait()
            return None


async def drain_lines(reader: asyncio.StreamReader, sink: Callable[[str], None]) -> None:
    """Every line of ``reader`` (decoded, trailing white space removed) to ``sink``, until EOF."""
    while line := await reader.readline():
        sink(line.decode(errors="replace").rstrip())


def signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


async def stop_child(process: Process, grace: float, name: str) -> None:
    """End the child's process group and reap the child: SIGTERM (after SIGCONT, since a paused
    process cannot exit), SIGKILL when it is still there ``grace`` seconds later. Its stdin is
    closed."""
    if process.returncode is None:
        signal_group(process.pid, signal.SIGCONT)
        signal_group(process.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(grace):
                await process.wait()
        except TimeoutError:
            log.warning("%s (pid %d) ignored SIGTERM: killing it", name, process.pid)
            signal_group(process.pid, signal.SIGKILL)
            await process.wait()
    else:
        signal_group(process.pid, signal.SIGKILL)  # anything it left behind
    if process.stdin is not None:
        process.stdin.close()
        with contextlib.suppress(Exception):
            await process.stdin.wait_closed()
