"""Client addresses: the peer's, or behind a trusted proxy the client the proxy saw."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_proxy_networks(settings: object) -> list[Network]:
    """``security.trusted_proxies`` (CIDRs) when the configuration has that key, else none."""
    security = getattr(settings, "security", None)
    networks: Sequence[str] = getattr(security, "trusted_proxies", ()) or ()
    return [ipaddress.ip_network(net, strict=False) for net in networks]


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_address_of(request: web.Request, trusted: Sequence[Network]) -> str:
    """The peer address, or, when the peer is a trusted proxy, the last untrusted hop of
    X-Forwarded-For (the client as the proxy saw it)."""
    remote = request.remote or ""
    peer = _parse_ip(remote)
    if peer is None or not any(peer in net for net in trusted):
        return remote
    hops = [hop for value in request.headers.getall("X-Forwarded-For", [])
            for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        ip = _parse_ip(hop)
        if ip is None:
            return remote
        if not any(ip in net for net in trusted):
            return str(ip)
    return remote
