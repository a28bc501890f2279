"""Recording the camera simulator through a real RtspSource and hub, exporting 20 s across
segment boundaries, and verifying the package (and failing it after one changed byte).

One recording (~24 s of the simulator's ``open`` camera: 640x360, 15 fps, keyframe every 1 s,
4 s segments) is made once for the module, in its own thread and event loop, and shared.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pytest

from camsim.runner import Camsim, CamsimUnavailable
from evidence import export_main, verify_main
from evidence.export import Exporter, ExportRequest, ExportResult
from evidence.exports import sweep_interrupted
from evidence.manager import RecordingManager
from evidence.signing import load_or_create
from evidence.store import AsyncEvidenceStore, EvidenceStore
from ingest.rtsp import RtspSource, RtspTarget
from recording.recorder import RecorderSettings
from recording.segments import contained, hash_file, iter_frames, read_index
from recording.store import SegmentRow
from recording.times import iso_utc
from rtcc import bitstream
from rtcc.config import CamsimConfig, EvidenceConfig, Settings
from rtcc.hub import StreamHub, StreamSettings
from rtcc.media import VIDEO_CLOCK_RATE
from security.audit import AuditLog, AuditWriter
from security.cli import open_audit_log
from security.store import SecurityStore, SecurityTables
from tests.evidence.helpers import (
    flip_byte,
    member_bytes,
    member_offset,
    public_key_file,
    resign,
    run_text,
)
from tests.fixtures.camsim import STANDARD_CAMERAS
from tests.ingest.helpers import FAST

SEGMENT_SECONDS = 4.0
RECORD_SECONDS = 23.5
FPS = 15


@dataclass
class Recording:
    data_dir: Path
    root: Path
    frames_written: int
    witness: dict[int, bytes] = field(default_factory=dict)
    """pts -> bytes of every frame a second, independent subscriber of the stream received."""
    skip: str = ""

    def store(self) -> EvidenceStore:
        return EvidenceStore.open_in(self.data_dir)

    def segments(self) -> list[SegmentRow]:
        store = self.store()
        try:
            return sorted(store.recent_segments("cam1", 1000), key=lambda row: row.utc_start)
        finally:
            store.close()

    def settings(self) -> Settings:
        return Settings(data_dir=self.data_dir, evidence=EvidenceConfig(segment_seconds=4))


async def _record(data_dir: Path, out: Recording) -> None:
    camera = STANDARD_CAMERAS[0]  # "open"
    sim = Camsim(CamsimConfig(cameras=[camera]), port=0)
    try:
        await sim.start()
    except CamsimUnavailable as exc:
        out.skip = f"camera simulator unavailable: {exc}"
        return
    security = await SecurityStore.open_in(data_dir)
    db = await AsyncEvidenceStore.open_in(data_dir)
    try:
        target = RtspTarget(sim.url(camera.path))
        async with StreamHub() as hub:
            stream = hub.register("cam1", "main",
                                  lambda: RtspSource("cam1/main", target, FAST),
                                  StreamSettings(close_after=0))
            manager = RecordingManager(
                hub=hub, store=db, root=out.root, audit=AuditLog(security, time.time),
                record_cameras={"cam1": "test recording"}, retention_days={},
                default_retention_days=30,
                recorder_settings=RecorderSettings(segment_seconds=SEGMENT_SECONDS,
                                                   min_free_bytes=0))
            witness = await stream.subscribe("witness", maxsize=2000)
            await manager.start()
            recorder = manager.recorder("cam1")
            assert recorder is not None
            deadline = time.monotonic() + RECORD_SECONDS + 30
            while recorder.frames_written < RECORD_SECONDS * FPS:
                assert time.monotonic() < deadline, f"recording stalled: {recorder.stats()}"
                while (frame := witness.get_nowait()) is not None:
                    out.witness[frame.pts] = frame.data
                await asyncio.sleep(0.1)
            await manager.aclose()
            while (frame := witness.get_nowait()) is not None:
                out.witness[frame.pts] = frame.data
            witness.close()
            out.frames_written = recorder.frames_written
    finally:
        await db.aclose()
        await security.aclose()
        await sim.stop()


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    data_dir = tmp_path_factory.mktemp("recording") / "data"
    out = Recording(data_dir=data_dir, root=data_dir / "evidence", frames_written=0)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_record(data_dir, out))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="evidence-test-recording")
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the recording did not finish"
    if failure:
        raise failure[0]
    if out.skip:
        pytest.skip(out.skip)
    return out


@pytest.fixture(scope="module")
def exported(recording: Recording, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    """20 s from 2 s after the first recorded frame: spans at least five 4 s segments."""
    first = recording.segments()[0].utc_start
    store = recording.store()
    try:
        exporter = Exporter(store, recording.root, load_or_create(recording.root))
        return exporter.export(
            ExportRequest(camera_id="cam1", start=first + 2.0, end=first + 22.0, case="2024-0042",
                          requester="ivan", requester_role="investigator", owner_id="dept",
                          camera_name="Open camera", reason="robbery at the corner"),
            tmp_path_factory.mktemp("export") / "package.tar")
    finally:
        store.close()


def _nals_of_mp4_packet(data: bytes) -> list[bytes]:
    return bitstream.split_avcc(data)


def test_segments_hold_the_original_bytes_cut_at_keyframes(recording: Recording) -> None:
    rows = recording.segments()
    assert len(rows) >= 6
    total = 0
    for row in rows:
        assert row.state == "complete"
        path = contained(recording.root, row.path)
        assert hash_file(path) == (row.sha256, row.bytes)  # hashed while written, matches disk
        entries = read_index(path)
        assert len(entries) == row.frames
        assert entries[0].keyframe
        assert (entries[0].pts, entries[-1].pts) == (row.pts_start, row.pts_end)
        assert row.utc_start == entries[0].capture_time
        assert row.utc_end == entries[-1].capture_time
        frames = list(iter_frames(path, entries))
        assert bitstream.nal_types(frames[0])[:3] == [bitstream.NalType.AUD, bitstream.NalType.SPS,
                                                  bitstream.NalType.PPS]
        for entry, data in zip(entries, frames, strict=True):
            # Exactly the bytes the camera sent, as another subscriber of the stream saw them.
            assert recording.witness.get(entry.pts) == data
        total += row.frames
    assert total == recording.frames_written
    # Cut at the first keyframe after 4 s of camera time (keyframe every 1 s).
    for row, following in itertools.pairwise(rows):
        assert row.pts_start is not None
        assert row.pts_end is not None
        assert following.pts_start is not None
        span = (following.pts_start - row.pts_start) / VIDEO_CLOCK_RATE
        assert SEGMENT_SECONDS <= span <= SEGMENT_SECONDS + 1.0 + 1e-6, span
        assert following.pts_start - row.pts_end == VIDEO_CLOCK_RATE // FPS  # nothing lost
    # Readable by the server's user only: folders 0700, segment and index files 0600.
    stored = [recording.data_dir, *recording.data_dir.rglob("*")]
    assert {stat.S_IMODE(p.stat().st_mode) for p in stored if p.is_dir()} == {0o700}
    assert {stat.S_IMODE(p.stat().st_mode) for p in stored if p.is_file()} == {0o600}


def test_export_of_20_seconds_across_segments_plays_and_matches_the_source(
    recording: Recording, exported: ExportResult
) -> None:
    assert len(exported.segment_ids) >= 5
    clip = exported.package.with_name("clip.mp4")
    clip.write_bytes(member_bytes(exported.package, "clip.mp4"))
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,width,height,nb_read_frames,duration", "-of", "json", str(clip)],
        capture_output=True, text=True, check=True, timeout=60).stdout)["streams"][0]
    assert (probe["codec_name"], probe["width"], probe["height"]) == ("h264", 640, 360)
    assert int(probe["nb_read_frames"]) == exported.frames == exported.manifest["clip"]["frames"]
    # Starts at the keyframe at or before the requested start (keyframe every 1 s).
    assert 20.0 - 0.2 <= float(probe["duration"]) <= 21.2
    first = recording.segments()[0].utc_start
    in_range = [e for row in recording.segments()
                for e in read_index(contained(recording.root, row.path))
                if first + 2.0 <= e.capture_time < first + 22.0]
    assert 0 <= exported.frames - len(in_range) < FPS  # plus the lead-in from the keyframe

    # Frame by frame, the clip carries the recorded bitstream unchanged.
    store = recording.store()
    try:
        source: list[bytes] = []
        for entry in exported.manifest["sources"]:
            row = store.segment(entry["segment_id"])
            assert row is not None
            assert row.sha256 == entry["sha256"]
            path = contained(recording.root, row.path)
            first, last = entry["frames_used"]
            source += list(iter_frames(path, read_index(path)[first:last + 1]))
    finally:
        store.close()
    with av.open(str(clip)) as container:
        packets = [bytes(p) for p in container.demux(video=0) if p.size]
    assert len(packets) == len(source)
    for packet, original in zip(packets, source, strict=True):
        assert _nals_of_mp4_packet(packet) == bitstream.split_annexb(original)

    # The first picture decodes identically from the clip and from the recorded segment.
    with av.open(str(clip)) as container:
        from_clip = next(container.decode(video=0)).to_ndarray(format="rgb24")
    decoder = av.CodecContext.create("h264", "r")
    pictures = list(decoder.decode(av.Packet(source[0]))) + list(decoder.decode(None))
    assert np.array_equal(from_clip, pictures[0].to_ndarray(format="rgb24"))


@pytest.fixture
def trusted(recording: Recording, tmp_path: Path) -> Path:
    """The server's published public key, as given to ``rtcc verify --key``."""
    return public_key_file(tmp_path, recording.root)


