"""The simulator burns each camera's name into its picture, whatever characters the name has."""

from __future__ import annotations

import asyncio

import av
import numpy as np
import pytest

from camsim.runner import CameraOptions
from rtcc.config import CamsimCameraConfig
from tests.fixtures.camsim import CamsimFactory

pytestmark = pytest.mark.slow

NAMES = {"amp": "Washington St Gas & Go", "plain": "Washington St Gas and Go"}


def _bright_pixels_top_left(url: str) -> int:
    """Decode one picture and count the bright pixels where the name is drawn (top left)."""
    with av.open(url, options={"rtsp_transport": "tcp", "timeout": "10000000"}) as container:
        for frame in container.decode(video=0):
            luma = frame.to_ndarray(format="gray")
            corner = luma[: luma.shape[0] // 4, : luma.shape[1] // 2]
            return int(np.count_nonzero(corner > 200))
    raise AssertionError(f"{url}: no picture decoded")


async def test_a_name_with_an_ampersand_is_drawn_like_any_other(
    camsim_factory: CamsimFactory,
) -> None:
    cameras = [CamsimCameraConfig(name=name, path=path, width=320, height=180, fps=5,
                                  bitrate_kbps=200, gop_seconds=1.0, profile="main")
               for path, name in NAMES.items()]
    # On a black picture the only bright pixels in the top left are the name's letters.
    black = {path: CameraOptions(pattern="black") for path in NAMES}
    sim = await camsim_factory(cameras, options=black)
    counts = {path: await asyncio.to_thread(_bright_pixels_top_left, sim.url(path))
              for path in NAMES}
    assert counts["plain"] > 50, counts  # the comparison: a name the markup always accepted
    assert counts["amp"] > 50, counts
