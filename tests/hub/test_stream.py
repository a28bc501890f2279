"""Stream hub behaviour with an in-memory source: fan-out, drops, on-demand, GOP cache."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from rtcc import metrics
from rtcc.errors import CameraNotFound, ProfileNotFound, SourceUnavailable, StreamClosed
from rtcc.hub import GopCache, StreamHub, StreamSettings
from rtcc.media import EncodedFrame, StreamState
from tests.hub.memory_source import MemorySource


def make_hub(
    sources: list[MemorySource], log: list[str], **settings: float | int | bool
) -> tuple[StreamHub, StreamSettings]:
    hub = StreamHub()
    stream_settings = StreamSettings(**{"close_after": 0.2, "start_timeout": 1.0, **settings})  # type: ignore[arg-type]

    def factory() -> MemorySource:
        source = MemorySource(log)
        sources.append(source)
        return source

    hub.register("cam1", "main", factory, stream_settings)
    return hub, stream_settings


async def test_fan_out_delivers_every_frame_to_every_subscriber() -> None:
    sources: list[MemorySource] = []
    log: list[str] = []
    hub, _ = make_hub(sources, log)
    stream = hub.get("cam1", "main")
    first = await stream.subscribe("a", wait=False)
    second = await stream.subscribe("b", wait=False)
    sent = [sources[0].frame(keyframe=i % 10 == 0) for i in range(30)]
    got_a = [await first.get() for _ in range(30)]
    got_b = [await second.get() for _ in range(30)]
    assert got_a == sent
    assert got_b == sent
    assert stream.state is StreamState.LIVE
    await hub.aclose()


async def test_slow_subscriber_drops_alone_and_resumes_at_a_keyframe() -> None:
    sources: list[MemorySource] = []
    hub, _ = make_hub(sources, [], subscriber_queue=5)
    stream = hub.get("cam1", "main")
    slow = await stream.subscribe("slow", wait=False)
    fast = await stream.subscribe("fast", wait=False, maxsize=1000)
    sent = [sources[0].frame(keyframe=i % 10 == 0) for i in range(50)]
    fast_got = [fast.get_nowait() for _ in range(50)]
    assert fast_got == sent
    assert fast.frames_dropped == 0

    assert slow.frames_dropped == 45
    kept = []
    while (frame := slow.get_nowait()) is not None:
        kept.append(frame)
    assert kept == sent[:5]
    # Once it has room again it waits for a keyframe rather than receiving a broken GOP.
    sources[0].frame(keyframe=False)
    assert slow.get_nowait() is None
    key = sources[0].frame(keyframe=True)
    assert slow.get_nowait() == key
    assert slow.stats(0.0)["drops"] == 46
    await hub.aclose()


async def test_source_starts_on_first_subscriber_and_stops_after_linger() -> None:
    sources: list[MemorySource] = []
    log: list[str] = []
    hub, _ = make_hub(sources, log, close_after=0.2)
    stream = hub.get("cam1", "main")
    assert log == []
    assert stream.state is StreamState.IDLE

    sub = await stream.subscribe("a", wait=False)
    assert log == ["start"]
    sub.close()
    await asyncio.sleep(0.1)
    assert log == ["start"], "the source lingers for close_after seconds"
    again = await stream.subscribe("b", wait=False)
    await asyncio.sleep(0.3)
    assert log == ["start"], "a new subscriber within the linger keeps the same source"
    again.close()
    await asyncio.sleep(0.4)
    assert log == ["start", "close"]
    assert stream.state is StreamState.IDLE

    await stream.subscribe("c", wait=False)
    assert log == ["start", "close", "start"]
    await hub.aclose()
    assert log[-1] == "close"


async def test_subscribers_arriving_while_starting_wait_for_the_first_keyframe() -> None:
    sources: list[MemorySource] = []
    hub, _ = make_hub(sources, [])
    stream = hub.get("cam1", "main")
    waiting = [asyncio.create_task(stream.subscribe(f"s{i}")) for i in range(3)]
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in waiting)
    assert stream.state is StreamState.STARTING
    sources[0].frame(keyframe=False)
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in waiting), "a delta frame is not a starting point"
    key = sources[0].frame(keyframe=True)
    subs = await asyncio.gather(*waiting)
    assert [await sub.get() for sub in subs] == [key, key, key]
    assert len(sources) == 1, "one source for all subscribers"
    await hub.aclose()


async def test_start_timeout_names_the_camera() -> None:
    sources: list[MemorySource] = []
    hub, _ = make_hub(sources, [], start_timeout=0.2)
    with pytest.raises(SourceUnavailable, match=r"cam1 sent no picture within 0.2 s"):
        await hub.get("cam1", "main").subscribe("a")
    assert hub.get("cam1", "main").subscriber_count == 0
    await hub.aclose()


async def test_error_state_fails_waiting_subscribers_with_the_reason() -> None:
    sources: list[MemorySource] = []
    hub, _ = make_hub(sources, [], start_timeout=5)
    stream = hub.get("cam1", "main")
    task = asyncio.create_task(stream.subscribe("a"))
    await asyncio.sleep(0.05)
    sources[0].state(StreamState.ERROR, "wrong user name or password (RTSP 401)")
    with pytest.raises(SourceUnavailable, match="RTSP 401"):
        await task
    with pytest.raises(SourceUnavailable, match="RTSP 401"):
        await stream.subscribe("b")
    assert stream.stats()["reason"] == "wrong user name or password (RTSP 401)"
    await hub.aclose()


async def test_new_subscriber_starts_from_the_gop_cache() -> None:
    sources: list[MemorySource] = []
    hub, _ = make_hub(sources, [])
    stream = hub.get("cam1", "main")
    first = await stream.subscribe("first", wait=False)
    sources[0].frame(keyframe=False)  # before any keyframe: not cached
    gop = [sources[0].frame(keyframe=i == 0) for i in range(6)]
    late = await stream.subscribe("late")
    assert [late.get_nowait() for _ in range(6)] == gop
    assert late.get_nowait() is None
    assert first.queued() == 6, "the delta frame before the first keyframe is skipped"
    await hub.aclose()


async def test_subscribers_stay_attached_across_a_reconnect() -> None:
    sources: list[MemorySource] = []
    states: list[str] = []
    hub, _ = make_hub(sources, [])
    hub.add_state_listener(lambda stream: states.append(str(stream.state)))
    stream = hub.get("cam1", "main")
    sub = await stream.subscribe("a", wait=False)
    sources[0].frame(keyframe=True)
    sources[0].state(StreamState.RECONNECTING, "connection refused by 127.0.0.1:8554")
    assert stream.stats()["reason"] == "connection refused by 127.0.0.1:8554"
    after = sources[0].frame(keyframe=True, discontinuity=True)
    assert stream.state is StreamState.LIVE
    assert sub.get_nowait() is not None
    assert sub.get_nowait() == after
    assert states == ["starting", "live", "reconnecting", "live"]
    assert len(sources) == 1
    await hub.aclose()


async def test_preloaded_stream_runs_without_subscribers() -> None:
    sources: list[MemorySource] = []
    log: list[str] = []
    hub, _ = make_hub(sources, log, preload=True, close_after=0.05)
    await hub.start_preloaded()
    assert log == ["start"]
    sub = await hub.get("cam1", "main").subscribe("a", wait=False)
    sub.close()
    await asyncio.sleep(0.2)
    assert log == ["start"]
    await hub.aclose()
    assert log == ["start", "close"]


async def test_closing_the_hub_ends_subscriptions() -> None:
    sources: list[MemorySource] = []
    hub, _ = make_hub(sources, [])
    sub = await hub.get("cam1", "main").subscribe("a", wait=False)
    reader = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    await hub.aclose()
    with pytest.raises(StreamClosed):
        await reader
    assert sources[0].closed


async def test_revocation_closes_every_session_of_a_camera() -> None:
    sources: list[MemorySource] = []
    hub, _ = make_hub(sources, [])
    subs = [await hub.get("cam1", "main").subscribe(f"v{i}", wait=False) for i in range(3)]
    assert hub.close_camera_sessions("cam1", "owner revoked sharing") == 3
    for sub in subs:
        assert sub.closed
        with pytest.raises(StreamClosed, match="owner revoked sharing"):
            sub.get_nowait()
    await hub.aclose()


async def test_lookup_errors_name_camera_and_profile() -> None:
    hub, _ = make_hub([], [])
    with pytest.raises(CameraNotFound, match="'nope' is not registered"):
        hub.get("nope", "main")
    with pytest.raises(ProfileNotFound, match="'cam1' has no 'sub' profile"):
        hub.get("cam1", "sub")
    await hub.aclose()


def test_gop_cache_respects_byte_and_age_caps() -> None:
    cache = GopCache(max_bytes=1000, max_age=2.0)

    def frame(key: bool, size: int, t: float) -> EncodedFrame:
        return EncodedFrame("h264", b"x" * size, int(t * 90000), key, t)

    cache.add(frame(False, 10, 0.0))
    assert cache.snapshot(0.0) == ()
    cache.add(frame(True, 400, 1.0))
    cache.add(frame(False, 400, 1.1))
    assert cache.frame_count == 2
    cache.add(frame(False, 400, 1.2))
    assert cache.snapshot(1.2) == (), "over the byte cap the partial GOP is discarded"
    cache.add(frame(True, 100, 2.0))
    cache.add(frame(False, 100, 4.5))
    assert cache.snapshot(4.5) == (), "older than the age cap"
    cache.add(frame(True, 100, 5.0))
    assert len(cache.snapshot(5.1)) == 1
    assert cache.snapshot(9.0) == (), "a stale keyframe is not offered"


async def test_stats_and_prometheus_text() -> None:
    sources: list[MemorySource] = []
    hub, _ = make_hub(sources, [], subscriber_queue=2)
    sub = await hub.get("cam1", "main").subscribe("viewer-1", wait=False)
    for i in range(4):
        sources[0].frame(keyframe=i == 0, size=1000)
    stats = hub.stats()[0]
    assert stats["frames"] == 4
    assert stats["bytes"] == 4000
    assert stats["state"] == "live"
    (viewer,) = cast("list[dict[str, object]]", stats["subscribers"])
    assert viewer["name"] == "viewer-1"
    assert (viewer["frames"], viewer["queued"], viewer["drops"]) == (0, 2, 2)
    assert sub.queued() == 2
    text = metrics.render(hub.stats())
    assert 'rtcc_stream_state{camera="cam1",profile="main",state="live"} 1' in text
    assert 'rtcc_stream_bytes_total{camera="cam1",profile="main"} 4000' in text
    labels = 'camera="cam1",profile="main",subscriber="viewer-1"'
    assert f"rtcc_subscriber_dropped_frames_total{{{labels}}} 2" in text
    await hub.aclose()


async def test_a_source_that_cannot_be_built_leaves_the_stream_in_error() -> None:
    def broken() -> MemorySource:
        raise ValueError("camera URL must start with rtsp:// or rtsps://")

    async with StreamHub() as hub:
        stream = hub.register("cam1", "main", broken, StreamSettings(start_timeout=1))
        with pytest.raises(SourceUnavailable, match="must start with rtsp://"):
            await stream.subscribe("a")
        assert stream.state is StreamState.ERROR
        assert stream.subscriber_count == 0
