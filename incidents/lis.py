"""Fetching a ``locationByReferenceUrl`` from a configured LIS (location information server).

Only ``https`` URLs whose host is one of ``incidents.lis_hosts`` are fetched; the host's
addresses pass the server's URL rules (``rtcc.camera_url.check_camera_url``: no loopback,
private, link-local or metadata addresses unless an administrator allowlisted the network), the
connection goes to exactly the address checked (no second DNS answer), redirects are refused,
and the answer is read up to ``pidf.MAX_PIDF_BYTES``. Anything else leaves the incident's
location unknown with the reason.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from incidents.model import Location
from incidents.pidf import MAX_PIDF_BYTES, parse_pidf
from rtcc.camera_url import Resolver, check_camera_url
from rtcc.errors import RtccError, UnsafeUrl

TIMEOUT = 10.0


class LisError(RtccError):
    """The reference could not be fetched or read; the message says why."""


class _Pinned(AbstractResolver):
    """Resolves the checked host to the checked address only."""

    def __init__(self, host: str, address: str) -> None:
        self._host = host
        self._address = address

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET,  # noqa: ARG002 -- the interface
                      ) -> list[ResolveResult]:
        if host != self._host:
            raise OSError(f"{host!r} is not the checked LIS host")
        fam = socket.AF_INET6 if ":" in self._address else socket.AF_INET
        return [{"hostname": host, "host": self._address, "port": port, "family": fam,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        return None


async def fetch_reference(url: str, lis_hosts: Sequence[str], *,
                          allow_networks: Sequence[str] = (),
                          resolver: Resolver | None = None,
                          ssl: Any = True) -> Location:
    """The location a LIS serves at ``url``; raises LisError saying why it was not fetched."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme != "https":
        raise LisError(f"location reference {url[:200]!r} is not https; only https references "
                       "to configured LIS hosts are fetched")
    allowed = {h.lower().rstrip(".") for h in lis_hosts}
    if host not in allowed:
        raise LisError(f"location reference host {host!r} is not a configured LIS host "
                       "(incidents.lis_hosts)")
    try:
        safe = await check_camera_url(url, purpose="onvif", allow_networks=allow_networks,
                                      resolver=resolver)
    except UnsafeUrl as exc:
        raise LisError(f"location reference refused: {exc}") from None
    if safe.address is None:
        raise LisError(f"location reference host {host!r} did not resolve")
    connector = aiohttp.TCPConnector(resolver=_Pinned(safe.host, safe.address), ssl=ssl)
    try:
        async with aiohttp.ClientSession(connector=connector) as session, session.get(
                url, allow_redirects=False,
                headers={"Accept": "application/pidf+xml, application/held+xml"},
                timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as response:
            if response.status != 200:
                raise LisError(f"the LIS answered {response.status} for the location reference"
                               + (" (redirects are not followed)"
                                  if 300 <= response.status < 400 else ""))
            body = await response.content.read(MAX_PIDF_BYTES + 1)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise LisError(f"the LIS could not be reached: {type(exc).__name__}: {exc}") from None
    if len(body) > MAX_PIDF_BYTES:
        raise LisError(f"the LIS answer is larger than {MAX_PIDF_BYTES} bytes")
    try:
        return parse_pidf(body)
    except RtccError as exc:
        raise LisError(f"the LIS answer is not a readable PIDF-LO: {exc}") from None
