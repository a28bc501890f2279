"""The compiled loops (``relay._fastpath``) against what a hostile camera can send: any bytes as an
access unit. They give the very bytes of the Python fallback, refuse bad arguments with an
exception instead of touching memory they do not own, and run clean under AddressSanitizer and
UndefinedBehaviorSanitizer."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pylibsrtp import Policy, Session

from relay import fastpath, packets
from relay.rtp_header import RTP_HEADER
from relay.sender import new_scratch_buffer
from relay.srtp import SRTP_TRAILER_ROOM, InPlaceProtector
from rtcc import bitstream

ROOT = Path(__file__).resolve().parents[2]
needs_build = pytest.mark.skipif(fastpath.SEND_FRAME is None,
                                 reason="relay._fastpath is not built here")

_PIECES = [b"\x00\x00\x01", b"\x00\x00\x00\x01", b"\x00", b"\x01", b"\x00\x00", b"\x65",
           b"\x41", b"\x67", b"\x68", b"\x06", b"\x09", b"\x26\x01", b"\x40\x01", b"\x4e\x01"]
access_units = st.one_of(
    st.binary(max_size=64),
    st.lists(st.one_of(st.sampled_from(_PIECES), st.binary(max_size=8)), max_size=40)
    .map(b"".join),
    # huge units: fragmented across many packets, the start codes at either end
    st.tuples(st.sampled_from(_PIECES[:2]), st.integers(1190, 9000), st.binary(max_size=4),
              st.sampled_from([b"", b"\x00", b"\x00\x00\x01", b"\x00\x00\x00\x01"]))
    .map(lambda t: t[0] + bytes([0x65]) + bytes(range(256)) * (t[1] // 256) + t[2] + t[3]),
)


def _python_packetize(nals: list[bytes], codec: str, max_payload: int) -> list[bytes]:
    compiled = packets._fragment  # noqa: SLF001 -- the fallback itself, swapped in and back
    packets._fragment = packets._fragment_python  # noqa: SLF001 -- the fallback itself
    try:
        if codec == "h265":
            return packets.packetize_h265(nals, max_payload)
        return packets.packetize(nals, max_payload)
    finally:
        packets._fragment = compiled  # noqa: SLF001 -- restored


@needs_build
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=access_units, codec=st.sampled_from(["h264", "h265"]),
       max_payload=st.sampled_from([4, 5, 6, 100, 1199, 1200]))
def test_compiled_split_and_packetize_match_python(data: bytes, codec: str,
                                                   max_payload: int) -> None:
    split = fastpath.SPLIT_ANNEXB
    assert split is not None
    assert packets._fragment is fastpath.FRAGMENT  # noqa: SLF001 -- the compiled one is in use
    nals = split(data)
    assert nals == bitstream.split_annexb(data)
    assert split(bytearray(data)) == nals  # type: ignore[arg-type]  # any buffer
    compiled = (packets.packetize_h265(nals, max_payload) if codec == "h265"
                else packets.packetize(nals, max_payload))
    assert compiled == _python_packetize(nals, codec, max_payload)


@needs_build
@settings(max_examples=300, deadline=None)
@given(nal=st.binary(min_size=0, max_size=3000), max_payload=st.integers(-3, 1300),
       prefix=st.binary(max_size=3), kind=st.integers(0, 0x3F), header=st.integers(0, 3))
def test_compiled_fragment_matches_python_or_refuses(nal: bytes, max_payload: int,
                                                     prefix: bytes, kind: int,
                                                     header: int) -> None:
    fragment = fastpath.FRAGMENT
    assert fragment is not None
    if len(nal) - header < 1 or max_payload - len(prefix) - 1 < 1:
        with pytest.raises(ValueError, match=r"nothing to fragment|must not be negative"):
            fragment(nal, max_payload, prefix, kind, header)
        return
    out = fragment(nal, max_payload, prefix, kind, header)
    assert out == packets._fragment_python(nal, max_payload, prefix, kind, header)  # noqa: SLF001 -- the fallback itself
    assert all(len(piece) <= max_payload for piece in out)
    assert b"".join(piece[len(prefix) + 1:] for piece in out) == nal[header:]


@needs_build
@pytest.mark.parametrize("arguments", [
    (b"\x65\x00", 2**63 - 1, b"\x7c", 5, 1),  # no overflow rounding up with a huge room
    (b"\x65\x00", 1200, b"\x7c", 5, -(2**63)),
    (b"\x65\x00", -1, b"\x7c", 5, 1),
    (b"\x65\x00", 1200, b"\x7c", 0x40, 1),
    (b"\x65\x00", 1200, b"\x7c", -1, 1),
    (b"\x65\x00", 1200, b"\x7c", 5, 2**64),
])
def test_fragment_refuses_or_survives_extreme_numbers(arguments: tuple[object, ...]) -> None:
    fragment: object = fastpath.FRAGMENT
    assert callable(fragment)
    try:
        out = fragment(*arguments)
    except (ValueError, OverflowError):
        return
    assert out == [b"\x7c\xc5\x00"]


@pytest.fixture
def outbound() -> Session:
    policy = Policy(key=bytes(range(30)), ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                    srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    policy.allow_repeat_tx = True  # as aiortc's: a NACK re-protects a sequence number
    return Session(policy)


@pytest.fixture
def udp() -> Iterator[tuple[socket.socket, socket.socket]]:
    receiving = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sending = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiving.bind(("127.0.0.1", 0))
    receiving.setblocking(False)
    sending.setblocking(False)
    try:
        yield receiving, sending
    finally:
        receiving.close()
        sending.close()


def _packed(address: tuple[str, int]) -> bytes:
    return (socket.AF_INET.to_bytes(2, sys.byteorder) + address[1].to_bytes(2, "big")
            + socket.inet_aton(address[0]) + bytes(8))


@needs_build
def test_compiled_loops_refuse_what_would_corrupt_memory(
    outbound: Session, udp: tuple[socket.socket, socket.socket]
) -> None:
    protect_batch = fastpath.BATCH_PROTECT
    send_frame = fastpath.SEND_FRAME
    assert protect_batch is not None
    assert send_frame is not None
    raw = InPlaceProtector(outbound, new_scratch_buffer()).raw()
    assert raw is not None
    assert raw.protect_address != 0
    fn, ctx = raw.protect_address, raw.context_address
    header = RTP_HEADER.pack(0x80, 96, 0, 1, 2)
    payloads = (b"\x01" * 100, b"\x02" * 100, b"\x03" * 40)
    exact = bytearray(len(header) + 100 + SRTP_TRAILER_ROOM)
    assert protect_batch(exact, payloads, 0, 1, 2, header, 7, fn, ctx)[0] == len(header) + 110
    refused: list[tuple[object, ...]] = [
        (bytearray(len(exact) - 1), payloads, 0, 1, 2, header, 7, fn, ctx),  # no room for tag
        (bytearray(4096), payloads, -1, 1, 2, header, 7, fn, ctx),
        (bytearray(4096), payloads, 2, 1, 2, header, 7, fn, ctx),
        (bytearray(4096), payloads, 0, 4, 2, header, 7, fn, ctx),
        (bytearray(4096), payloads, 0, 1, -1, header, 7, fn, ctx),
        (bytearray(4096), payloads, 0, 1, 2, header, -1, fn, ctx),
        (bytearray(4096), payloads, 0, 1, 2, header, 7, 0, ctx),
        (bytearray(4096), payloads, 0, 1, 2, header, 7, fn, -5),
        (bytearray(4096), payloads, 0, 1, 2, header[:11], 7, fn, ctx),
        (bytearray(4096), payloads, 0, 1, 2, b"\x8f" + header[1:], 7, fn, ctx),  # 15 CSRCs
        (bytearray(4096), payloads, 0, 1, 2, b"\x90" + header[1:] + b"\xbe\xde\x7f\xff", 7,
         fn, ctx),  # an extension longer than the header
        (bytearray(4096), (b"\x01" * 10, b"\x02" * 20), 0, 2, 1, header, 7, fn, ctx),
        (bytearray(65536 * 4), (b"\x01",) * 65, 0, 65, 64, header, 7, fn, ctx),
        (bytes(4096), payloads, 0, 1, 2, header, 7, fn, ctx),  # not writable
        (bytearray(4096), ("text",), 0, 1, 0, header, 7, fn, ctx),
    ]
    for arguments in refused:
        with pytest.raises((ValueError, TypeError, IndexError, OverflowError, BufferError)):
            protect_batch(*arguments)  # type: ignore[arg-type]
    receiving, sending = udp
    address = _packed(receiving.getsockname())
    good = (sending.fileno(), address, bytearray(4096), payloads, ((0, 2), (2, 3)), 2, header,
            7, fn, ctx, True)
    assert send_frame(*good)[0] == 0
    bad_addresses = [b"", b"\x02", address[:-1], address + b"\x00",
                     socket.AF_UNIX.to_bytes(2, sys.byteorder) + bytes(14)]
    for bad in bad_addresses:
        with pytest.raises(ValueError, match="packed sockaddr"):
            send_frame(good[0], bad, *good[2:])
    for batches in (((0, 2), (2, 4)), ((0, 2), (-1, 3)), ((0,),), ((0, 65),),
                    ((0, 2.0),)):
        # checked before anything is protected or sent
        with pytest.raises((ValueError, TypeError, IndexError)):
            send_frame(*good[:4], batches, *good[5:])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no socket"):
        send_frame(-1, *good[1:])
    with pytest.raises(TypeError):
        send_frame(*good[:10], 1)  # type: ignore[arg-type]
    received = 0
    while True:
        try:
            receiving.recv(2048)
        except BlockingIOError:
            break
        received += 1
    assert received == 3  # the one good frame only


_ASAN_SCRIPT = r"""
import importlib.util, random, socket, sys
spec = importlib.util.spec_from_file_location("relay._fastpath", sys.argv[1])
fp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fp)
from pylibsrtp import Policy, Session
from relay import packets
from relay.rtp_header import RTP_HEADER
from relay.sender import new_scratch_buffer
from relay.srtp import InPlaceProtector
from rtcc import bitstream

