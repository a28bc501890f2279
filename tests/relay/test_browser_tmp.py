from __future__ import annotations
import asyncio, json, time
import pytest
from playwright.async_api import async_playwright
from tests.relay.conftest import start_server

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

async def test_chromium(clip_dir) -> None:
    from tests.relay.clip import make_clip
    clip = make_clip(clip_dir / "b.h264", fps=30, gop=120, seconds=8, size="1280x720", bitrate="2M")
    srv, runner = await start_server({"cam1": {"main": clip}})
    try:
        # warm the stream so the GOP cache is mid-GOP
        stream = srv.hub.get("cam1", "main")
        sub = await stream.subscribe("warm", wait=True)
        await asyncio.sleep(2.5)
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = await browser.new_page()
            page.on("console", lambda m: print("console:", m.text))
            t0 = time.monotonic()
            await page.goto(f"{srv.url}/play/cam1?purpose=test&autoplay=1")
            for i in range(40):
                st = await page.evaluate("""async () => { const pc = window.rtccPlay.pc; if (!pc) return null; const r = await pc.getStats(); let o=null; r.forEach(s => { if (s.type==='inbound-rtp') o = s; }); return o; }""")
                if st:
                    print(round(time.monotonic()-t0,2), {k: st.get(k) for k in ("framesReceived","framesDecoded","keyFramesDecoded","framesDropped","pliCount","nackCount","jitterBufferDelay","jitterBufferEmittedCount","totalDecodeTime","packetsLost","framesPerSecond")})
                await asyncio.sleep(0.25)
            print(await page.inner_text("#status"), await page.inner_text("#first-frame"))
            await browser.close()
        print(json.dumps(srv.registry.stats()["streams"], indent=1))
        sub.close()
    finally:
        await runner.cleanup()
