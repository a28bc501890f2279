"""The parts of a camera's stream description (SDP, RFC 4566) the client needs."""

from __future__ import annotations

import base64
import binascii
import contextlib
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from rtcc import bitstream
from rtcc.bitstream import BitstreamError, ParameterSets

_AUDIO_NAMES = {
    "pcma": "pcm_alaw", "pcmu": "pcm_mulaw", "opus": "opus", "mpeg4-generic": "aac",
    "mp4a-latm": "aac", "g722": "adpcm_g722", "l16": "pcm_s16be",
}
"""RTP encoding names to the codec names FFmpeg reports, so stats read the same either way."""


@dataclass(frozen=True, slots=True)
class MediaSection:
    kind: str
    """``video``, ``audio``..."""
    payload_types: tuple[int, ...]
    control: str
    encoding: str = ""
    """The rtpmap encoding name of the first payload type, upper-case (``H264``)."""
    clock_rate: int = 0
    fmtp: dict[str, str] = field(default_factory=dict)
    framerate: float = 0.0


@dataclass(frozen=True, slots=True)
class SessionDescription:
    control: str
    media: tuple[MediaSection, ...]

    @property
    def video(self) -> MediaSection | None:
        return next((m for m in self.media if m.kind == "video"), None)

    @property
    def audio_codec(self) -> str:
        audio = next((m for m in self.media if m.kind == "audio"), None)
        if audio is None:
            return ""
        name = audio.encoding.lower()
        return _AUDIO_NAMES.get(name, name)


@dataclass(slots=True)
class _Building:
    kind: str
    types: tuple[int, ...]
    control: str = ""
    rtpmap: dict[str, str] = field(default_factory=dict)
    fmtp: dict[str, dict[str, str]] = field(default_factory=dict)
    framerate: float = 0.0

    def section(self) -> MediaSection:
        first = str(self.types[0]) if self.types else ""
        encoding, _, rest = self.rtpmap.get(first, "").partition("/")
        clock = rest.split("/")[0]
        return MediaSection(
            kind=self.kind, payload_types=self.types, control=self.control,
            encoding=encoding.upper(),
            clock_rate=int(clock) if clock.isascii() and clock.isdigit() else 0,
            fmtp=dict(self.fmtp.get(first, {})), framerate=self.framerate,
        )


def parse_sdp(text: str) -> SessionDescription:
    """Never raises: lines it does not understand are skipped."""
    session_control = ""
    media: list[_Building] = []
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        key, value = line[0], line[2:]
        if key == "m":
            parts = value.split()
            types = tuple(int(p) for p in parts[3:] if p.isascii() and p.isdigit())
            media.append(_Building(parts[0].lower() if parts else "", types))
            continue
        if key != "a":
            continue
        name, _, attr = value.partition(":")
        current = media[-1] if media else None
        if name == "control":
            if current is None:
                session_control = attr.strip()
            else:
                current.control = attr.strip()
        elif current is None:
            continue
        elif name == "rtpmap":
            pt, _, encoding = attr.partition(" ")
            current.rtpmap[pt.strip()] = encoding.strip()
        elif name == "fmtp":
            pt, _, params = attr.partition(" ")
            for item in params.split(";"):
                k, eq, v = item.strip().partition("=")
                if eq:
                    current.fmtp.setdefault(pt.strip(), {})[k.strip().lower()] = v.strip()
        elif name == "framerate":
            with contextlib.suppress(ValueError):
                current.framerate = float(attr.strip())
    return SessionDescription(session_control, tuple(m.section() for m in media))


def control_url(base: str, control: str) -> str:
    """RFC 2326 C.1.1: ``*`` or nothing is the base itself; an absolute URL stands; anything
    else is relative to the base (Content-Base, Content-Location or the request URL), which is
    taken as a directory."""
    if not control or control == "*":
        return base
    if urlsplit(control).scheme:
        return control
    if not base.endswith("/"):
        base += "/"
    return urljoin(base, control)


def parameter_sets(section: MediaSection) -> ParameterSets:
    """SPS/PPS (and VPS) from the fmtp line; empty when missing or unreadable (the stream may
    still carry them in-band)."""
    fmtp = section.fmtp
    try:
        if section.encoding == "H264":
            value = fmtp.get("sprop-parameter-sets", "")
            return bitstream.parse_sprop_parameter_sets(value) if value else ParameterSets()
        if section.encoding in ("H265", "HEVC"):
            nals = [
                _b64(item)
                for key in ("sprop-vps", "sprop-sps", "sprop-pps")
                for item in fmtp.get(key, "").split(",") if item.strip()
            ]
            return bitstream.classify_parameter_sets(nals, "h265")
    except (BitstreamError, binascii.Error, ValueError):
        return ParameterSets()
    return ParameterSets()


def _b64(item: str) -> bytes:
    item = item.strip()
    return base64.b64decode(item + "=" * (-len(item) % 4), validate=True)