rng = random.Random(5)
pieces = [b"\x00\x00\x01", b"\x00\x00\x00\x01", b"\x00", b"\x01", b"\x00\x00", b"\x65"]
units = [b"", b"\x00", b"\x00\x00", b"\x01", b"\x00\x01", b"\x00\x00\x01", b"\x00\x00\x00\x01",
         b"\x00\x00\x01" * 5, b"\x00\x00\x00\x01" * 5, b"\x00\x00\x01\x65", b"\x65\x00\x00\x01",
         b"\x00\x00\x01\x00\x00\x00", b"\x00\x00\x01" + bytes(1 << 16),
         b"\x00\x00\x00\x01\x65" + rng.randbytes(200_000) + b"\x00\x00\x01"]
units += [b"".join(rng.choice(pieces) if rng.random() < 0.6 else rng.randbytes(rng.randrange(9))
                   for _ in range(rng.randrange(30))) for _ in range(3000)]
for unit in units:
    nals = fp.split_annexb(bytes(unit))
    assert nals == bitstream.split_annexb(unit)
    for nal in nals:
        for max_payload in (3, 4, 5, 1200):
            for prefix, header in ((b"\x7c", 1), (b"\x62\x01", 2), (b"", 0)):
                try:
                    out = fp.fragment(nal, max_payload, prefix, nal[0] & 0x3F, header)
                except ValueError:
                    continue
                assert out == packets._fragment_python(nal, max_payload, prefix,
                                                       nal[0] & 0x3F, header)
