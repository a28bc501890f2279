"""What an opened camera stream carries, read from PyAV into typed values."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from fractions import Fraction

import av.container

from rtcc import bitstream
from rtcc.bitstream import BitstreamError, Codec, ParameterSets
from rtcc.media import MediaInfo

H265_WARNING = (
    "the camera sends H.265 (HEVC), which most browsers cannot play over WebRTC: "
    "set this camera's stream to H.264"
)
B_FRAMES_WARNING = (
    "the camera sends B-frames: browsers may stutter or show frames out of order; "
    "turn B-frames off in the camera's encoder settings (IP frames only)"
)


@dataclass(frozen=True, slots=True)
class VideoTrack:
    index: int
    codec: str
    """``h264``, ``h265`` or FFmpeg's name for anything else."""
    time_base: Fraction
    params: ParameterSets
    length_prefixed: bool
    """Packets are AVCC/HVCC (length-prefixed), not Annex-B."""

    @property
    def bitstream_codec(self) -> Codec | None:
        if self.codec == "h264":
            return "h264"
        if self.codec == "h265":
            return "h265"
        return None


def _warnings_for(codec: str, profile: str, has_b_frames: bool) -> tuple[str, ...]:
    warnings: list[str] = []
    if codec == "h265":
        warnings.append(H265_WARNING)
    elif codec != "h264":
        warnings.append(
            f"the camera sends {codec or 'unknown'} video, which cannot be relayed without "
            "transcoding: set this camera's stream to H.264"
        )
    elif profile and profile not in ("baseline", "main", "high"):
        warnings.append(
            f"H.264 {profile} profile may not decode in browsers: use baseline, main or high"
        )
    if has_b_frames:
        warnings.append(B_FRAMES_WARNING)
    return tuple(warnings)


def probe(container: av.container.InputContainer) -> tuple[VideoTrack | None, MediaInfo]:
    """The first video track and the media description of an opened container."""
    audio_codec = ""
    for stream in container.streams.audio:
        audio_codec = stream.codec_context.name or ""
        break
    videos = list(container.streams.video)
    if not videos:
        return None, MediaInfo(audio_codec=audio_codec, warnings=("the camera sends no video",))
    video = videos[0]
    context = video.codec_context
    codec = bitstream.normalize_codec_name(context.name or "")
    extradata = bytes(context.extradata or b"")
    params = ParameterSets()
    sps: bitstream.SpsInfo | None = None
    if codec in ("h264", "h265"):
        try:
            params = bitstream.parse_extradata(extradata, "h265" if codec == "h265" else "h264")
        except BitstreamError:
            params = ParameterSets()
        if codec == "h264":
            sps = bitstream.first_sps_info(params)
    rate = video.average_rate or video.guessed_rate
    fps = float(rate) if rate else 0.0
    if not fps and sps is not None:
        fps = sps.fps
    profile = sps.profile if sps is not None else (context.profile or "").lower()
    has_b_frames = bool(context.has_b_frames)
    info = MediaInfo(
        video_codec=codec,
        width=context.width or (sps.width if sps else 0),
        height=context.height or (sps.height if sps else 0),
        fps=round(fps, 3),
        profile=profile,
        has_b_frames=has_b_frames,
        audio_codec=audio_codec,
        warnings=_warnings_for(codec, profile, has_b_frames),
    )
    track = VideoTrack(
        index=video.index,
        codec=codec,
        time_base=video.time_base or Fraction(1, 90_000),
        params=params,
        length_prefixed=bitstream.extradata_is_length_prefixed(extradata),
    )
    return track, info


def with_b_frames(info: MediaInfo) -> MediaInfo:
    """The same description once B-frames were seen in the packets (pts != dts)."""
    if info.has_b_frames:
        return info
    return dataclasses.replace(
        info, has_b_frames=True, warnings=(*info.warnings, B_FRAMES_WARNING)
    )


def complete_from_sps(info: MediaInfo, params: ParameterSets) -> MediaInfo:
    """Fill in picture size and frame rate from an in-band SPS when probing did not find them."""
    if info.video_codec != "h264":
        return info
    sps = bitstream.first_sps_info(params)
    if sps is None:
        return info
    return dataclasses.replace(
        info,
        width=info.width or sps.width,
        height=info.height or sps.height,
        fps=info.fps or sps.fps,
        profile=info.profile or sps.profile,
        # The SPS's reorder depth says B-frames before the first B picture arrives.
        has_b_frames=info.has_b_frames or bool(sps.max_num_reorder_frames),
    )
