"""SDP offer checks and the answer: H.264 packetization mode 1, or H.265 (RFC 7798) when the
camera sends H.265 and the offer lists it, with its RTX.

aiortc knows no H.265: for it the relay negotiates whatever aiortc has in common with the offer,
then replaces the transceiver's codecs by the offer's own H.265 entry (payload type, fmtp and
feedback as the viewer wrote them), so the answer and the sender carry H.265. The relay never
decodes it: it only packetizes the camera's bytes.

Trap: aiortc picks the codec while the remote offer is applied, from the transceiver's codec
preferences at that moment. The relay therefore creates its send-only video transceiver, sets the
preferences and installs its own sender before ``setRemoteDescription``, then checks that the
negotiated codec really is H.264 (a VP8 answer would make browsers receive frames and decode none).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters

from relay.aiortc_adapter import (
    install_sender,
    negotiated_codecs,
    restrict_host_candidates,
    set_negotiated_codecs,
)
from relay.sender import PassthroughSender
from rtcc.errors import CodecNotSupported, RtccError

log = logging.getLogger(__name__)

PREFERRED_PROFILE_LEVEL_IDS = ("42e01f", "42001f")
"""What the answer signals, whatever the camera's real profile: browsers decode Main and High
streams signalled as constrained baseline (their decoders do not enforce it), as MediaMTX does."""


_FINGERPRINT = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})*")
_FINGERPRINT_LENGTHS = {"sha-256": 32, "sha-384": 48, "sha-512": 64}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_LINE = 4096
"""Longest SDP line accepted: real offers' lines stay under a few hundred bytes."""


class InvalidOffer(RtccError):
    """The SDP offer cannot be parsed or applied."""


def _h264_mode1(codec: object) -> bool:
    mime = getattr(codec, "mimeType", "")
    params = getattr(codec, "parameters", {})
    return (
        isinstance(mime, str)
        and mime.lower() == "video/h264"
        and str(params.get("packetization-mode", "0")) == "1"
    )


@dataclass(frozen=True, slots=True)
class OfferedVideo:
    """What the viewer's offer can receive."""

    h264: str | None
    """The H.264 profile-level-id the answer will carry; None when the offer has no usable
    H.264 (packetization mode 1, baseline profile)."""
    h265: tuple[RTCRtpCodecParameters, ...] = ()
    """The offer's H.265 entry followed by its RTX, as the viewer wrote them; empty if none."""
    names: tuple[str, ...] = ()
    """Every video codec name the offer lists (for error messages)."""

    def describe(self) -> str:
        return ", ".join(self.names) or "no codec"


def _h265_offered(codecs: list[RTCRtpCodecParameters]) -> tuple[RTCRtpCodecParameters, ...]:
    for codec in codecs:
        if codec.mimeType.lower() != "video/h265" or codec.clockRate != 90000:
            continue
        if str(codec.parameters.get("sprop-max-don-diff", "0")) != "0":
            continue  # decoding-order numbers in every packet: not what the relay sends
        chosen = [codec]
        chosen += [c for c in codecs if c.mimeType.lower() == "video/rtx"
                   and c.parameters.get("apt") == codec.payloadType][:1]
        return tuple(chosen)
    return ()


def inspect_offer(sdp_text: str) -> OfferedVideo:
    """What the offer's video section can receive. Raises InvalidOffer if the offer is not usable
    SDP, CodecNotSupported if it can receive neither H.264 packetization mode 1 nor H.265."""
    # aiortc's parser trusts its input: bytes it does not expect fail deep inside it, later.
    control = _CONTROL.search(sdp_text)
    if control is not None:
        line = sdp_text.count("\n", 0, control.start()) + 1
        raise InvalidOffer(f"the offer contains a control character (code "
                           f"{ord(control[0])}) on line {line}; SDP is printable text")
    if any(len(line) > MAX_LINE for line in sdp_text.splitlines()):
        raise InvalidOffer(f"the offer has a line longer than {MAX_LINE} characters")
    if not any(line.startswith("m=") for line in sdp_text.splitlines()):
        raise InvalidOffer("the offer has no media section (no m= line)")
    if "m=video" not in sdp_text:
        if not sdp_text.lstrip().startswith("v=0"):
            raise InvalidOffer("the body is not an SDP offer (it must start with v=0)")
        raise CodecNotSupported("the offer has no video section")
    try:
        description = aiortc_sdp.SessionDescription.parse(sdp_text)
    except Exception as exc:  # noqa: BLE001 -- aiortc raises ValueError, KeyError, AssertionError... on bad SDP
        detail = f": {exc}" if str(exc) else ""
        raise InvalidOffer(f"the offer is not valid SDP ({type(exc).__name__}{detail})") from None
    videos = [media for media in description.media if media.kind == "video"]
    if not videos:
        raise CodecNotSupported("the offer has no video section")
    video = videos[0]
    if video.direction not in (None, "recvonly", "sendrecv"):
        raise InvalidOffer(f"the offer's video section is {video.direction}: it must receive")
    if not (video.ice and video.ice.usernameFragment and video.ice.password):
        raise InvalidOffer("the offer has no ICE username fragment and password")
    fingerprints = video.dtls.fingerprints if video.dtls else []
    if not fingerprints or not all(
        f.algorithm.lower() in _FINGERPRINT_LENGTHS
        and _FINGERPRINT.fullmatch(f.value)
        and len(f.value) == _FINGERPRINT_LENGTHS[f.algorithm.lower()] * 3 - 1
        for f in fingerprints
    ):
        raise InvalidOffer("the offer has no valid DTLS fingerprint (sha-256, sha-384 or sha-512)")
    offered: set[str] = set()
    for codec in video.rtp.codecs:
        if not _h264_mode1(codec):
            continue
        profile_level_id = str(codec.parameters.get("profile-level-id", "42e01f")).lower()
        try:
            profile, _ = aiortc_sdp.parse_h264_profile_level_id(profile_level_id)
        except ValueError:
            continue
        if profile is aiortc_sdp.H264Profile.PROFILE_CONSTRAINED_BASELINE:
            offered.add("42e01f")
        elif profile is aiortc_sdp.H264Profile.PROFILE_BASELINE:
            offered.add("42001f")
    names = tuple(sorted({codec.mimeType.split("/")[-1] for codec in video.rtp.codecs}))
    h264 = next((choice for choice in PREFERRED_PROFILE_LEVEL_IDS if choice in offered), None)
    h265 = _h265_offered(video.rtp.codecs)
    if h264 is None and not h265:
        raise CodecNotSupported(
            "the viewer cannot receive H.264 (packetization mode 1, baseline profile) or H.265; "
            "it offered: " + (", ".join(names) or "no codec")
        )
    return OfferedVideo(h264, h265, names)


