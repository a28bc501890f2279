"""Addresses a camera names in its replies, checked before the server uses them.

A camera answers with URLs: its service addresses (XAddrs, from GetServices or
GetCapabilities), its stream address (GetStreamUri) and its snapshot address (GetSnapshotUri).
A hostile or compromised camera could name an internal host there and make the server connect
to it. When the client is given ``AddressRules`` (the server, which reaches cameras from the
department's network):

- Service addresses are never followed to another host: every SOAP request goes to the host and
  port that were configured and checked, with the path the camera announced (as onvif-zeep's
  ``nat_override``). A camera behind NAT that announces its LAN address keeps working, and a
  camera announcing any other host cannot send the server there.
- Stream and snapshot addresses may legitimately use other ports, so they are checked under the
  camera URL rules (``rtcc.camera_url``: public addresses only, private networks only where
  ``security.allow_private_camera_hosts`` lists them, every resolved address checked); a refused
  one raises ``OnvifUnsafeAddress`` naming the camera, the address and why.
- No HTTP redirect is followed (SOAP transport and snapshot fetch alike).

Without rules (the owner's agent, on the owner's network) the addresses are used as given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ingest.onvif.models import OnvifUnsafeAddress
from rtcc.camera_url import Purpose, Resolver, SafeUrl, check_camera_url, redact_url
from rtcc.errors import UnsafeUrl


@dataclass(frozen=True, slots=True)
class AddressRules:
    allow_networks: Sequence[str] = ()
    """``security.allow_private_camera_hosts``."""
    resolver: Resolver | None = None
    """How host names are resolved (the system resolver when None)."""


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query,
                       parts.fragment))


async def check_announced(url: str, *, rules: AddressRules, purpose: Purpose, camera: str,
                          what: str) -> SafeUrl:
    """The checked form of an address ``camera`` announced as ``what``; raises
    ``OnvifUnsafeAddress`` when the server must not connect to it."""
    try:
        # Credentials some cameras embed in stream URIs are the camera's business; the host
        # and port are what the rules judge.
        return await check_camera_url(_without_userinfo(url), purpose=purpose,
                                      allow_networks=list(rules.allow_networks),
                                      resolver=rules.resolver)
    except UnsafeUrl as exc:
        raise OnvifUnsafeAddress(
            f"ONVIF camera {camera} gave {what} {redact_url(url)}, which is refused: {exc}. "
            "Nothing was sent there. If this is the camera's own address on a network the "
            "department runs, an administrator may list that network in "
            "security.allow_private_camera_hosts; otherwise configure the camera's address "
            "yourself or reach it through its owner's agent"
        ) from None
