"""RTSP requests as a VMS (or anyone reaching the re-publishing port) sends them: every input is
a request or an RtspError with a status the server can answer; never another exception."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from relay.rtsp_out.messages import (
    REASONS,
    RtspError,
    basic_credentials,
    choose_transport,
    error_response,
    media_path,
    parse_request,
)

header_name = st.sampled_from(["CSeq", "Content-Length", "Transport", "Session",
                               "Authorization", "cseq", "X", "", " ", "Bad Name"])
header_value = st.text(alphabet=st.characters(min_codepoint=0x00, max_codepoint=0x17F),
                       max_size=40)


@st.composite
def request_block(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["OPTIONS", "DESCRIBE", "SETUP", "PLAY", "TEARDOWN", "brew",
                                   "", "GET_PARAMETER"]))
    uri = draw(st.sampled_from(["*", "rtsp://127.0.0.1/cameras/plaza",
                                "rtsp://h/cameras/plaza/trackID=0?purpose=x",
                                "rtsp://h/cameras/PLAZA", "rtsp://[::1/cameras/a",
                                "http://h/cameras/a", "rtsp://h/cameras/a/trackID=99999"]))
    version = draw(st.sampled_from(["RTSP/1.0", "RTSP/2.0", "HTTP/1.1", ""]))
    headers = draw(st.lists(st.tuples(header_name, header_value), max_size=6))
    line = draw(st.sampled_from([f"{method} {uri} {version}", f"{method}  {uri}", method]))
    text = "\r\n".join([line, *(f"{name}: {value}" for name, value in headers)])
    raw = draw(st.binary(max_size=40))
    return draw(st.sampled_from([text.encode("utf-8"), raw, text.encode("utf-8") + raw]))


def _answerable(error: RtspError) -> None:
    assert error.status in REASONS
    answer = error_response(error, "1")
    assert answer.startswith(f"RTSP/1.0 {error.status} ".encode())
    assert answer.count(b"\r\n\r\n") == 1


@given(request_block())
@example(b"DESCRIBE rtsp://h/cameras/a RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -1")
@example(b"DESCRIBE rtsp://h/cameras/a?" + b"&".join([b"a=1"] * 20) + b" RTSP/1.0\r\nCSeq: 1")
@example(b"SETUP rtsp://h/cameras/a RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;interleaved=x")
@example(b"PLAY rtsp://h/cameras/a?purpose=%ff%fe RTSP/1.0\r\nCSeq: 1\r\nAuthorization: Basic ===")
def test_every_request_parses_or_gets_an_rtsp_error(block: bytes) -> None:
    try:
        request = parse_request(block)
        assert request.cseq.isdigit()
        _ = request.content_length
        path = media_path(request.uri)
        assert path.camera_id
        choose_transport(request.header("transport"))
    except RtspError as error:
        _answerable(error)
        return
    credentials = basic_credentials(request.header("authorization"))
    assert credentials is None or all(credentials)


@given(st.text(max_size=80))
@example("Basic " + "QQ==")
@example("Basic YTpi")
def test_authorization_headers_never_raise(header: str) -> None:
    found = basic_credentials(header)
    assert found is None or (found[0] and found[1])
