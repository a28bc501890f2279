"""Send a clip's H.264 as plain RTP to one or more UDP ports in real time (Janus's mountpoints).

``python -m benchmarks.rtp_feeder --clip CLIP.ts --ports 5006,5008 [--stamp] [--fps 30]``
packetizes each access unit once (RFC 6184 mode 1, the relay's own packetizer, 1,200-byte
payloads) and sends it to every port, one SSRC per port, until stdin closes. With ``--stamp``
each frame first gets a capture-time SEI (``benchmarks.stamp``) holding the moment it is sent.
Used where ``ffmpeg -re ... -f rtp`` cannot serve: frames that carry their capture time, and many
cameras fed by one process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import struct
import sys
import time
from pathlib import Path

from benchmarks.relay_media import read_units
from benchmarks.stamp import insert_before_first_slice, stamp_nal
from relay.packets import MAX_PAYLOAD, packetize
from rtcc.bitstream import split_annexb
from rtcc.media import VIDEO_CLOCK_RATE

_HEADER = struct.Struct("!BBHII")


async def feed(args: argparse.Namespace) -> None:
    units = read_units(Path(args.clip))
    ports = [int(p) for p in args.ports.split(",")]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    ssrcs = [random.getrandbits(32) for _ in ports]
    seqs = [random.getrandbits(16) for _ in ports]
    step = VIDEO_CLOCK_RATE // args.fps
    loop = asyncio.get_running_loop()
    stop = loop.run_in_executor(None, sys.stdin.read)
    start = time.monotonic()
    index = 0
    print("FEEDING", flush=True)
    while not stop.done():
        data, _key = units[index % len(units)]
        if args.stamp:
            data = insert_before_first_slice(data, stamp_nal(time.time()))
        payloads = packetize(split_annexb(data), args.payload)
        last = len(payloads) - 1
        timestamp = (index * step) & 0xFFFFFFFF
        for n, port in enumerate(ports):
            seq = seqs[n]
            for i, payload in enumerate(payloads):
                header = _HEADER.pack(0x80, (0x80 if i == last else 0) | args.pt, seq, timestamp,
                                      ssrcs[n])
                with contextlib.suppress(BlockingIOError):
                    sock.sendto(header + payload, ("127.0.0.1", port))
                seq = (seq + 1) & 0xFFFF
            seqs[n] = seq
        index += 1
        await asyncio.sleep(max(0.0, start + index / args.fps - time.monotonic()))
    sock.close()


__benchmark__ = False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clip", required=True)
    parser.add_argument("--ports", required=True)
    parser.add_argument("--stamp", action="store_true")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--pt", type=int, default=96)
    parser.add_argument("--payload", type=int, default=MAX_PAYLOAD)
    asyncio.run(feed(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
