"""The RTP side of a re-published camera: its SDP (RFC 6184 fmtp with the parameter sets of the
stream's keyframe) and its RTP packets over interleaved TCP, built from the very payloads the
WebRTC relay sends (``relay.packets.RTP_PAYLOADS``: STAP-A and FU-A, made once per frame)."""

from __future__ import annotations

import base64
import secrets

from relay.packets import RTP_PAYLOADS
from relay.rtp_header import RTP_HEADER
from rtcc import bitstream
from rtcc.media import EncodedFrame

PAYLOAD_TYPE = 96


def sdp(keyframe: EncodedFrame | None, camera_id: str, address: str) -> bytes:
    """A one-track H.264 description; sprop-parameter-sets when a keyframe is known."""
    fmtp = "packetization-mode=1"
    if keyframe is not None:
        nals = bitstream.split_annexb(keyframe.data)
        params = bitstream.classify_parameter_sets(nals, "h264")
        if params.sps and params.pps:
            sps, pps = params.sps[0], params.pps[0]
            if len(sps) >= 4:
                fmtp += f";profile-level-id={sps[1:4].hex()}"
            fmtp += ";sprop-parameter-sets=" + ",".join(
                base64.b64encode(nal).decode("ascii") for nal in (sps, pps))
    lines = [
        "v=0",
        f"o=- {secrets.randbelow(2**31)} 1 IN IP4 {address}",
        f"s=camera {camera_id}",
        "c=IN IP4 0.0.0.0",
        "t=0 0",
        "a=control:*",
        "a=range:npt=now-",
        f"m=video 0 RTP/AVP {PAYLOAD_TYPE}",
        f"a=rtpmap:{PAYLOAD_TYPE} H264/90000",
        f"a=fmtp:{PAYLOAD_TYPE} {fmtp}",
        "a=control:trackID=0",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


class RtpWriter:
    """One session's RTP numbering: a random SSRC, sequence and timestamp origin (RFC 3550)."""

    def __init__(self, channel: int = 0) -> None:
        self.channel = channel
        self.ssrc = secrets.randbits(32)
        self.sequence = secrets.randbits(16)
        self._offset = secrets.randbits(32)
        self.packets_sent = 0
        self.bytes_sent = 0

    @property
    def next_sequence(self) -> int:
        return self.sequence & 0xFFFF

    def rtp_time(self, frame: EncodedFrame) -> int:
        return (frame.pts + self._offset) & 0xFFFFFFFF

    def packets(self, frame: EncodedFrame) -> list[bytes]:
        """Every RTP packet of ``frame``; the last one carries the marker bit."""
        payloads = frame.derive(RTP_PAYLOADS).payloads
        timestamp = self.rtp_time(frame)
        packets: list[bytes] = []
        last = len(payloads) - 1
        for index, payload in enumerate(payloads):
            marker = 0x80 if index == last else 0
            header = RTP_HEADER.pack(0x80, marker | PAYLOAD_TYPE, self.sequence & 0xFFFF,
                                     timestamp, self.ssrc)
            self.sequence += 1
            packets.append(header + payload)
        self.packets_sent += len(packets)
        self.bytes_sent += sum(len(p) for p in packets)
        return packets

    def interleaved(self, frame: EncodedFrame) -> bytes:
        """Every RTP packet of ``frame``, each framed as ``$ channel length`` (RFC 2326 10.12)."""
        parts: list[bytes] = []
        for packet in self.packets(frame):
            parts.append(bytes((0x24, self.channel)) + len(packet).to_bytes(2, "big"))
            parts.append(packet)
        return b"".join(parts)
