"""The server as ``rtcc serve`` runs it: a tip upload that stalls is cut off like any other,
and the log line about it names no address."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from rtcc.config import ServerConfig, Settings
from server.runner import serving
from tests.tips.conftest import TIPSTER_ADDRESS, session_from
from tests.tips.helpers import call, send_tip


@pytest.mark.usefixtures("bootstrap_token")
async def test_a_stalled_tip_upload_is_closed_without_naming_the_tipster(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = Settings(data_dir=tmp_path / "data",
                        server=ServerConfig(port=0, header_timeout=1.0, body_timeout=1.0))
    async with serving(settings) as base, session_from(TIPSTER_ADDRESS) as tipster:
        tip = await send_tip(tipster, base)
        started = await call(tipster, "POST", f"{base}/tips/api/uploads", 201, headers={
            "Origin": base}, json={"number": tip["number"], "passphrase": tip["passphrase"],
                                   "size": 50_000})
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port),
                                                       local_addr=(TIPSTER_ADDRESS, 0))
        writer.write((f"PUT /tips/api/uploads/{started['upload']['id']}?offset=0 HTTP/1.1\r\n"
                      f"Host: {host}:{port}\r\nOrigin: {base}\r\nContent-Length: 50000\r\n"
                      "\r\n").encode() + b"\xff\xd8\xff" + b"\x00" * 100)
        await writer.drain()
        # The phone stops sending; the server closes the connection after the body timeout.
        async with asyncio.timeout(20):
            while await reader.read(65536):
                pass
        writer.close()
        state = await call(tipster, "GET", f"{base}/tips/api/uploads/{started['upload']['id']}",
                           200)
        assert state["received"] == 0  # nothing of a cut chunk is kept
    lines = [record.getMessage() for record in caplog.records]
    assert any("closed a connection from a tip-line client" in line for line in lines), lines
    assert not [line for line in lines if TIPSTER_ADDRESS in line]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # a drop is no failure
