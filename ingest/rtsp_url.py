"""Camera URLs: which ones may be pulled, how they are shown, where credentials go."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from rtcc.errors import UnsafeUrl

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}
_SECRET_QUERY_KEY = re.compile(r"pass|pwd|secret|token|auth|key|sig|user|login", re.IGNORECASE)
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f]")


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