for arguments in [(b"\x65\x00", 2**63 - 1, b"\x7c", 5, 1), (b"\x65", 1200, b"\x7c", 5, 1),
                  (b"", 1200, b"\x7c", 5, 0), (b"\x65\x00", 1200, b"\x7c", 5, -(2**63)),
                  (b"\x65\x00", 2, b"\x7c", 5, 1)]:
    try:
        fp.fragment(*arguments)
    except (ValueError, OverflowError):
        pass

policy = Policy(key=bytes(range(30)), ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
policy.allow_repeat_tx = True  # as aiortc's
session = Session(policy)
raw = InPlaceProtector(session, new_scratch_buffer()).raw()
fn, ctx = raw.protect_address, raw.context_address
receiving = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
receiving.bind(("127.0.0.1", 0))
sending = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sending.setblocking(False)
host, port = receiving.getsockname()
packed = (socket.AF_INET.to_bytes(2, sys.byteorder) + port.to_bytes(2, "big")
          + socket.inet_aton(host) + bytes(8))
extension = b"\xbe\xde\x00\x01\x10\x30\x00\x00"
seq = 0
for header in (RTP_HEADER.pack(0x80, 96, 0, 1, 2), RTP_HEADER.pack(0x90, 96, 0, 1, 2) + extension):
    for unit in units[::50]:
        payloads = tuple(packets.packetize(fp.split_annexb(unit), 1200))
        if not payloads:
            continue
        sizes = [len(p) for p in payloads]
        from relay.udp import plan_batches
        batches = plan_batches(sizes)
        need = max(sum(sizes[s:e]) + (e - s) * (len(header) + 144) for s, e in batches)
        for gso in (True, False):  # the same sequence numbers twice, as a NACK's resend
            fp.send_frame(sending.fileno(), packed, bytearray(need), payloads, batches,
                          len(payloads) - 1, header, seq, fn, ctx, gso)
        start, end = batches[-1]
        exact = bytearray(sum(sizes[start:end]) + (end - start) * (len(header) + 144))
        fp.protect_batch(exact, payloads, start, end, len(payloads) - 1, header, seq + start,
                         fn, ctx)
        seq += len(payloads)
        try:
            fp.protect_batch(exact[:-1], payloads, start, end, 0, header, seq, fn, ctx)
            raise SystemExit("a batch one byte too large for its buffer was written")
        except ValueError:
            pass
for bad in (b"", b"\x02", packed[:-1], packed + b"\x00"):
    try:
        fp.send_frame(sending.fileno(), bad, bytearray(4096), (b"x",), ((0, 1),), 0,
                      RTP_HEADER.pack(0x80, 96, 0, 1, 2), 0, fn, ctx, True)
        raise SystemExit("a bad address was accepted")
    except ValueError:
        pass
print("clean")
"""


def _sanitizer_runtime() -> tuple[str, list[str]] | None:
    """The compiler and the sanitizer runtimes to preload, or None when missing."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    preload = []
    for name in ("libasan.so", "libubsan.so"):
        found = subprocess.run([gcc, f"-print-file-name={name}"], capture_output=True,
                               text=True, check=False, timeout=30).stdout.strip()
        if not Path(found).is_absolute() or not Path(found).exists():
            return None
        preload.append(found)
    return gcc, preload


def test_the_compiled_loops_run_clean_under_address_and_undefined_behaviour_sanitizers(
    tmp_path: Path
) -> None:
    runtime = _sanitizer_runtime()
    if runtime is None:
        pytest.skip("gcc with libasan and libubsan (Debian: gcc) is not installed")
    gcc, preload = runtime
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    if subprocess.run([gcc, "-fsanitize=address,undefined", str(probe), "-o",
                       str(tmp_path / "probe")], capture_output=True, check=False,
                      timeout=60).returncode != 0:
        pytest.skip("gcc cannot build with -fsanitize=address,undefined here")
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").exists():
        pytest.skip(f"Python's headers are not installed ({include}/Python.h)")
    built = tmp_path / f"_fastpath{sysconfig.get_config_var('EXT_SUFFIX')}"
    compiled = subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", "-g", "-fno-omit-frame-pointer",
         "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-Wall", "-Wextra",
         "-Werror", f"-I{include}", str(ROOT / "relay" / "_fastpath.c"), "-o", str(built)],
        capture_output=True, text=True, check=False, timeout=120)
    assert compiled.returncode == 0, compiled.stderr
    script = tmp_path / "adversarial.py"
    script.write_text(_ASAN_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(built)], capture_output=True, text=True,
        check=False, timeout=300, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LD_PRELOAD": " ".join(preload),
             "PYTHONMALLOC": "malloc",  # every object its own allocation: overruns are seen
             "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=99",
             "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"})
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip() == "clean"
