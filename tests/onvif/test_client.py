"""The ONVIF adapter against the simulated camera (a separate process speaking SOAP over HTTP
with WS-Security digest authentication)."""

from __future__ import annotations

import asyncio
import sys

import cv2
import numpy as np
import pytest

from ingest.onvif.client import OnvifClient
from ingest.onvif.models import (
    DeviceInfo,
    OnvifAuthError,
    OnvifFault,
    OnvifUnreachable,
    PtzPreset,
    VideoProfile,
)
from tests.fixtures.onvif import LOBBY, ONVIF_PASSWORD, ONVIF_USER, OnvifSimFactory


async def test_device_profiles_uris_snapshot_ptz_and_sync(
    onvif_sim_factory: OnvifSimFactory,
) -> None:
    sim = await onvif_sim_factory(rtsp_base="rtsp://127.0.0.1:8554")
    async with OnvifClient.from_xaddr(sim.xaddr(0), ONVIF_USER, ONVIF_PASSWORD) as camera:
        info = await camera.device_info()
        assert isinstance(info, DeviceInfo)
        assert (info.manufacturer, info.hardware_id) == ("RTCC Camsim", "Lobby PTZ")
        profiles = await camera.profiles()
        assert profiles == (
            VideoProfile("main", "main", "H264", 640, 360, 15.0, 600, True),
            VideoProfile("sub", "sub", "H264", 320, 180, 15.0, 600, True),
        )
        assert await camera.stream_uri("main") == "rtsp://127.0.0.1:8554/open"
        assert camera.capabilities().ptz

        jpeg = await camera.snapshot("sub")
        picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None
        assert picture.shape == (180, 320, 3)

        await camera.ptz_move("main", 1.0, -0.5, 0.0, duration=5)
        await asyncio.sleep(0.3)
        moving = await camera.ptz_status("main")
        assert moving.moving
        assert moving.pan > 0
        assert moving.tilt < 0
        await camera.ptz_stop("main")
        stopped = await camera.ptz_status("main")
        assert not stopped.moving
        await asyncio.sleep(0.2)
        assert (await camera.ptz_status("main")).pan == pytest.approx(stopped.pan)

        await camera.set_synchronization_point("main")
    async with asyncio.timeout(5):
        while sim.count("sync") < 1 or sim.count("ptz-stop") < 1:
            await asyncio.sleep(0.05)
    assert sim.count("ptz-move", "Lobby PTZ") == 1


async def test_presets_listed_and_recalled_through_the_onvif_library(
    onvif_sim_factory: OnvifSimFactory,
) -> None:
    # onvif-zeep-async reads the replies against the ONVIF WSDL and schemas: a preset the
    # simulator answered out of shape would come back without its token or name.
    sim = await onvif_sim_factory()
    async with OnvifClient.from_xaddr(sim.xaddr(0), ONVIF_USER, ONVIF_PASSWORD) as camera:
        presets = await camera.ptz_presets("main")
        assert presets == [PtzPreset("1", "Entrance"), PtzPreset("2", "Parking lot"),
                           PtzPreset("3", "Loading dock")]
        await camera.ptz_goto_preset("main", "2")
        status = await camera.ptz_status("main")
        assert (status.pan, status.tilt, status.zoom) == pytest.approx((0.5, -0.2, 0.3))
        with pytest.raises(OnvifFault) as refused:
            await camera.ptz_goto_preset("main", "99")
        assert "no preset" in str(refused.value)
    async with asyncio.timeout(5):
        while sim.count("ptz-preset") < 1:
            await asyncio.sleep(0.05)
    assert sim.count("ptz-preset", "Lobby PTZ") == 1


async def test_wrong_password_is_an_authentication_error(
    onvif_sim_factory: OnvifSimFactory,
) -> None:
    sim = await onvif_sim_factory()
    with pytest.raises(OnvifAuthError) as refused:
        async with OnvifClient.from_xaddr(sim.xaddr(0), ONVIF_USER, "not-the-password"):
            pass
    assert "refused the user name or password" in str(refused.value)
    assert "not-the-password" not in str(refused.value)


async def test_operations_a_camera_lacks_are_faults(onvif_sim_factory: OnvifSimFactory) -> None:
    fixed = type(LOBBY)(name="Fixed", profiles=LOBBY.profiles, username=ONVIF_USER,
                        password=ONVIF_PASSWORD, ptz=False)
    sim = await onvif_sim_factory([fixed])
    async with OnvifClient.from_xaddr(sim.xaddr(0), ONVIF_USER, ONVIF_PASSWORD) as camera:
        assert not camera.capabilities().ptz
        with pytest.raises(OnvifFault):
            await camera.stream_uri("no-such-profile")


async def test_camera_without_authentication(onvif_sim_factory: OnvifSimFactory) -> None:
    open_camera = type(LOBBY)(name="Open", profiles=LOBBY.profiles)
    sim = await onvif_sim_factory([open_camera])
    async with OnvifClient.from_xaddr(sim.xaddr(0), "", "") as camera:
        assert (await camera.device_info()).hardware_id == "Open"
        assert len(await camera.snapshot("main")) > 1000


async def test_dead_camera_is_unreachable() -> None:
    with pytest.raises(OnvifUnreachable):
        async with OnvifClient("127.0.0.1", 9, ONVIF_USER, ONVIF_PASSWORD):
            pass


async def test_the_wsdls_ship_in_the_package_and_load_without_network() -> None:
    """A child process with every network route refused (an unusable proxy, no DNS) still
    builds the device service client: the WSDLs come from the package, not the Internet."""
    code = (
        "import asyncio, socket\n"
        "def refuse(*a, **k): raise OSError('network disabled for this test')\n"
        "socket.getaddrinfo = refuse\n"
        "socket.create_connection = refuse\n"
        "from onvif import ONVIFCamera\n"
        "from ingest.onvif.safety import harden\n"
        "async def main():\n"
        "    cam = ONVIFCamera('192.0.2.1', 80, 'u', 'p', no_cache=True)\n"
        "    service = await cam.create_devicemgmt_service()\n"
        "    harden(service, 1024)\n"
        "    print('WSDL', service.document.location)\n"
        "    await cam.close()\n"
        "asyncio.run(main())\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    location = out.decode().split("WSDL", 1)[1].strip()
    assert location.endswith("onvif/wsdl/devicemgmt.wsdl")
    assert "://" not in location or location.startswith("file://")
