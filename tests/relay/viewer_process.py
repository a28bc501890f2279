"""A WHEP viewer in its own process (so a test can freeze it with SIGSTOP).

``python -m tests.relay.viewer_process URL CAMERA`` connects, prints ``connected`` once the first
frame is decoded, then keeps decoding until killed.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp

from tests.relay.whep_client import WhepViewer


async def main(url: str, camera: str) -> None:
    async with aiohttp.ClientSession() as http:
        viewer = WhepViewer(url, camera)
        await viewer.connect(http)
        await viewer.wait_first_frame(20)
        print("connected", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
