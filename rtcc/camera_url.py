"""Camera URLs: one module for parsing, redaction and the address rules.

``parse_rtsp_url`` validates a stream URL without any network access (the agent uses it on the
owner's LAN, the RTSP source before it pulls); ``redact_url``, ``scrub`` and
``url_with_credentials`` keep credentials out of what is logged or shown.

Safety (``check_camera_url``): what the server may be told to connect to.

Only ``rtsp``/``rtsps`` (streams) and ``http``/``https`` (ONVIF) URLs, no credentials in the URL,
no fragments, no ambiguous numeric host forms (``2130706433``, ``0x7f.1``). The host is resolved
and every address it resolves to must be public: loopback, link-local, cloud metadata, RFC 1918,
CGNAT (100.64/10), IPv6 ULA and link-local, IPv4-mapped private, unspecified, multicast and other
reserved ranges are refused unless the camera is reached through its owner's agent (the agent
resolves on the owner's LAN) or the address is inside an administrator's allowlisted network.
Cloud metadata, unspecified and multicast addresses are refused even when allowlisted.

The resolved address is returned so the caller connects to exactly what was checked (no second
DNS answer in between: DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from rtcc.errors import UnsafeUrl

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
Purpose = Literal["stream", "onvif"]

SCHEMES: dict[Purpose, dict[str, int]] = {
    "stream": {"rtsp": 554, "rtsps": 322},
    "onvif": {"http": 80, "https": 443},
}
DEFAULT_PORTS = SCHEMES["stream"]
MAX_URL = 2048
RESOLVE_TIMEOUT = 5.0

_METADATA = tuple(
    ipaddress.ip_network(net)
    for net in (
        "169.254.169.254/32",  # AWS, GCP, Azure IMDS, OpenStack, DigitalOcean
        "169.254.170.2/32",  # AWS ECS task metadata
        "fd00:ec2::254/128",  # AWS IMDS over IPv6
        "168.63.129.16/32",  # Azure wire server
        "100.100.100.200/32",  # Alibaba Cloud
        "192.0.0.192/32",  # Oracle Cloud
    )
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")
_NUMERIC_LIKE = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$")
_SECRET_QUERY_KEY = re.compile(r"pass|pwd|secret|token|auth|key|sig|user|login", re.IGNORECASE)
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True, slots=True)
class SafeUrl:
    url: str
    scheme: str
    host: str
    port: int
    address: str | None
    """The checked address to connect to; None when the owner's agent resolves the host."""
    pinned_url: str
    """``url`` with the host replaced by ``address`` for plain schemes; for TLS schemes ``url``
    itself (certificate checks need the name), and the caller connects to ``address``."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_problem(ip: IPAddress, allowlist: Sequence[Network]) -> str | None:
    """Why the server must not connect to this address, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = address_problem(embedded, allowlist)
            return None if inner is None else f"{inner} (embedded in IPv6 {ip})"
    if any(ip in net for net in _METADATA):
        return f"{ip} is a cloud metadata address"
    if ip.is_unspecified:
        return f"{ip} is the unspecified address"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if any(ip.version == net.version and ip in net for net in allowlist):
        return None
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address"
    if ip.version == 4 and ip in _CGNAT:
        return f"{ip} is a carrier-grade NAT address (100.64.0.0/10)"
    if ip.is_private:
        return f"{ip} is a private network address"
    if ip.is_reserved or not ip.is_global:
        return f"{ip} is a reserved address"
    return None


