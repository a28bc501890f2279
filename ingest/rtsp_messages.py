"""RTSP control messages as the egress guard sees them: framing, headers, Transport rewriting.

Only the control exchange before PLAY is parsed; header lines are kept as received (an
``Authorization`` header passes through byte for byte and is never shown anywhere).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_HEADER = 65_536
"""Bytes an RTSP header block may take; a camera sending more is not a camera."""
MAX_BODY = 1_048_576
"""Bytes a message body (the SDP) may take."""


def _is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "²", which ``int`` refuses."""
    return text.isascii() and text.isdigit()


class ProtocolViolation(Exception):
    """The peer sent something that is not RTSP; the message says what, without its bytes."""


@dataclass(slots=True)
class Message:
    """One RTSP request or response, or (``channel`` set) one interleaved binary frame."""

    start: str
    """The request or status line ("" for an interleaved frame)."""
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes
    channel: int | None = None

    @property
    def is_response(self) -> bool:
        return self.start.startswith("RTSP/")

    @property
    def status(self) -> int:
        """The status code of a response (0 for anything else)."""
        parts = self.start.split(" ", 2)
        if self.is_response and len(parts) >= 2 and _is_number(parts[1]):
            return int(parts[1])
        return 0

    @property
    def method(self) -> str:
        return "" if self.is_response or self.channel is not None else self.start.split(" ", 1)[0]

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def with_header(self, name: str, value: str) -> bytes:
        """The message's bytes with every ``name`` header replaced by one ``name: value``."""
        wanted = name.lower()
        lines = [self.start]
        replaced = False
        for key, old in self.headers:
            if key.lower() == wanted:
                if not replaced:
                    lines.append(f"{key}: {value}")
                    replaced = True
                continue
            lines.append(f"{key}: {old}")
        if not replaced:
            lines.append(f"{name}: {value}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("latin-1") + self.body


def take_message(buffer: bytearray) -> Message | None:
    """Remove and return the first complete message in ``buffer``; None until one is complete.
    Raises ProtocolViolation for anything that is not RTSP."""
    if not buffer:
        return None
    if buffer[0] == 0x24:  # '$': interleaved RTP/RTCP frame
        if len(buffer) < 4:
            return None
        size = 4 + int.from_bytes(buffer[2:4], "big")
        if len(buffer) < size:
            return None
        raw = bytes(buffer[:size])
        del buffer[:size]
        return Message("", [], raw[4:], raw, channel=raw[1])
    end = buffer.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end, sep = buffer.find(b"\n\n"), 2
    if end < 0:
        if len(buffer) > MAX_HEADER:
            raise ProtocolViolation("an RTSP header longer than 64 KiB")
        _check_start(bytes(buffer[:16]))
        return None
    if end > MAX_HEADER:
        raise ProtocolViolation("an RTSP header longer than 64 KiB")
    text = bytes(buffer[:end]).decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    start = lines[0]
    _check_start(start.encode("latin-1"))
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise ProtocolViolation("a malformed RTSP header line")
        headers.append((name.strip(), value.strip()))
    length = 0
    for name, value in headers:
        if name.lower() == "content-length":
            if not _is_number(value) or int(value) > MAX_BODY:
                raise ProtocolViolation("an invalid or oversized Content-Length")
            length = int(value)
    total = end + sep + length
    if len(buffer) < total:
        return None
    raw = bytes(buffer[:total])
    del buffer[:total]
    return Message(start, headers, raw[end + sep:], raw)


def _check_start(head: bytes) -> None:
    """Refuse a first line that cannot begin an RTSP message (an SSH banner, HTTP...): a
    response starts with ``RTSP/``, a request with an upper-case method name."""
    if len(head) < 5 or head.startswith(b"RTSP/"):
        return
    word = head.split(b" ", 1)[0]
    if word.isalpha() and word.isupper():
        return
    raise ProtocolViolation("something that is not RTSP")


@dataclass(frozen=True, slots=True)
class TransportSpec:
    """One entry of a Transport header: ``RTP/AVP/TCP;unicast;interleaved=0-1``."""

    protocol: str
    params: tuple[tuple[str, str | None], ...]

    @classmethod
    def parse(cls, text: str) -> TransportSpec:
        fields = [field.strip() for field in text.split(";") if field.strip()]
        if not fields:
            return cls("", ())
        params: list[tuple[str, str | None]] = []
        for field in fields[1:]:
            key, eq, value = field.partition("=")
            params.append((key.strip().lower(), value.strip() if eq else None))
        return cls(fields[0].upper(), tuple(params))

    @property
    def lower_transport(self) -> str:
        """"TCP" or "UDP" (RTP/AVP without a lower transport means UDP)."""
        parts = self.protocol.split("/")
        return parts[2] if len(parts) > 2 else "UDP"

    def has(self, key: str) -> bool:
        return any(name == key for name, _ in self.params)

    def without(self, *keys: str) -> TransportSpec:
        return TransportSpec(self.protocol, tuple(p for p in self.params if p[0] not in keys))

    def plus(self, key: str, value: str) -> TransportSpec:
        return TransportSpec(self.protocol, (*self.params, (key, value)))

    def __str__(self) -> str:
        fields = [self.protocol]
        fields += [key if value is None else f"{key}={value}" for key, value in self.params]
        return ";".join(fields)


def transports(header: str) -> list[TransportSpec]:
    """The alternatives of a Transport header, in order."""
    return [TransportSpec.parse(part) for part in header.split(",") if part.strip()]
