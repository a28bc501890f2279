"""FFmpeg command lines: fixed options, and filter values escaped so that no text can become
filter syntax."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av

from evidence import ffmpeg
from tests.evidence.helpers import make_h264


def test_filter_values_are_escaped_at_both_levels() -> None:
    assert ffmpeg.escape_filter_value("/tmp/plain.txt") == "/tmp/plain.txt"
    assert ffmpeg.escape_filter_value("a:b") == "a\\\\:b"
    assert ffmpeg.escape_filter_value("it's") == "it\\\\\\'s"
    assert ffmpeg.escape_filter_value("x,y;[z]") == "x\\,y\\;\\[z\\]"


def test_a_watermark_text_file_in_a_hostile_folder_is_read_as_text(tmp_path: Path) -> None:
    units = make_h264(tmp_path, 1.0)
    raw = tmp_path / "clip.h264"
    raw.write_bytes(b"".join(data for data, _ in units))
    clip = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "h264", "-i",
                    str(raw), "-c", "copy", str(clip)], check=True, timeout=60)
    folder = tmp_path / "x':y,z;[w]drawtext=text=pwned"
    folder.mkdir()
    text_file = folder / "watermark.txt"
    text_file.write_text("CASE '%{pts}' :,;[]\\n", encoding="utf-8")
    target = tmp_path / "marked.mp4"
    args = ffmpeg.watermark_args(ffmpeg.ffmpeg_binary(), clip, target, text_file, 1.7e9)
    assert args[0].endswith("ffmpeg")
    assert "-fps_mode" in args  # one output picture per source frame
    ffmpeg.run(args, "watermark", 60)
    with av.open(str(target)) as container:
        assert sum(1 for _ in container.decode(video=0)) == len(units)
