"""The stream hub: Source -> Stream -> Subscription.

One Stream per camera and profile. A Stream starts its Source when the first subscriber arrives,
keeps a GOP cache so late subscribers start at once, fans frames out to bounded Subscriptions
without ever awaiting one, and stops its Source a while after the last subscriber leaves.
"""

from rtcc.hub.gop import GopCache
from rtcc.hub.hub import StreamHub
from rtcc.hub.source import FrameSink, Source, SourceFactory
from rtcc.hub.stream import Stream, StreamKey, StreamSettings
from rtcc.hub.subscription import Subscription

__all__ = [
    "FrameSink",
    "GopCache",
    "Source",
    "SourceFactory",
    "Stream",
    "StreamHub",
    "StreamKey",
    "StreamSettings",
    "Subscription",
]