def test_the_untouched_package_verifies(exported: ExportResult, trusted: Path) -> None:
    code, text = run_text(verify_main, exported.package, key_path=trusted)
    assert code == 0, text
    assert "RESULT: VERIFIED" in text
    assert "OK   public-key.pem: signed with the trusted key" in text
    assert "OK   manifest.json: the signature matches" in text
    assert f"OK   clip.mp4: SHA-256 {exported.manifest['files'][0]['sha256']}" in text


def test_without_a_trusted_key_nothing_is_vouched_for(exported: ExportResult) -> None:
    code, text = run_text(verify_main, exported.package)
    assert code == 1, text
    assert "FAIL public-key.pem: signed with key fingerprint" in text
    assert "no trusted key was given" in text
    assert "--key FILE" in text
    assert "--config FILE" in text
    assert "RESULT: FAILED (1 problem): public-key.pem" in text


def test_a_package_resigned_with_a_bundled_forged_key_fails(
    recording: Recording, exported: ExportResult, trusted: Path, tmp_path: Path
) -> None:
    forged = tmp_path / "forged.tar"
    resign(exported.package, forged, load_or_create(tmp_path / "forger"))
    for kwargs in ({"key_path": trusted}, {"settings": recording.settings()}):
        code, text = run_text(verify_main, forged, **kwargs)
        assert code == 1, text
        assert "OK   manifest.json: the signature matches" in text  # consistent in itself
        assert "FAIL public-key.pem: signed with key fingerprint" in text
        assert "which is not the trusted key: the package was re-signed" in text
        assert "RESULT: FAILED (1 problem): public-key.pem" in text


