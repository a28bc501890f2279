"""The agent's inventory of manual RTSP cameras, and pictures taken straight from RTSP."""

from __future__ import annotations

import json
from urllib.parse import quote

import cv2
import numpy as np
import pytest

from agent.cameras import Credentials, Inventory
from agent.snapshot import grab_jpeg
from ingest.rtsp import RtspTarget
from rtcc.errors import SourceUnavailable
from tests.fixtures.camsim import SECURE_PASSWORD, SECURE_USER, CamsimHandle


async def test_manual_rtsp_camera_reports_no_secret_and_gives_a_picture(
    camsim: CamsimHandle,
) -> None:
    url = camsim.url("secure").replace(
        "rtsp://", f"rtsp://{quote(SECURE_USER, safe='')}:{quote(SECURE_PASSWORD, safe='')}@")
    inventory = Inventory(rtsp_urls=[url, "http://not-rtsp.example/x"], onvif_addresses=[],
                          onvif_credentials=Credentials(), discover=False)
    try:
        assert await inventory.refresh()
        good = inventory.get(f"rtsp:127.0.0.1:{camsim.port}/secure")
        assert good is not None
        report = json.dumps([r.to_json() for r in inventory.reports()])
        assert SECURE_PASSWORD not in report
        assert quote(SECURE_PASSWORD, safe="") not in report
        assert "only rtsp:// and rtsps://" in report  # the bad entry fails alone
        assert good.report.status == "ok"
        assert SECURE_PASSWORD in inventory.secrets()

        jpeg = await grab_jpeg(good.rtsp["main"], 5.0)
        picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None
        assert picture.shape == (360, 640, 3)

        wrong = RtspTarget(camsim.url("secure"), SECURE_USER, "wrong-password-canary")
        with pytest.raises(SourceUnavailable) as failed:
            await grab_jpeg(wrong, 3.0)
        assert "wrong-password-canary" not in str(failed.value)
    finally:
        await inventory.aclose()
