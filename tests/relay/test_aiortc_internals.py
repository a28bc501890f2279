"""The aiortc and pylibsrtp internals the relay (and WHIP ingest) reach into are still there.

aiortc is pinned to the minor version these were checked against; this test is what makes an
upgrade safe: it fails naming each internal that moved, before any viewer sees a black screen.
"""

from __future__ import annotations

import inspect

from aiortc.rtcrtpreceiver import RTCRtpReceiver

from ingest.whip_peer import _DECODER_QUEUE
from relay.aiortc_adapter import REQUIRED_INTERNALS, missing_internals


def test_every_internal_the_relay_adapter_uses_is_still_there() -> None:
    missing = missing_internals()
    assert not missing, (
        "aiortc/pylibsrtp moved internals that relay/aiortc_adapter.py needs: "
        + ", ".join(missing)
        + " (update the adapter for this version, or keep the pin in pyproject.toml)"
    )
    assert len(REQUIRED_INTERNALS) >= 15


def test_the_whip_receiver_queue_is_still_there() -> None:
    attribute = _DECODER_QUEUE.removeprefix("_RTCRtpReceiver")
    source = inspect.getsource(RTCRtpReceiver.__init__)
    assert f"self.{attribute} " in source or f"self.{attribute}:" in source, (
        f"aiortc's RTCRtpReceiver no longer has {_DECODER_QUEUE}, which WHIP ingest "
        "(ingest/whip_peer.py) replaces to receive frames without decoding them"
    )
