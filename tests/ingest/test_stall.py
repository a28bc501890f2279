"""Failing fast and honestly: a hung camera is flagged within its stall timeout, a viewer of a
camera known to be down is answered at once, and a camera whose stream description cannot be
read is named as such."""

from __future__ import annotations

import asyncio

import pytest

from ingest.rtsp import RtspTarget
from rtcc.config import IngestConfig
from rtcc.errors import SourceUnavailable
from rtcc.hub import StreamHub
from rtcc.media import StreamState
from tests.fixtures.camsim import CamsimHandle
from tests.ingest.helpers import record_states, register, wait_until


async def test_a_freeze_shorter_than_two_stall_timeouts_is_flagged(camsim: CamsimHandle) -> None:
    # FFmpeg hands back a buffered frame when its read times out; counting that as progress hid
    # any freeze shorter than two stall timeouts. Here the camera hangs for 1.8 timeouts.
    settings = IngestConfig(open_timeout=2.0, stall_timeout=3.0, backoff_initial=0.2,
                            backoff_max=0.5)
    async with StreamHub() as hub:
        states = record_states(hub)
        stream = register(hub, camsim.target("open"), settings)
        async with await stream.subscribe("test") as sub:
            await asyncio.wait_for(sub.get(), 10)
            camsim.freeze()
            try:
                await asyncio.sleep(5.4)
            finally:
                camsim.thaw()
            assert (StreamState.RECONNECTING, "no video for 3 s: reconnecting") in states
            await wait_until(lambda: stream.state is StreamState.LIVE, 15, "the camera back")
        source = stream.stats()["source"]
        assert isinstance(source, dict)
        assert source["reconnects"] >= 1


async def test_a_viewer_of_a_camera_known_to_be_down_is_answered_at_once() -> None:
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # One attempt a second: had either viewer waited for the 60 s start timeout, the source
    # would have tried dozens of times.
    settings = IngestConfig(open_timeout=1.0, stall_timeout=1.0, backoff_initial=1.0,
                            backoff_max=1.0)
    async with StreamHub() as hub:
        stream = register(hub, RtspTarget(f"rtsp://127.0.0.1:{port}/cam"), settings,
                          start_timeout=60.0)
        with pytest.raises(SourceUnavailable, match=r"connection refused by 127\.0\.0\.1:"):
            await stream.subscribe("first")
        assert stream.state is StreamState.RECONNECTING
        with pytest.raises(SourceUnavailable, match=r"connection refused by 127\.0\.0\.1:"):
            await stream.subscribe("second")
        source = stream.stats()["source"]
        assert isinstance(source, dict)
        assert stream.starts == 1
        assert int(str(source["reconnects"])) <= 3


async def test_an_unreadable_stream_description_is_named() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await reader.readuntil(b"\r\n\r\n"):
                cseq = next((line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                             if line.lower().startswith(b"cseq:")), b"1")
                if request.startswith(b"DESCRIBE"):
                    body = b"\x00\x01 this is not a session description \xff\xfe\r\n"
                    writer.write(b"RTSP/1.0 200 OK\r\nCSeq: " + cseq +
                                 b"\r\nContent-Type: application/sdp\r\nContent-Length: " +
                                 str(len(body)).encode() + b"\r\n\r\n" + body)
                else:
                    writer.write(b"RTSP/1.0 200 OK\r\nCSeq: " + cseq +
                                 b"\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, StreamHub() as hub:
        stream = register(hub, RtspTarget(f"rtsp://127.0.0.1:{port}/x"), start_timeout=5.0)
        with pytest.raises(SourceUnavailable, match="stream description"):
            await stream.subscribe("test")
        assert "not an RTSP server" not in stream.reason
