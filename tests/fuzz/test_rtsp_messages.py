"""RTSP framing and Transport headers as the egress guard reads them from a camera: a message,
None (more bytes needed), or ProtocolViolation."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from ingest.rtsp_messages import Message, ProtocolViolation, TransportSpec, take_message, transports

header_name = st.sampled_from(["CSeq", "Content-Length", "Transport", "Session", "Location",
                               "content-length", "X"])
header_value = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF),
                       max_size=30)


@st.composite
def rtsp_stream(draw: st.DrawFn) -> bytes:
    start = draw(st.sampled_from(["RTSP/1.0 200 OK", "RTSP/1.0 ³01 Moved", "RTSP/1.0",
                                  "OPTIONS rtsp://192.0.2.1/ RTSP/1.0", "SSH-2.0-OpenSSH",
                                  "RTSP/1.0 abc"]))
    headers = draw(st.lists(st.tuples(header_name, header_value), max_size=5))
    body = draw(st.binary(max_size=30))
    head = "\r\n".join([start, *(f"{name}: {value}" for name, value in headers)])
    data = head.encode("latin-1") + b"\r\n\r\n" + body
    interleaved = draw(st.binary(max_size=20))
    return draw(st.sampled_from([data, b"$" + interleaved, data + b"$" + interleaved]))


def _drain(data: bytes, chunk: int) -> list[Message]:
    """Feed ``data`` in chunks as a socket would; the messages taken out, in order."""
    buffer = bytearray()
    taken: list[Message] = []
    for offset in range(0, len(data), chunk):
        buffer += data[offset:offset + chunk]
        while (message := take_message(buffer)) is not None:
            taken.append(message)
            assert isinstance(message.status, int)
            assert isinstance(message.method, str)
            assert message.header("cseq") is None or isinstance(message.header("CSeq"), str)
    return taken


@given(st.one_of(rtsp_stream(), st.binary(max_size=200)), st.integers(1, 64))
@example(b"RTSP/1.0 200 OK\r\nContent-Length: \xb2\r\n\r\n", 64)
@example(b"RTSP/1.0 \xb3 OK\r\n\r\n", 64)
@example(b"RTSP/1.0 200 OK\r\nContent-Length: 99999999999\r\n\r\n", 64)
@example(b"$\x00", 1)
def test_framing_returns_messages_or_a_protocol_violation(data: bytes, chunk: int) -> None:
    try:
        taken = _drain(data, chunk)
    except ProtocolViolation as exc:
        reason = str(exc)
        taken = []
    else:
        reason = "accepted"
    assert reason
    assert sum(len(message.raw) for message in taken) <= len(data)


@given(rtsp_stream())
def test_a_rewritten_header_frames_the_same_message(data: bytes) -> None:
    buffer = bytearray(data)
    try:
        message = take_message(buffer)
    except ProtocolViolation:
        return
    if message is None or message.channel is not None:
        return
    rewritten = bytearray(message.with_header("CSeq", "7"))
    again = take_message(rewritten)
    assert again is not None
    assert again.header("CSeq") == "7"
    assert again.body == message.body


@given(st.text(max_size=200))
@example("RTP/AVP/TCP;unicast;interleaved=0-1")
@example(";;,,=;")
@example("//")
@example("RTP;=;client_port")
def test_transport_headers_parse_to_specs_and_back(header: str) -> None:
    specs = transports(header)
    for spec in specs:
        assert isinstance(spec, TransportSpec)
        assert isinstance(spec.lower_transport, str)
        again = TransportSpec.parse(str(spec))
        assert again.protocol == spec.protocol
        assert isinstance(spec.without("client_port").plus("interleaved", "0-1"), TransportSpec)
