"""A typed Python client for the RTCC API: log in, get an API token, list cameras near a point,
open a live view (WHEP) and close it. The operations are described at ``/api/openapi.json``.

    python docs/api_client.py https://rtcc.example.org analyst 39.80,-89.64

(the password is asked for). Opening a view needs an SDP offer from a WebRTC stack such as
aiortc: ``pc.addTransceiver("video", direction="recvonly")``, then ``pc.createOffer()``.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Camera:
    id: str
    name: str
    lat: float
    lon: float
    status: str


@dataclass(frozen=True)
class LiveView:
    answer_sdp: str
    location: str
    """The session resource: DELETE it to end the view."""


class RtccClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers: dict[str, str] = {}

    async def login_with_token(self, username: str, password: str, code: str = "") -> str:
        """Log in, then create an API token and use it for every later call (tokens suit
        programs: no cookie, no CSRF header). Returns the token; it is shown only once."""
        body = {"username": username, "password": password, **({"totp": code} if code else {})}
        async with self._session.post(f"{self._base}/api/login", json=body) as response:
            if response.status != 200:
                raise RuntimeError(f"login as {username} refused: {await response.text()}")
            user: dict[str, Any] = await response.json()
        headers = {"X-CSRF-Token": str(user["csrf_token"]), "Origin": self._base}
        async with self._session.post(f"{self._base}/api/tokens", json={"name": "client"},
                                      headers=headers) as response:
            response.raise_for_status()
            token = str((await response.json())["token"])
        self._headers = {"Authorization": f"Bearer {token}"}
        return token

    async def cameras_near(self, lat: float, lon: float, limit: int = 20) -> list[Camera]:
        params = {"near": f"{lat},{lon}", "limit": str(limit)}
        async with self._session.get(f"{self._base}/api/cameras", params=params,
                                     headers=self._headers) as response:
            response.raise_for_status()
            collection: dict[str, Any] = await response.json()
        return [_camera(feature) for feature in collection["features"]]

    async def open_view(self, camera_id: str, offer_sdp: str, purpose: str,
                        profile: str = "sub") -> LiveView:
        async with self._session.post(
            f"{self._base}/whep/{camera_id}", params={"profile": profile, "purpose": purpose},
            data=offer_sdp, headers={**self._headers, "Content-Type": "application/sdp"},
        ) as response:
            if response.status != 201:
                raise RuntimeError(f"live view of {camera_id} refused ({response.status}): "
                                   f"{await response.text()}")
            return LiveView(await response.text(), response.headers["Location"])

    async def close_view(self, view: LiveView) -> None:
        async with self._session.delete(self._base + view.location,
                                        headers=self._headers) as response:
            response.raise_for_status()


def _camera(feature: dict[str, Any]) -> Camera:
    properties: dict[str, Any] = feature["properties"]
    lon, lat = feature["geometry"]["coordinates"]
    return Camera(str(feature["id"]), str(properties.get("name", "")), float(lat), float(lon),
                  str(properties.get("status", "unknown")))


async def main(base_url: str, username: str, near: str) -> None:
    lat, lon = (float(part) for part in near.split(","))
    async with aiohttp.ClientSession() as session:
        client = RtccClient(session, base_url)
        await client.login_with_token(username, getpass.getpass(f"password for {username}: "))
        for camera in await client.cameras_near(lat, lon):
            print(f"{camera.id:24} {camera.status:12} {camera.name}")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
