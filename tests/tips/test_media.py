"""The tip line's file handling on real files: types by their bytes, the copies without
metadata, the sealed originals, and the rate buckets that forget."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.tips.helpers import VIDEO_CREATED, VIDEO_LOCATION, jpeg_with_gps, probe_tags
from tips import vault
from tips.media import MediaRefused, TipLimits, image_copy, sniff, video_copy
from tips.ratelimit import KeyedBuckets


class _Box:
    """A stand-in secret box for wrapping file keys (the real one is the security core's)."""

    def encrypt(self, plaintext: str) -> str:
        return "wrapped:" + plaintext

    def decrypt(self, token: str) -> str:
        return token.removeprefix("wrapped:")


def test_types_are_judged_by_their_bytes() -> None:
    assert sniff(jpeg_with_gps()[:16]).label == "jpeg"
    assert sniff(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00").kind == "video"
    with pytest.raises(MediaRefused, match="HEIC"):
        sniff(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00")
    with pytest.raises(MediaRefused, match="photos"):
        sniff(b"MZ\x90\x00" + b"\x00" * 12)  # a Windows program named scene.jpg
    with pytest.raises(MediaRefused, match="photos"):
        sniff(b"<html><script>x")


def test_photo_copy_limits_and_damage(tmp_path: Path) -> None:
    source = tmp_path / "in.jpg"
    source.write_bytes(jpeg_with_gps())
    copy = image_copy(source, tmp_path / "out.jpg", TipLimits())
    assert (copy.width, copy.height) == (32, 64)
    assert not Image.open(tmp_path / "out.jpg").getexif()
    assert (tmp_path / "out.jpg").stat().st_mode & 0o777 == 0o600
    with pytest.raises(MediaRefused, match="pixels"):
        image_copy(source, tmp_path / "out2.jpg", TipLimits(image_pixels=1000))
    source.write_bytes(jpeg_with_gps()[:300])
    with pytest.raises(MediaRefused, match="cannot be read"):
        image_copy(source, tmp_path / "out3.jpg", TipLimits())


def test_unplayable_video_is_encoded_once_without_metadata(tmp_path: Path) -> None:
    source = tmp_path / "old-phone.mov"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
         "testsrc=size=161x121:rate=10", "-f", "lavfi", "-i", "sine=frequency=440", "-t", "2",
         "-c:v", "mpeg4", "-c:a", "mp2", "-metadata", f"creation_time={VIDEO_CREATED}",
         "-metadata", f"location={VIDEO_LOCATION}", "-f", "mov", str(source)],
        check=True, timeout=120)
    target = tmp_path / "copy.mp4"
    copy = video_copy(source, target, TipLimits())
    assert copy.mime == "video/mp4"
    assert (copy.width, copy.height) == (160, 120)
    tags = probe_tags(target)
    assert "creation_time" not in tags
    assert "location" not in tags
    codecs = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
                             "-of", "csv=p=0", str(target)], check=True, capture_output=True,
                            text=True, timeout=60).stdout.split()
    assert codecs == ["h264", "aac"]
    with pytest.raises(MediaRefused, match="lasts"):
        video_copy(source, tmp_path / "long.mp4", TipLimits(video_seconds=1.0))


def test_sealed_original_reads_back_and_detects_changes(tmp_path: Path) -> None:
    box = _Box()
    key, wrapped = vault.new_key(box)
    assert vault.unwrap_key(box, wrapped) == key
    path = tmp_path / "f.sealed"
    chunks = [b"first chunk " * 50, b"second", b"third" * 999]
    length = 0
    for index, chunk in enumerate(chunks):
        length = vault.append_record(path, "f1", key, index, length, chunk)
    # A torn write after the recorded length is cut off by the next append.
    with path.open("ab") as torn:
        torn.write(b"\x00\x00\x10\x00half a record")
    length = vault.append_record(path, "f1", key, 3, length, b"fourth")
    assert list(vault.read_records(path, "f1", key, length)) == [*chunks, b"fourth"]
    assert b"first chunk" not in path.read_bytes()
    with pytest.raises(vault.OriginalDamaged, match="record 0"):
        list(vault.read_records(path, "another-file", key, length))  # moved to another file
    data = bytearray(path.read_bytes())
    data[40] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(vault.OriginalDamaged):
        list(vault.read_records(path, "f1", key, length))


def test_rate_buckets_forget_at_the_end_of_the_window() -> None:
    now = [1000.0]
    buckets = KeyedBuckets(lambda: now[0], window_s=600)
    assert all(buckets.take("tip", "198.51.100.9", 3) for _ in range(3))
    assert not buckets.take("tip", "198.51.100.9", 3)
    assert buckets.take("tip", "198.51.100.10", 3)  # another caller is not held up
    assert len(buckets) == 2
    now[0] += 601
    assert buckets.take("tip", "198.51.100.9", 3)
    assert len(buckets) == 1  # the old counts, and the key that named them, are gone


def test_image_copy_of_png_with_text_chunk(tmp_path: Path) -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Location", VIDEO_LOCATION)
    buffer = io.BytesIO()
    Image.new("RGBA", (10, 10), (0, 0, 255, 128)).save(buffer, "PNG", pnginfo=info)
    source = tmp_path / "in.png"
    source.write_bytes(buffer.getvalue())
    image_copy(source, tmp_path / "out.jpg", TipLimits())
    assert VIDEO_LOCATION.encode() not in (tmp_path / "out.jpg").read_bytes()
