"""The WHEP/WHIP offer checks fed arbitrary text and mutated offers: the profile-level-id to
answer with, or InvalidOffer / CodecNotSupported (both RtccError, answered 400/415)."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from relay.negotiation import InvalidOffer, drop_mdns_candidates, inspect_offer
from rtcc.errors import CodecNotSupported

OFFER_LINES = [
    "v=0",
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:abcd",
    "a=ice-pwd:0123456789abcdefghijklmn",
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
    "a=setup:actpass",
    "a=mid:0",
    "a=recvonly",
    "a=rtcp-mux",
    "a=rtpmap:96 H264/90000",
    "a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    "a=rtpmap:97 rtx/90000",
    "a=fmtp:97 apt=96",
    "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
    "a=candidate:2 1 udp 2122260223 abcd-1234.local 50001 typ host",
]
VALID_OFFER = "\r\n".join(OFFER_LINES) + "\r\n"

sdp_line = st.one_of(
    st.sampled_from(OFFER_LINES),
    st.builds(lambda kind, rest: f"{kind}={rest}", st.sampled_from("vostcmab"),
              st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF),
                      max_size=60)),
    st.text(max_size=40),
)


@st.composite
def mutated_offer(draw: st.DrawFn) -> str:
    lines = list(OFFER_LINES)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["drop", "replace", "insert"]))
        index = draw(st.integers(0, len(lines) - 1))
        if action == "drop" and len(lines) > 1:
            del lines[index]
        elif action == "replace":
            lines[index] = draw(sdp_line)
        else:
            lines.insert(index, draw(sdp_line))
    return "\r\n".join(lines) + "\r\n"


def _check(text: str) -> None:
    try:
        offered = inspect_offer(text)
    except (InvalidOffer, CodecNotSupported) as exc:
        reason = str(exc)
        assert reason, "every refusal says why"
        return
    profile = offered.h264
    assert profile is not None or offered.h265
    if profile is not None:
        assert len(profile) == 6
        int(profile, 16)


def test_the_template_offer_is_accepted() -> None:
    assert inspect_offer(VALID_OFFER).h264 == "42e01f"


@given(mutated_offer())
@example(VALID_OFFER.replace("a=rtpmap:96 H264/90000", "a=rtpmap:96 H264"))
@example(VALID_OFFER.replace("m=video 9 UDP/TLS/RTP/SAVPF 96 97", "m=video"))
@example(VALID_OFFER.replace("a=fmtp:96 ", "a=fmtp:"))
@example(VALID_OFFER.replace("a=candidate:1 1 udp", "a=candidate:1"))
def test_mutated_offers_are_answered_or_refused_with_a_reason(text: str) -> None:
    _check(text)
    _check(drop_mdns_candidates(text))


@given(st.text(max_size=300))
@example("")
@example("m=video")
@example("v=0\r\nm=video 9")
def test_arbitrary_text_is_refused_with_a_reason(text: str) -> None:
    _check(text)


@given(mutated_offer())
def test_mdns_candidates_are_dropped_and_nothing_else(text: str) -> None:
    kept = drop_mdns_candidates(text)
    assert ".local " not in "\n".join(
        line for line in kept.splitlines() if line.startswith("a=candidate:"))
    assert all(line in text.splitlines() for line in kept.splitlines())
