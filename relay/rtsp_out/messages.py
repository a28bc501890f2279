"""RTSP requests as a VMS sends them to the re-publishing server (RFC 2326), and the answers.

Everything here is pure and bounded: ``parse_request`` takes one header block (request line and
headers, without the blank line) and either returns a request or raises ``RtspError`` with the
status to answer and why, so bad input always gets a clear RTSP error.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from rtcc.cameras import CAMERA_ID

MAX_HEADERS = 64
MAX_URI = 2048
METHODS = frozenset({"OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN",
                     "GET_PARAMETER", "SET_PARAMETER", "ANNOUNCE", "RECORD", "REDIRECT"})
SUPPORTED = ("OPTIONS", "DESCRIBE", "SETUP", "PLAY", "TEARDOWN", "GET_PARAMETER")
_TOKEN = re.compile(r"[A-Z_]{1,20}")
_TRACK = re.compile(r"trackID=(\d{1,3})")

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 413: "Request Entity Too Large",
           414: "Request-URI Too Long", 415: "Unsupported Media Type", 429: "Too Many Requests",
           431: "Request Header Fields Too Large", 454: "Session Not Found",
           455: "Method Not Valid in This State", 459: "Aggregate Operation Not Allowed",
           461: "Unsupported Transport", 500: "Internal Server Error", 501: "Not Implemented",
           503: "Service Unavailable", 505: "RTSP Version Not Supported"}


class RtspError(Exception):
    """A request that gets an error answer: ``status`` and a reason a person can act on."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class RtspRequest:
    method: str
    uri: str
    headers: dict[str, str]
    """Header names in lower case; a repeated header keeps its last value."""
    cseq: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def content_length(self) -> int:
        value = self.headers.get("content-length", "0").strip()
        if not value.isdigit() or len(value) > 9:
            raise RtspError(400, f"Content-Length {value[:20]!r} is not a byte count")
        return int(value)


@dataclass(frozen=True, slots=True)
class MediaPath:
    """What a request URI names: a camera, optionally one track, and the query's purpose."""

    camera_id: str
    track: int | None
    purpose: str
    incident: str


def parse_request(block: bytes) -> RtspRequest:
    """One request's line and headers (CRLF or LF separated, no trailing blank line)."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise RtspError(400, "the request is not UTF-8 text") from None
    lines = text.replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise RtspError(400, "the request line must be METHOD URI RTSP/1.0")
    method, uri, version = parts
    if not _TOKEN.fullmatch(method):
        raise RtspError(400, f"{method[:20]!r} is not an RTSP method")
    if version != "RTSP/1.0":
        raise RtspError(505, f"only RTSP/1.0 is served, not {version[:20]!r}")
    if len(uri) > MAX_URI:
        raise RtspError(414, f"the URI is longer than {MAX_URI} characters")
    if len(lines) - 1 > MAX_HEADERS:
        raise RtspError(431, f"more than {MAX_HEADERS} header lines")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not name or any(not ch.isprintable() or ch.isspace() for ch in name):
            raise RtspError(400, f"malformed header line {line[:40]!r}")
        headers[name.lower()] = value.strip()
    cseq = headers.get("cseq", "")
    if not cseq.isdigit() or len(cseq) > 9:
        raise RtspError(400, "every request needs a numeric CSeq header")
    return RtspRequest(method, uri, headers, cseq)


def media_path(uri: str) -> MediaPath:
    """``rtsp://host[:port]/cameras/{camera_id}[/trackID=N][?purpose=...&incident=...]``."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        raise RtspError(400, "the request URI cannot be parsed") from None
    if parts.scheme.lower() not in ("rtsp", ""):
        raise RtspError(400, f"the URI scheme must be rtsp, not {parts.scheme[:10]!r}")
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if len(segments) not in (2, 3) or segments[0] != "cameras":
        raise RtspError(404, "streams are at /cameras/{camera_id}")
    camera_id = segments[1]
    if not CAMERA_ID.fullmatch(camera_id):
        raise RtspError(404, f"{camera_id[:70]!r} is not a camera id")
    track: int | None = None
    if len(segments) == 3:
        matched = _TRACK.fullmatch(segments[2])
        if matched is None:
            raise RtspError(404, f"{segments[2][:40]!r} is not a track of this stream")
        track = int(matched.group(1))
    try:
        query = parse_qs(parts.query, max_num_fields=8)
    except ValueError:
        raise RtspError(400, "the URI's query has more than 8 fields") from None
    purpose = query.get("purpose", [""])[-1]
    incident = query.get("incident", [""])[-1]
    return MediaPath(camera_id, track, purpose, incident)


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``Authorization: Basic ...`` as (username, password); None when absent or malformed."""
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or len(value) > 1024:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, colon, password = decoded.partition(":")
    if not colon or not username or not password:
        return None
    return username, password


@dataclass(frozen=True, slots=True)
class TransportChoice:
    """RTP/AVP/TCP with its ``interleaved`` channels, or RTP/AVP (UDP) to ``client_ports``."""

    interleaved: tuple[int, int] | None = None
    client_ports: tuple[int, int] | None = None


def _pair(value: str, what: str, low_limit: int, high_limit: int) -> tuple[int, int]:
    low, _, high = value.partition("-")
    if not low.isdigit() or len(low) > 5 or not low_limit <= int(low) <= high_limit:
        raise RtspError(400, f"{what}={value[:20]!r} is not a valid pair")
    first = int(low)
    second = int(high) if high.isdigit() and len(high) <= 5 else first + 1
    return first, min(second, high_limit)


def choose_transport(header: str | None, *, udp: bool = True) -> TransportChoice:
    """The first offered transport this server serves: RTP/AVP/TCP interleaved, or RTP/AVP over
    UDP (unicast, to the client's own address) when ``udp``."""
    if not header:
        raise RtspError(461, "SETUP needs a Transport header offering RTP/AVP/TCP")
    for spec in header.split(",")[:8]:
        fields = [f.strip() for f in spec.split(";")]
        profile = fields[0].upper()
        params = {}
        for field in fields[1:16]:
            key, _, value = field.partition("=")
            params[key.lower()] = value
        if profile == "RTP/AVP/TCP":
            channels = (0, 1)
            if "interleaved" in params:
                channels = _pair(params["interleaved"], "interleaved", 0, 255)
            return TransportChoice(interleaved=channels)
        if udp and profile in ("RTP/AVP", "RTP/AVP/UDP") and "multicast" not in params \
                and "client_port" in params:
            ports = _pair(params["client_port"], "client_port", 1, 65535)
            return TransportChoice(client_ports=ports)
    raise RtspError(461, "the transports offered are not served; ask for RTP/AVP/TCP "
                         "(interleaved) or unicast RTP/AVP with client_port")


def response(status: int, cseq: str, headers: dict[str, str] | None = None,
             body: bytes = b"") -> bytes:
    """One answer; ``body`` gets its Content-Length."""
    lines = [f"RTSP/1.0 {status} {REASONS.get(status, 'Error')}"]
    if cseq:
        lines.append(f"CSeq: {cseq}")
    lines.append("Server: rtcc")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def error_response(error: RtspError, cseq: str, headers: dict[str, str] | None = None) -> bytes:
    """An error answer; the reason travels as a text body a person reading a trace can act on."""
    body = (error.message.replace("\r", " ").replace("\n", " ")[:300] + "\n").encode("utf-8")
    return response(error.status, cseq, {"Content-Type": "text/plain", **(headers or {})}, body)