def test_one_changed_byte_in_the_clip_fails_and_is_named(
    exported: ExportResult, trusted: Path, tmp_path: Path
) -> None:
    offset, size = member_offset(exported.package, "clip.mp4")
    altered = tmp_path / "altered.tar"
    flip_byte(exported.package, altered, offset + size // 2)
    code, text = run_text(verify_main, altered, key_path=trusted)
    assert code == 1, text
    assert "FAIL clip.mp4: its SHA-256" in text
    assert "the file was altered" in text
    assert "RESULT: FAILED (1 problem): clip.mp4" in text


def test_one_changed_byte_in_the_manifest_fails_and_is_named(
    exported: ExportResult, trusted: Path, tmp_path: Path
) -> None:
    offset, _ = member_offset(exported.package, "manifest.json")
    body = member_bytes(exported.package, "manifest.json")
    where = body.index(b'"case":"2024-0042"') + len(b'"case":"2024-004')
    altered = tmp_path / "altered.tar"
    flip_byte(exported.package, altered, offset + where, ord("3"))  # case 2024-0042 -> 2024-0043
    code, text = run_text(verify_main, altered, key_path=trusted)
    assert code == 1, text
    assert "FAIL manifest.json header: the header (case, camera, owner, requester" in text
    assert "was altered after signing" in text


def test_one_changed_byte_in_a_segment_hash_fails_and_names_the_segment(
    exported: ExportResult, trusted: Path, tmp_path: Path
) -> None:
    offset, _ = member_offset(exported.package, "manifest.json")
    body = member_bytes(exported.package, "manifest.json")
    second = exported.manifest["sources"][1]
    where = body.index(second["sha256"].encode()) + 10
    replacement = ord("0") if body[where] != ord("0") else ord("1")
    altered = tmp_path / "altered.tar"
    flip_byte(exported.package, altered, offset + where, replacement)
    code, text = run_text(verify_main, altered, key_path=trusted)
    assert code == 1, text
    assert (f"FAIL manifest.json sources[1]: source segment 2 (id {second['segment_id']}, "
            f"{second['utc_start']} to {second['utc_end']}) was altered after signing") in text
    assert "header" not in text.split("RESULT")[1]  # only that entry is named


def test_cli_export_with_watermark_progress_audit_and_hold(
    recording: Recording, tmp_path: Path
) -> None:
    settings = recording.settings()
    first = recording.segments()[1].utc_start
    out = tmp_path / "case.tar"
    err, stdout = io.StringIO(), io.StringIO()
    code = export_main(settings, "cam1", iso_utc(first + 0.5), iso_utc(first + 4.5),
                       "CASE 'x':y,z;[w]", out, True, audit_log=open_audit_log, err=err,
                       stdout=stdout)
    assert code == 0, err.getvalue()
    assert "[" + "#" * 30 + "] 100% done" in err.getvalue()
    assert "checking source hashes" in err.getvalue()
    assert "SHA-256:" in stdout.getvalue()

    watermarked = tmp_path / "wm.mp4"
    watermarked.write_bytes(member_bytes(out, "watermarked.mp4"))
    manifest = json.loads(member_bytes(out, "manifest.json"))
    with av.open(str(watermarked)) as container:
        count = sum(1 for _ in container.decode(video=0))
    assert count == manifest["clip"]["frames"]
    assert [f["name"] for f in manifest["files"]] == ["clip.mp4", "watermarked.mp4"]
    assert manifest["case"] == "CASE 'x':y,z;[w]"

    # Verified on the server: the sources are compared with the stored segments, and audited.
    code, text = run_text(verify_main, out, settings, audit_log=open_audit_log)
    assert code == 0, text
    assert "OK   public-key.pem: signed with the trusted key" in text
    assert "matches the segment stored on this server" in text

    security = SecurityTables.open_in(settings.data_dir)
    try:
        entries = AuditWriter(security, time.time).query(limit=50)
    finally:
        security.close()
    actions = [(e.action, e.outcome) for e in entries]
    assert ("evidence.export", "started") in actions
    assert ("evidence.export", "ok") in actions
    assert ("evidence.verify", "ok") in actions
    store = recording.store()
    try:
        assert store.is_held("cam1", first + 1, first + 2)
    finally:
        store.close()


def test_a_package_signed_by_another_key_is_refused_against_the_trusted_key(
    exported: ExportResult, tmp_path: Path
) -> None:
    other = load_or_create(tmp_path / "other")
    key_file = tmp_path / "trusted.pem"
    key_file.write_bytes(other.public_pem())
    code, text = run_text(verify_main, exported.package, key_path=key_file)
    assert code == 1
    assert "FAIL public-key.pem: signed with key fingerprint" in text
    assert "not the trusted key" in text


def test_rtcc_export_and_verify_commands(recording: Recording, trusted: Path,
                                        tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    config.write_text(f"data_dir: {recording.data_dir}\nevidence:\n  segment_seconds: 4\n")
    first = recording.segments()[2].utc_start
    out = tmp_path / "command.tar"

    def rtcc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "server", *args], capture_output=True,
                              text=True, timeout=120, check=False, umask=0o022)

    made = rtcc("export", "--config", str(config), "--camera", "cam1", "--from",
                iso_utc(first), "--to", iso_utc(first + 3), "--case", "C-1", "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert "100% done" in made.stderr
    assert f"package: {out}" in made.stdout

    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # whatever the umask
    # Anyone can check a package against the department's published key, or on the server.
    for how in (("--key", str(trusted)), ("--config", str(config))):
        checked = rtcc("verify", str(out), *how)
        assert checked.returncode == 0, checked.stdout
        assert "RESULT: VERIFIED" in checked.stdout
    unvouched = rtcc("verify", str(out))
    assert unvouched.returncode == 1, unvouched.stdout
    assert "no trusted key was given" in unvouched.stdout
    forged = tmp_path / "forged.tar"
    resign(out, forged, load_or_create(tmp_path / "forger"))
    refused = rtcc("verify", str(forged), "--config", str(config))
    assert refused.returncode == 1, refused.stdout
    assert "not the trusted key" in refused.stdout

    offset, size = member_offset(out, "clip.mp4")
    altered = tmp_path / "altered.tar"
    flip_byte(out, altered, offset + size - 1)
    failed = rtcc("verify", str(altered), "--config", str(config))
    assert failed.returncode == 1
    assert "FAIL clip.mp4: its SHA-256" in failed.stdout
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not a package")
    unreadable = rtcc("verify", str(garbage))
    assert unreadable.returncode == 2
    assert "cannot be read as an export package" in unreadable.stdout


def test_an_export_killed_midway_leaves_no_package_and_its_leftovers_are_swept(
    recording: Recording, tmp_path: Path
) -> None:
    config = tmp_path / "server.yaml"
    config.write_text(f"data_dir: {recording.data_dir}\nevidence:\n  segment_seconds: 4\n")
    segments = recording.segments()
    start, end = segments[0].utc_start, segments[-1].utc_start + 2
    work = recording.root / "tmp"
    out = tmp_path / "killed.tar"
    killed = False
    for _ in range(3):  # an export that finishes before it is caught is tried again
        before = set(work.glob("export-*")) if work.is_dir() else set()
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "export", "--config", str(config), "--camera",
             "cam1", "--from", iso_utc(start), "--to", iso_utc(end), "--case", "C-9",
             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if work.is_dir() and set(work.glob("export-*")) - before:
                process.kill()  # SIGKILL while the package is being made
                killed = True
                break
            time.sleep(0.002)
        process.wait(timeout=30)
        if killed:
            break
        out.unlink(missing_ok=True)
    assert killed, "every export finished before it could be killed"
    assert not out.exists()  # a package gets its name only once complete
    assert list(work.glob("export-*"))  # what the killed export left behind

    store = recording.store()
    try:
        swept = sweep_interrupted(store, recording.root)
        assert swept["work_folders"] >= 1
        assert not list(work.glob("export-*"))
        assert sweep_interrupted(store, recording.root)["work_folders"] == 0
    finally:
        store.close()