def drop_mdns_candidates(sdp_text: str) -> str:
    """The offer without ICE candidates whose address is an mDNS name (``*.local``).

    Browsers hide their addresses behind such names. aioice resolves them before ICE starts and
    waits a full second for each name nobody answers (the usual case for a server, not on the
    viewer's link), while the viewer's own connectivity checks reach the server's candidates and
    give it a peer-reflexive candidate anyway.
    """
    kept = []
    for line in sdp_text.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            if len(fields) > 4 and fields[4].lower().endswith(".local"):
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


def _preferences(profile_level_id: str) -> list[RTCRtpCodecCapability]:
    chosen: list[RTCRtpCodecCapability] = []
    rtx: list[RTCRtpCodecCapability] = []
    for capability in RTCRtpSender.getCapabilities("video").codecs:
        mime = capability.mimeType.lower()
        if mime == "video/rtx":
            rtx.append(capability)
        elif (
            _h264_mode1(capability)
            and str(capability.parameters.get("profile-level-id", "")).lower() == profile_level_id
        ):
            chosen.append(capability)
    if not chosen:
        raise RuntimeError(f"aiortc has no H.264 {profile_level_id} capability")
    return chosen + rtx


SenderFactory = Callable[[RTCDtlsTransport], PassthroughSender]


async def answer_offer(
    pc: RTCPeerConnection,
    offer_sdp: str,
    offered: OfferedVideo,
    codec: str,
    make_sender: SenderFactory,
    *,
    host_addresses: Sequence[str] = (),
    public_addresses: Sequence[str] = (),
) -> tuple[str, PassthroughSender]:
    """Apply the offer to a fresh peer connection and return the complete answer (all ICE
    candidates gathered, host ones on ``host_addresses`` when given, each also offered under
    ``public_addresses``) and the relay's sender, for ``codec`` (``h264`` or ``h265``, which
    the offer must list). The caller bounds it with a timeout."""
    if codec == "h265" and not offered.h265:
        raise CodecNotSupported("the viewer's offer has no H.265 (it offered: "
                                f"{offered.describe()})")
    if codec != "h265" and offered.h264 is None:
        raise CodecNotSupported("the viewer cannot receive H.264 (packetization mode 1, "
                                f"baseline profile); it offered: {offered.describe()}")
    transceiver = pc.addTransceiver("video", direction="sendonly")
    restrict_host_candidates(transceiver.sender.transport, host_addresses, public_addresses)
    if offered.h264 is not None:
        # For H.265 too: aiortc must find a codec in common to accept the offer at all.
        transceiver.setCodecPreferences(_preferences(offered.h264))
    sender = make_sender(transceiver.sender.transport)
    # Before the offer is applied: aiortc binds the sender while applying it.
    install_sender(transceiver, sender)
    try:
        await pc.setRemoteDescription(
            RTCSessionDescription(sdp=drop_mdns_candidates(offer_sdp), type="offer")
        )
    except (RtccError, TimeoutError):
        raise
    except Exception as exc:  # noqa: BLE001 -- aiortc raises many types on offers it cannot apply
        raise InvalidOffer(f"the offer cannot be applied: {type(exc).__name__}: {exc}") from None
    if codec == "h265":
        set_negotiated_codecs(transceiver, list(offered.h265))
    codecs = negotiated_codecs(transceiver)
    wanted = "video/h265" if codec == "h265" else "video/h264"
    if not codecs or codecs[0].mimeType.lower() != wanted:
        raise CodecNotSupported(f"no {codec.upper()} codec could be negotiated with this viewer")
    try:
        await pc.setLocalDescription(await pc.createAnswer())
    except (RtccError, TimeoutError):
        raise
    except Exception as exc:  # noqa: BLE001 -- an offer aiortc accepted but cannot answer
        raise InvalidOffer(f"the offer cannot be answered: {type(exc).__name__}: {exc}") from None
    local = pc.localDescription
    if transceiver.currentDirection not in ("sendonly", "sendrecv"):
        raise InvalidOffer("the offer's video section does not receive")
    return local.sdp, sender