def parse_allowlist(networks: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(net, strict=False) for net in networks]


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _split(url: str, purpose: Purpose) -> tuple[str, str, int, str]:
    """(scheme, host, port, normalized url) or UnsafeUrl, without any network access."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise UnsafeUrl(f"camera URL must be 1-{MAX_URL} characters")
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url) or "\\" in url:
        raise UnsafeUrl("camera URL must not contain spaces, control characters or backslashes")
    allowed = SCHEMES[purpose]
    head, sep, _rest = url.partition("://")
    scheme = head.lower()
    if not sep or scheme not in allowed:
        names = " or ".join(f"{name}://" for name in allowed)
        raise UnsafeUrl(f"camera URL must start with {names}")
    try:
        parts = urlsplit(url)
    except ValueError:  # "rtsp://[::1/": an unclosed or invalid bracketed host
        raise UnsafeUrl("camera URL has an invalid host (check the [IPv6] brackets)") from None
    if "@" in parts.netloc:
        raise UnsafeUrl("put the camera's credentials in the username and password fields, "
                        "not in the URL")
    if parts.fragment or url.endswith("#"):
        raise UnsafeUrl("camera URL must not have a #fragment")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeUrl("camera URL has no host")
    try:
        port = parts.port or allowed[scheme]
    except ValueError:
        raise UnsafeUrl("camera URL has an invalid port") from None
    if not 0 < port < 65536:
        raise UnsafeUrl("camera URL has an invalid port")
    if "%" in host:
        raise UnsafeUrl("camera URL host must not carry an IPv6 zone")
    if _literal(host) is None:
        if _NUMERIC_LIKE.fullmatch(host):
            raise UnsafeUrl(f"camera URL host {host!r} is an ambiguous numeric form; write the "
                            "address as a.b.c.d")
        if not _HOSTNAME.fullmatch(host):
            raise UnsafeUrl("camera URL host is not a valid host name")
    normalized = urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))
    return scheme, host, port, normalized


def _pin(scheme: str, normalized: str, address: str, port: int) -> str:
    if scheme.endswith("s"):
        return normalized
    parts = urlsplit(normalized)
    shown = f"[{address}]" if ":" in address else address
    return urlunsplit((scheme, f"{shown}:{port}", parts.path, parts.query, ""))


async def check_camera_url(
    url: str,
    *,
    purpose: Purpose = "stream",
    allow_networks: Sequence[str] = (),
    via_agent: bool = False,
    resolver: Resolver | None = None,
    resolve_timeout: float = RESOLVE_TIMEOUT,
) -> SafeUrl:
    """Check a camera URL and resolve it; raises ``UnsafeUrl`` saying why it was refused."""
    scheme, host, port, normalized = _split(url, purpose)
    if via_agent:
        return SafeUrl(normalized, scheme, host, port, None, normalized)
    allowlist = parse_allowlist(allow_networks)
    literal = _literal(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            async with asyncio.timeout(resolve_timeout):
                addresses = await (resolver or system_resolver)(host, port)
        except (OSError, TimeoutError, UnicodeError):
            raise UnsafeUrl(f"camera host {host!r} cannot be resolved") from None
    if not addresses:
        raise UnsafeUrl(f"camera host {host!r} cannot be resolved")
    checked: list[str] = []
    for text in addresses:
        ip = _literal(text.split("%", 1)[0])
        if ip is None:
            raise UnsafeUrl(f"camera host {host!r} resolved to something that is not an address")
        problem = address_problem(ip, allowlist)
        if problem is not None:
            raise UnsafeUrl(f"camera host {host!r} refused: {problem}; reach this camera through "
                            "the owner's agent or ask an administrator to allowlist its network")
        checked.append(str(ip))
    address = checked[0]
    return SafeUrl(normalized, scheme, host, port, address, _pin(scheme, normalized, address, port))

@dataclass(frozen=True, slots=True)
class RtspAddress:
    """A validated rtsp:// or rtsps:// URL, split into the parts messages may show."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def endpoint(self) -> str:
        """``host:port`` as people write it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_rtsp_url(url: str) -> RtspAddress:
    """Validate a camera URL. Raises UnsafeUrl, whose message never repeats the URL (it could
    hold a secret)."""
    if _FORBIDDEN_CHARS.search(url):
        raise UnsafeUrl("the camera URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("the camera URL is malformed (check the host and port)") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        shown = re.sub(r"[^a-z0-9+.-]", "", scheme)[:16]
        got = f"{shown}://" if shown else "a URL without a scheme"
        raise UnsafeUrl(f"only rtsp:// and rtsps:// camera URLs can be pulled (got {got})")
    if not parts.hostname:
        raise UnsafeUrl("the camera URL has no host name")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl(
            "the camera URL contains credentials: give them as the user name and password "
            "instead"
        )
    return RtspAddress(scheme, parts.hostname, port or DEFAULT_PORTS[scheme], parts.path or "/")


def redact_url(url: str) -> str:
    """The URL without user info and with secret-looking query values masked: safe to log."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(malformed URL)"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(key, "***" if _SECRET_QUERY_KEY.search(key) else value) for key, value in pairs],
            safe="*",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def url_with_credentials(url: str, username: str, password: str) -> str:
    """The URL FFmpeg is given: user name and password percent-encoded into the authority.

    Only the demux thread calls this, and the result is never logged or stored.
    """
    if not username and not password:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    userinfo = quote(username, safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    return urlunsplit((parts.scheme, f"{userinfo}@{netloc}", parts.path, parts.query, ""))


def scrub(text: str, *secrets: str) -> str:
    """Remove secrets (and any ``user:pass@`` in URLs) from a message before it is shown."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***").replace(quote(secret, safe=""), "***")
    return re.sub(r"(rtsps?://)[^/@\s'\"]*@", r"\1***@", text, flags=re.IGNORECASE)
